"""Writer contribution: a Labels layer to ``.tif``/``.nii.gz``/``.npy``/``.png``."""

from __future__ import annotations

from typing import Any

import numpy as np

from segstudio.core.io import ImageMeta, write_image


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer; its ``scale`` is saved as the voxel spacing.

    A NIfTI affine in ``metadata["segstudio"]["affine"]`` (set by the reader, and copied by the
    segstudio widget onto the layers it creates) is written to ``.nii/.nii.gz`` files.
    """
    arr = np.asarray(data)
    scale = meta.get("scale")
    spacing = None
    if scale is not None and len(scale) == arr.ndim and arr.ndim in (2, 3):
        spacing = tuple(float(s) for s in scale)
    ours = ((meta.get("metadata") or {}).get("segstudio") or {})
    affine = ours.get("affine")
    affine = np.asarray(affine, dtype=float) if affine is not None else None
    written = write_image(path, arr, ImageMeta(spacing=spacing, affine=affine))
    return [str(written)]
