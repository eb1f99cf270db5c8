"""npe2 contributions: reader, writer, sample data and the dock-widget factory.

Everything here is a plain function (see ``segstudio/napari.yaml``); Qt is only imported by
:func:`make_widget`.
"""
