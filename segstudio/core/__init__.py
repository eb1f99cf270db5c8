"""Pure-Python core of segstudio: no Qt, no napari.

Everything here runs headless and is what the GUI, the napari plugin and the CLI call.
"""
