"""What the implied-label rules infer, shown over the image when the user asks to see it.

The trainer learns, besides the strokes, what the rules of :mod:`segstudio.core.implied` infer
from them (the inside of closed outlines, background that looks like the painted background).
*show inferred* overlays exactly that — :func:`segstudio.core.implied.merged` of
:func:`~segstudio.core.implied.implied_labels` with the same switches the trainer gets — in
Labels layers that are not painted into (``inferred``, or ``inferred: NAME`` per class in
multi-label mode), under the strokes; and, over the strokes, the object paint that the trainer
leaves out because it lies on background (:data:`~segstudio.core.implied.SPILLED`, a stroke run
on past an object's edge), in the ``not learnt`` layer, while there is any. It is computed in
a worker after painting settles, one job at a time (a newer request replaces a pending one),
and a result for another image is dropped. The smoothed image the background rule reads
depends on the image and two switches only, so it is kept between requests
(:class:`SmoothedKeeper`): a paint change on a 64 × 512 × 512 volume then costs the rule, not
the image's blurs again.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import QObject

from segstudio._qt.image import ChosenImage, under_strokes
from segstudio._qt.layers import ABSENT_COLOR, label_colormap
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet
from segstudio.core.annotations import EXCLUSIVE
from segstudio.core.background import smoothed_intensity
from segstudio.core.data import image_stats
from segstudio.core.implied import SPILLED, implied_labels, merged

#: Opacity of the overlay (under the strokes, over the prediction).
OVERLAY_OPACITY = 0.45
ROLE = "inferred"
#: The layer that shows the paint training leaves out (over the strokes), and its look: the
#: strokes under it are greyed.
SPILL_LAYER = "not learnt"
SPILL_COLOR = "#d9d9d9"
SPILL_OPACITY = 0.8


@dataclass(frozen=True)
class InferRequest:
    """The paintings of one image and the rules that are on."""

    image_key: str
    image: np.ndarray
    channel_axis: int | None
    paintings: Any  # a PaintSnapshot (joined in the worker)
    mode: str
    outlines: bool
    background: bool
    halo: tuple[int, int] | None
    #: *Level slices* is on for the next run: the background rule reads the levelled volume.
    level_slices: bool = False
    #: *Textures* is on for the next run: the background rule's threshold stays nearer the
    #: painted background (:func:`segstudio.core.background.towards_objects`).
    textures: bool = False
    #: The next run takes the background for uneven (*wide context* on a 2-D image, *level
    #: slices* on a volume; :func:`segstudio.core.config.uneven_background`): the background
    #: rule reads the image against its local background
    #: (:data:`segstudio.core.background.UNEVEN_SIGMA`).
    uneven: bool = False


class SmoothedKeeper:
    """The smoothed intensity of the last image the overlay read
    (:func:`segstudio.core.background.smoothed_intensity`, with *level slices*' offsets and the
    *uneven* reading as asked), kept while the image is the same object and the switches the
    same. One entry: the image is held weakly, the smoothed copy (float32, the image's size)
    until another image or other switches replace it, or :meth:`clear`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[weakref.ref, tuple[Any, ...], np.ndarray] | None = None
        #: Smoothed images computed (not taken from the keeper), for tests and benchmarks.
        self.computed = 0

    def get(self, image: np.ndarray, channel_axis: int | None, level_slices: bool, uneven: bool) -> np.ndarray:
        """The smoothed intensity of ``image``, computed once per image and switches."""
        key = (channel_axis, bool(level_slices), bool(uneven))
        with self._lock:
            entry = self._entry
        if entry is not None and entry[0]() is image and entry[1] == key:
            return entry[2]
        ndim = image.ndim - (channel_axis is not None)
        offsets = image_stats(image, channel_axis, level_slices=True).offsets if level_slices else ()
        smoothed = smoothed_intensity(image, channel_axis, ndim, offsets, uneven)
        with self._lock:
            self.computed += 1
            try:
                self._entry = (weakref.ref(image), key, smoothed)
            except TypeError:  # not weakly referable: not kept
                self._entry = None
        return smoothed

    def clear(self) -> None:
        """Forget the kept image."""
        with self._lock:
            self._entry = None


def infer(request: InferRequest,
          keeper: SmoothedKeeper | None = None) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """Worker body: what the rules infer (all rules in one array) and the paint left out
    (:data:`~segstudio.core.implied.SPILLED`, or ``None``), for ``request.image_key``
    (``keeper``: where the smoothed image is kept between requests; ``None``: computed here)."""
    smoothed = None
    if request.background:
        keeper = keeper or SmoothedKeeper()
        smoothed = keeper.get(request.image, request.channel_axis, request.level_slices, request.uneven)
    labels = implied_labels(request.paintings.paintings(), request.image, request.mode,
                            channel_axis=request.channel_axis, outlines=request.outlines,
                            background=request.background, halo=request.halo, smoothed=smoothed,
                            textures=request.textures, uneven=request.uneven)
    return request.image_key, merged(labels), labels.get(SPILLED)


class Inferred(QObject):
    """The *show inferred* overlay: its layers and its single-slot worker."""

    def __init__(self, viewer: Any, image: ChosenImage, workers: WorkerSet, notify: Notifier,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.image = image
        self.workers = workers
        self.notify = notify
        self.shown = False
        self.layers: list[Any] = []
        #: The ``not learnt`` layer, while some paint is left out.
        self.spill_layer: Any = None
        self._pending: InferRequest | None = None
        self._colors: list[dict[int, str]] = []
        self._names: list[str] = []
        self.keeper = SmoothedKeeper()

    def show(self, on: bool) -> None:
        """Show or hide the overlay (hidden: its layers are removed)."""
        self.shown = bool(on)
        if not self.shown:
            self._pending = None
            self.keeper.clear()
            self.clear()

    def request(self, request: InferRequest, colors: list[dict[int, str]], names: list[str]) -> None:
        """Compute the overlay for ``request`` (``colors``/``names``: one per overlay layer)."""
        if not self.shown:
            return
        self._colors, self._names = colors, names
        if self.workers.busy("inferred"):
            self._pending = request
            return
        self.workers.start("inferred", infer, request, self.keeper, returned=self._show,
                           errored=lambda e: self.notify.fail(f"inferred labels: {type(e).__name__}: {e}",
                                                              popup=False),
                           finished=self._next)

    def clear(self) -> None:
        """Remove the overlay layers."""
        for layer in [*self.layers, self.spill_layer]:
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = []
        self.spill_layer = None

    def _next(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.request(pending, self._colors, self._names)

    def _show(self, result: tuple[str, np.ndarray | None, np.ndarray | None]) -> None:
        key, labels, spilled = result
        if not self.shown or key != self.image.key:
            return  # hidden meanwhile, or computed for another image
        shape = self.image.spatial_shape
        planes = [] if labels is None else ([labels] if labels.shape == shape else list(labels))
        if not planes:
            planes = [np.zeros(shape, np.uint8) for _ in self._names]
        if len(self.layers) != len(planes) or any(lyr not in self.viewer.layers for lyr in self.layers):
            self.clear()
            geometry = self.image.geometry()
            layers = self.viewer.layers
            active = layers.selection.active
            self.layers = [
                self.viewer.add_labels(np.zeros(shape, plane.dtype), name=name, opacity=OVERLAY_OPACITY,
                                       metadata=self.image.metadata(ROLE), **geometry)
                for plane, name in zip(planes, self._names)
            ]
            under_strokes(layers, self.layers, active)
        for layer, plane, colors in zip(self.layers, planes, self._colors):
            layer.colormap = label_colormap(colors)
            layer.data = plane
            layer.editable = False
        self._show_spill(spilled)

    def _show_spill(self, spilled: np.ndarray | None) -> None:
        """The ``not learnt`` layer over the strokes: shown while some paint is left out."""
        layers = self.viewer.layers
        if spilled is None or not spilled.any():
            if self.spill_layer is not None and self.spill_layer in layers:
                layers.remove(self.spill_layer)
            self.spill_layer = None
            return
        data = spilled.astype(np.uint8)
        if self.spill_layer is None or self.spill_layer not in layers:
            active = layers.selection.active
            self.spill_layer = self.viewer.add_labels(data, name=SPILL_LAYER, opacity=SPILL_OPACITY,
                                                      metadata=self.image.metadata(ROLE), **self.image.geometry())
            self.spill_layer.colormap = label_colormap({1: SPILL_COLOR})
            self.spill_layer.editable = False
            if active is not None and active in layers:
                layers.selection.active = active  # napari selects what it adds
        else:
            self.spill_layer.data = data


def overlay_styles(mode: str, classes: Any) -> tuple[list[dict[int, str]], list[str]]:
    """Colours and names of the overlay layers: one (the class colours) in exclusive mode, one
    per class in multi-label mode (present in the class colour, absent grey)."""
    if mode == EXCLUSIVE:
        return [{k + 1: c.color for k, c in enumerate(classes)}], [ROLE]
    return [{1: c.color, 2: ABSENT_COLOR} for c in classes], [f"{ROLE}: {c.name}" for c in classes]
