"""Live previews: the newest weights predict what the user looks at, one request at a time.

A single slot: while one preview runs, a newer request replaces the pending one (never a
queue), and the pending one starts with the weights that are newest *then*. Every result
carries the :class:`~segstudio._qt.image.Stamp` of its request; the image's normalisation is
computed once and kept per image.

On a CPU a preview holds the cores while the trainer waits
(:class:`~segstudio.core.device.ComputeTurns`), so previews that come with new weights are
budgeted: one starts at least :data:`PREVIEW_SHARE`'s inverse times the last one's duration
after it (:meth:`Preview.budget_wait`). A slow preview (a large volume's slab, a slow machine)
then comes less often than "every N s" asks instead of starving the training; previews the
user asks for (scrolling to another slice) are not held back.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from segstudio._qt.image import ChosenImage, Stamp
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet
from segstudio.core.data import Normalization
from segstudio.core.device import ComputeTurns
from segstudio.core.predictor import PredictResult, predict_work

#: Slices predicted on each side of the current one in 3D previews.
PREVIEW_SLAB = 1
#: 2D images up to this many pixels are previewed whole; larger ones around the view.
WHOLE_PREVIEW_MAX_PIXELS = 2048 * 2048
#: Canvas size assumed before napari reports one.
DEFAULT_CANVAS = (1024, 1024)
#: At most this share of the time goes to previews that follow new weights (see the module).
PREVIEW_SHARE = 0.1


@dataclass(frozen=True)
class PreviewRequest:
    """What to preview: the image (its pixels, channel axis) and the region, for ``stamp``."""

    stamp: Stamp
    image: np.ndarray
    channel_axis: int | None
    region: tuple[slice, ...] | None


def predict_region(predictor: Any, request: PreviewRequest, state: Any,
                   stats: Normalization | None) -> tuple[PredictResult, Normalization]:
    """Worker body: load ``state`` into the preview predictor and predict the request's region
    (the image's normalisation is computed when not known yet)."""
    if stats is None:
        stats = predictor.image_stats(request.image, request.channel_axis)
    if state is not None:
        predictor.load_state(state)
    return predictor.predict(request.image, request.channel_axis, region=request.region, stats=stats), stats


def predict_in_turn(turns: ComputeTurns | None, predictor: Any, request: PreviewRequest, state: Any,
                    stats: Normalization | None) -> tuple[PredictResult, Normalization, float]:
    """:func:`predict_region`, waiting for its turn on a CPU (``turns`` is shared with the
    trainer's steps, see :class:`~segstudio.core.device.ComputeTurns`); also returns the
    seconds it took once its turn came."""
    device = getattr(predictor, "device", None)
    on_cpu = turns is not None and getattr(device, "type", None) == "cpu"
    with turns if on_cpu else contextlib.nullcontext():
        t0 = time.perf_counter()
        result, stats = predict_region(predictor, request, state, stats)
        return result, stats, time.perf_counter() - t0


def visible_region(viewer: Any, image: ChosenImage, choice: str) -> tuple[slice, ...] | None:
    """Spatial slices to preview: the current slice(s) ± ``PREVIEW_SLAB`` in 3D, the view for
    large 2D images, ``None`` (everything) for small 2D images or ``choice`` "image"."""
    shape = image.spatial_shape
    if choice == "image":
        return None
    layer = image.layer
    dims = viewer.dims
    offset = dims.ndim - layer.ndim
    point = layer.world_to_data(dims.point[offset:] if len(dims.point) > layer.ndim else dims.point)
    spatial_axes = image.spatial_axes()
    region = [slice(0, n) for n in shape]
    if len(shape) == 3:
        if dims.ndisplay == 3:
            return None
        for world_axis in dims.not_displayed:
            axis = world_axis - offset
            if axis in spatial_axes:
                i = spatial_axes.index(axis)
                c = int(np.clip(round(float(point[axis])), 0, shape[i] - 1))
                region[i] = slice(max(c - PREVIEW_SLAB, 0), min(c + PREVIEW_SLAB + 1, shape[i]))
        return tuple(region)
    if int(np.prod(shape)) <= WHOLE_PREVIEW_MAX_PIXELS:
        return None
    # Large 2D: a box around the camera centre of the visible size.
    zoom = max(float(viewer.camera.zoom), 1e-6)
    canvas = getattr(viewer, "_canvas_size", DEFAULT_CANVAS)
    center = viewer.camera.center
    centre = layer.world_to_data(center[-layer.ndim:] if len(center) >= layer.ndim else center)
    for i, axis in enumerate(spatial_axes):
        half = int(canvas[i] / zoom / 2 / float(layer.scale[axis])) + 1
        c = int(np.clip(round(float(centre[axis])), 0, shape[i] - 1))
        region[i] = slice(max(c - half, 0), min(c + half, shape[i]))
    return tuple(region)


def cheaper_region(predictor: Any, shape: tuple[int, ...], region: tuple[slice, ...] | None
                   ) -> tuple[slice, ...] | None:
    """``region``, or ``None`` (the whole image) where predicting the whole image costs
    ``predictor``'s network no more (:func:`~segstudio.core.predictor.predict_work`): on a small
    volume the current slab's context, padded and paired, is more work than every slice."""
    if region is None or predictor is None:
        return region
    config, device = predictor.config, predictor.device
    if predict_work(config, shape, None, device) <= predict_work(config, shape, region, device):
        return None
    return region


class Preview(QObject):
    """The preview predictor, its newest weights, and the single-slot preview worker.

    Signals
    -------
    result(stamp, PredictResult)
        A preview finished (the controller writes it when the stamp is still current).
    """

    result = Signal(object, object)

    def __init__(self, workers: WorkerSet, notify: Notifier, turns: ComputeTurns | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.notify = notify
        #: Shared with the trainer (see :class:`~segstudio.core.device.ComputeTurns`).
        self.turns = turns
        self.predictor: Any = None
        #: The newest weights (a state dict), or ``None``: the predictor's own.
        self.weights: Any = None
        self._pending: PreviewRequest | None = None
        #: Normalisations computed by earlier previews, by (image, channel axis, *level slices*).
        self._stats: dict[tuple[str, int | None, bool], Normalization] = {}
        #: When the last preview started (``time.monotonic``) and how long it took (s).
        self._last_start = -float("inf")
        self.last_seconds = 0.0

    @property
    def busy(self) -> bool:
        return self.workers.busy("preview")

    def set_model(self, predictor: Any, weights: Any = None) -> None:
        """Preview with ``predictor`` (``weights``: a state dict to load first). Its fixed input
        filters keep their responses between previews (:class:`~segstudio.core.features.FilterCache`):
        each preview predicts the same tiles again."""
        cache = getattr(getattr(predictor, "model", None), "cache_filters", None)
        if cache is not None:
            cache()
        self.predictor, self.weights = predictor, weights

    def stats(self, image: str, channel_axis: int | None, level_slices: bool = False) -> Normalization | None:
        """The normalisation of an image computed by an earlier preview (of a model with the
        same *level slices*), if any."""
        return self._stats.get((image, channel_axis, level_slices))

    def budget_wait(self) -> float:
        """Seconds until a preview that follows new weights may start (0: now): the last one
        started ``last_seconds / PREVIEW_SHARE`` ago or longer (:data:`PREVIEW_SHARE`)."""
        return max(0.0, self._last_start + self.last_seconds / PREVIEW_SHARE - time.monotonic())

    def request(self, request: PreviewRequest) -> None:
        """Predict ``request`` with the newest weights (a newer request replaces a pending one)."""
        if self.predictor is None:
            return
        if self.busy:
            self._pending = request
            return
        self._start(request)

    def cancel(self) -> None:
        """Forget the pending request (a running one finishes; its stamp gets it dropped)."""
        self._pending = None

    def _start(self, request: PreviewRequest) -> None:
        level = bool(getattr(getattr(self.predictor, "config", None), "level_slices", False))
        key = (request.stamp.image, request.channel_axis, level)

        def done(out: tuple[PredictResult, Normalization, float]) -> None:
            prediction, stats, self.last_seconds = out
            self._stats[key] = stats
            self.result.emit(request.stamp, prediction)

        self._last_start = time.monotonic()
        self.workers.start("preview", predict_in_turn, self.turns, self.predictor, request, self.weights,
                           self._stats.get(key), returned=done,
                           errored=lambda e: self.notify.fail(f"preview failed: {type(e).__name__}: {e}", popup=False),
                           finished=self._on_finished)

    def _on_finished(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(pending)  # with the weights that are newest now
