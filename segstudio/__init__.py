"""segstudio: paint a few strokes, train a U-Net live, segment 2D images and 3D volumes."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
