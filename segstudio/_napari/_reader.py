"""Reader contribution: images and label files through :mod:`segstudio.core.io`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.io import ImageMeta, read_image

#: Extensions the reader claims (kept in sync with ``napari.yaml``).
READER_EXTENSIONS = (".tif", ".tiff", ".nii", ".nii.gz", ".npy", ".zarr")
#: Name fragments that mark an integer file as labels rather than an image (``objects`` and
#: ``instances``: object labels, e.g. ``segstudio predict --instances``).
LABEL_HINTS = ("label", "mask", "painting", "truth", "objects", "instances")
LayerData = tuple[Any, dict[str, Any], str]


def _claims(path: str) -> bool:
    name = os.path.basename(str(path).rstrip("/\\")).lower()
    return name.endswith(READER_EXTENSIONS)


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_layers` if segstudio can read ``path`` (or every path of a list)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(_claims(str(p)) for p in paths):
        return None
    return read_layers


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Read one or several files into napari layer-data tuples."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        out.extend(layer_data_from_file(str(p)))
    return out


def _is_labels(path: str, data: Any) -> bool:
    name = Path(path).name.lower()
    return np.dtype(data.dtype).kind in "iub" and any(h in name for h in LABEL_HINTS)


def layer_data_from_file(path: str) -> list[LayerData]:
    """One layer-data tuple for ``path``.

    The voxel spacing becomes the layer ``scale``; a NIfTI affine is kept in
    ``metadata["segstudio"]["affine"]`` for the writer. A channel axis (``C`` in the file's axes) is
    moved to the front and recorded in ``metadata["segstudio"]["channel_axis"]`` (RGB(A) 8-bit
    images are shown as RGB instead). Integer files with a :data:`LABEL_HINTS` fragment in their
    name (``label``, ``mask``, ``truth``, ``objects``…) become Labels layers.
    """
    data, meta = read_image(path)
    name = _display_name(path)
    return [_to_layer_data(data, meta, name, path)]


def _display_name(path: str) -> str:
    base = Path(str(path).rstrip("/\\")).name
    for ext in sorted(READER_EXTENSIONS + (".ome.tif", ".ome.tiff", ".ome.zarr"), key=len, reverse=True):
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def _to_layer_data(data: Any, meta: ImageMeta, name: str, path: str) -> LayerData:
    axes = (meta.axes or "").upper()
    if len(axes) != len(data.shape):
        axes = ""
    spatial = [a for a in axes if a != "C"] if axes else None
    spacing = tuple(meta.spacing) if meta.spacing is not None else None
    kwargs: dict[str, Any] = {"name": name, "metadata": {"segstudio": {"path": str(path)}}}
    if meta.affine is not None:  # NIfTI: kept so that labels saved from this layer keep it
        kwargs["metadata"]["segstudio"]["affine"] = np.asarray(meta.affine, dtype=float).tolist()
    if _is_labels(path, data) and "C" not in axes:
        if spacing is not None and len(spacing) == data.ndim:
            kwargs["scale"] = spacing
        kwargs["metadata"]["segstudio"]["role"] = "truth" if "truth" in name.lower() else "labels"
        return np.asarray(data), kwargs, "labels"
    if "C" in axes:
        c = axes.index("C")
        n_ch = data.shape[c]
        if c == len(axes) - 1 and n_ch in (3, 4) and np.dtype(data.dtype) == np.uint8:
            kwargs["rgb"] = True
            if spacing is not None and spatial is not None and len(spacing) == len(spatial):
                kwargs["scale"] = spacing
            return data, kwargs, "image"
        data = np.moveaxis(np.asarray(data), c, 0)
        kwargs["metadata"]["segstudio"]["channel_axis"] = 0
        if spacing is not None and spatial is not None and len(spacing) == len(spatial):
            kwargs["scale"] = (1.0, *spacing)
        return data, kwargs, "image"
    if spacing is not None and len(spacing) == data.ndim:
        kwargs["scale"] = spacing
    return data, kwargs, "image"
