"""The image being segmented: its napari layer, channel axis, pixels and geometry.

Everything segstudio keeps per image is keyed by :func:`image_key` (the project's name for the
image, else the layer's name), so several images per session or project fit the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import UserInputError
from segstudio.core.io import ImageMeta, read_image, write_image
from segstudio.core.project import safe_name

#: Key of segstudio's entries in ``layer.metadata``.
META_KEY = "segstudio"


def layer_meta(layer: Any) -> dict[str, Any]:
    """segstudio's entries in a layer's ``metadata`` (empty when it has none)."""
    return dict((layer.metadata or {}).get(META_KEY) or {})


def under_strokes(layers: Any, added: Sequence[Any], active: Any) -> None:
    """Move the ``added`` overlay layers under the lowest paint layer, so that the strokes stay
    on top, and give the selection back to ``active`` (napari selects what it adds, and the
    next brush stroke would land in the overlay)."""
    for layer in added:
        paint = [i for i, lyr in enumerate(layers) if layer_meta(lyr).get("role") == "paintings"]
        if paint:
            layers.move(layers.index(layer), min(paint))
    if active is not None and active in layers:
        layers.selection.active = active


def channel_axis_of(layer: Any) -> int | None:
    """The channel axis of an Image layer's data: after the layer's dims for RGB(A), else
    the one segstudio's reader recorded, else ``None`` (one channel)."""
    if getattr(layer, "rgb", False):
        return layer.ndim
    axis = layer_meta(layer).get("channel_axis")
    return None if axis is None else int(axis)


def image_key(layer: Any) -> str:
    """The image's id in the session and in a project: the project's name for it, else the
    layer's name, as a file name."""
    return safe_name(layer_meta(layer).get("project_image") or layer.name)


def source_of(layer: Any) -> str | None:
    """The file the layer was read from (``None``: a sample or a layer made in napari)."""
    return layer_meta(layer).get("path") or getattr(getattr(layer, "source", None), "path", None)


@dataclass(frozen=True)
class Stamp:
    """What a worker's result was computed for: an image and the generation of its layers
    (which changes when they are remade: another mode, a class added or removed). A result
    whose stamp is not the current one is dropped."""

    image: str
    generation: int


class ChosenImage:
    """The chosen Image layer and what follows from it (pixels cached, spatial shape, spacing)."""

    def __init__(self) -> None:
        self.layer: Any = None
        self.channel_axis: int | None = None
        self._cache: tuple[Any, np.ndarray] | None = None

    def choose(self, layer: Any) -> None:
        """Segment ``layer`` (``None``: no image), with the channel axis its metadata gives."""
        self.layer = layer
        self._cache = None
        self.channel_axis = None if layer is None else channel_axis_of(layer)

    def set_channel_axis(self, axis: int | None) -> None:
        """Set the channel axis (``None``: single channel)."""
        if axis is not None and self.layer is not None:
            ndim = self.array().ndim
            if not 0 <= axis < ndim:
                raise UserInputError(f"channel axis {axis} is out of range for a {ndim}-D image")
        self.channel_axis = axis

    @property
    def key(self) -> str:
        """:func:`image_key` of the chosen layer."""
        return image_key(self._layer())

    @property
    def name(self) -> str:
        return self._layer().name

    @property
    def source(self) -> str | None:
        return source_of(self._layer())

    def array(self) -> np.ndarray:
        """The pixels as a numpy array (largest scale of a multiscale layer), cached."""
        layer = self._layer()
        if self._cache is not None and self._cache[0] is layer.data:
            return self._cache[1]
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        arr = np.asarray(data)
        self._cache = (layer.data, arr)
        return arr

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        shape = list(self.array().shape)
        if self.channel_axis is not None:
            del shape[self.channel_axis]
        return tuple(shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Physical pixel size per spatial axis (the layer's scale)."""
        return self._spatial(self._layer().scale)[-len(self.spatial_shape):]

    def geometry(self) -> dict[str, Any]:
        """``scale`` and ``translate`` for layers over the image's spatial axes."""
        n = len(self.spatial_shape)
        return {"scale": self.spacing, "translate": self._spatial(self._layer().translate)[-n:]}

    def spatial_axes(self) -> list[int]:
        """The layer's axes that are spatial (not the channel axis)."""
        layer = self._layer()
        return [a for a in range(layer.ndim) if a != self.channel_axis][-len(self.spatial_shape):]

    def metadata(self, role: str, **extra: Any) -> dict[str, Any]:
        """``metadata`` for a layer segstudio makes over the image (``role``: paintings,
        prediction, probability); keeps a NIfTI affine so napari's writer saves it."""
        source = layer_meta(self._layer())
        if source.get("affine") is not None:
            extra = {"affine": source["affine"], **extra}
        return {META_KEY: {"role": role, "image": self.name, **extra}}

    def labels_meta(self, axes: str | None = None) -> ImageMeta:
        """File metadata of labels over the image: its spacing, ``axes`` (default: the spatial
        axes, ``YX`` or ``ZYX``) and the NIfTI affine its reader kept."""
        affine = layer_meta(self._layer()).get("affine")
        return ImageMeta(spacing=self.spacing, axes=axes or "ZYX"[-len(self.spatial_shape):],
                         affine=None if affine is None else np.asarray(affine, dtype=float))

    def project_name(self) -> str | None:
        """The image's name in the project it was opened from (``None``: not from a project)."""
        return layer_meta(self._layer()).get("project_image")

    def source_file(self) -> Path | None:
        """The image's file, when it still exists."""
        src = self.source
        return Path(src) if src and Path(src).exists() else None

    def _layer(self) -> Any:
        if self.layer is None:
            raise UserInputError("choose an image first")
        return self.layer

    def _spatial(self, values: Sequence[float]) -> tuple[float, ...]:
        vals = list(values)
        if self.channel_axis is not None and self.channel_axis < len(vals):
            del vals[self.channel_axis]
        return tuple(float(v) for v in vals)


def write_labels(dest: Path, labels: np.ndarray, meta: ImageMeta, source: str | None) -> Path:
    """Write labels over an image (in a worker) with the image's spacing, and a NIfTI's affine and
    header from its ``source`` file (else the affine the reader kept, in ``meta``)."""
    like = None
    if source and Path(source).exists():
        try:
            like = read_image(source, lazy=True)[1]
        except UserInputError:
            like = None  # the source went bad since it was opened: spacing alone is kept
    return write_image(dest, labels, meta, like=like)
