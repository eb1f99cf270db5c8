"""The napari layers segstudio makes over the image: paintings, predictions, probabilities.

This is the one place that knows how the two modes look in napari:

* exclusive: one Labels layer ``paintings`` (value k = class k) and one ``prediction``;
* multilabel: one ``paint: NAME`` layer per class (1 = present, 2 = absent) and one
  ``prediction: NAME`` layer per class (1 = present).

Paintings leave the GUI thread as a :class:`PaintSnapshot`: a copy of each paint layer kept in
blocks of about a megabyte (:class:`PaintCopy`); a snapshot re-copies only the blocks that
napari's paint events say changed and shares the others with the snapshot before it. Changes
announced without saying where (undo and redo, a ``refresh`` after an edit in the console) are
found by comparing the copy with the layer in a worker; what differs is re-copied at the next
snapshot. (An edit of ``layer.data`` announced by nothing at all is seen at the next refresh.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from napari.utils.colormaps import Colormap, DirectLabelColormap
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import QObject, Signal

from segstudio._qt.image import META_KEY, ChosenImage, Stamp, layer_meta
from segstudio._qt.workers import WorkerSet
from segstudio.core.annotations import ABSENT, EXCLUSIVE, MULTILABEL, PRESENT
from segstudio.core.errors import UserInputError
from segstudio.core.label_import import exclusive_to_multilabel
from segstudio.core.predictor import PredictResult
from segstudio.core.project import ProjectClass

#: Bytes per block of a paint copy: a 2048 x 2048 uint8 slice is four blocks of 512 rows.
BLOCK_BYTES = 1 << 20
#: Colour of "absent" strokes in multi-label paint layers.
ABSENT_COLOR = "#8c8c8c"
#: Opacity of prediction overlays.
PREDICTION_OPACITY = 0.4
#: Layer events that say a paint layer changed.
PAINT_EVENTS = ("paint", "data", "set_data")
#: The Shapes layer validation regions are drawn in, and their colour.
REGIONS_NAME = "validation regions"
REGIONS_COLOR = "#ff4fd8"


# --------------------------------------------------------------------------- copies of paintings
Block = tuple[int, int]


@dataclass(frozen=True, eq=False)
class Blocks:
    """An immutable copy of one paint array, as read-only blocks over its first two axes."""

    shape: tuple[int, ...]
    dtype: np.dtype
    block: tuple[int, int]
    grid: tuple[int, int]
    parts: tuple[np.ndarray, ...]  # row-major over ``grid``

    def items(self) -> Iterator[tuple[Block, np.ndarray]]:
        """``(block index, block)`` pairs."""
        return (((k // self.grid[1], k % self.grid[1]), part) for k, part in enumerate(self.parts))

    def array(self) -> np.ndarray:
        """The whole array (the block itself when there is one; else joined: a copy)."""
        if len(self.parts) == 1:
            return self.parts[0]
        out = np.empty(self.shape, self.dtype)
        for key, part in self.items():
            out[_block_slices(key, self.block)] = part
        return out


def _block_slices(key: Block, block: tuple[int, int]) -> tuple[slice, slice]:
    (i, j), (b0, b1) = key, block
    return slice(i * b0, (i + 1) * b0), slice(j * b1, (j + 1) * b1)


class PaintCopy:
    """A copy of one paint array that is brought up to date where it changed.

    The copy is kept in blocks over the first two axes (about ``BLOCK_BYTES`` each). ``mark``
    (from paint events) says which blocks changed; ``take`` (GUI thread) copies those and
    returns :class:`Blocks` that share every other block with the previous ones. Changes
    nobody announced make the copy ``unverified``; :meth:`differing` (any thread) finds them.
    """

    def __init__(self, live: Any, *, blank: bool, block_bytes: int = BLOCK_BYTES) -> None:
        self.shape, self.dtype = tuple(live.shape), np.dtype(live.dtype)  # 2D or 3D
        inner = int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize
        b1 = min(self.shape[1], max(1, block_bytes // inner))
        b0 = min(self.shape[0], max(1, block_bytes // (b1 * inner)))
        self.block = (b0, b1)
        self.grid = (-(-self.shape[0] // b0), -(-self.shape[1] // b1))
        keys = [(i, j) for i in range(self.grid[0]) for j in range(self.grid[1])]
        self._parts: list[np.ndarray] = []
        if blank:  # made empty by segstudio: the copy is zeros (calloc: no pages touched)
            zeros = np.zeros(self.shape, self.dtype)
            self._parts = [self._frozen(zeros[_block_slices(key, self.block)]) for key in keys]
            self._dirty: set[Block] = set()
        else:
            self._parts = [np.empty(0, self.dtype)] * len(keys)  # all copied at the first take
            self._dirty = set(keys)
        self._taken: Blocks | None = None
        self.unverified = False

    @classmethod
    def of(cls, taken: Blocks) -> PaintCopy:
        """The copy of an array that was just made from the snapshot ``taken`` (nothing to copy)."""
        copy = cls.__new__(cls)
        copy.shape, copy.dtype, copy.block, copy.grid = taken.shape, taken.dtype, taken.block, taken.grid
        copy._parts, copy._dirty, copy._taken, copy.unverified = list(taken.parts), set(), taken, False
        return copy

    def _view(self, live: Any, key: Block) -> Any:
        return live[_block_slices(key, self.block)]

    @staticmethod
    def _frozen(arr: np.ndarray) -> np.ndarray:
        arr.flags.writeable = False
        return arr

    @property
    def changed(self) -> bool:
        """Whether blocks are marked since the last :meth:`take`."""
        return bool(self._dirty) or self._taken is None

    def mark_all(self) -> None:
        """Everything changed (an edit segstudio made itself)."""
        self._dirty.update((i, j) for i in range(self.grid[0]) for j in range(self.grid[1]))

    def mark(self, atoms: Any) -> None:
        """Mark what a paint event's history atoms touched; what cannot be told from them
        makes the copy unverified."""
        if not isinstance(atoms, (list, tuple)) or not atoms:
            self.unverified = True
            return
        for atom in atoms:
            box = _bounding_box(atom)
            if box is None:
                self.unverified = True
                continue
            (r0, r1), (c0, c1) = box
            b0, b1 = self.block
            self.mark_blocks((i, j) for i in range(r0 // b0, (max(r1, r0 + 1) - 1) // b0 + 1)
                             for j in range(c0 // b1, (max(c1, c0 + 1) - 1) // b1 + 1))

    def mark_blocks(self, keys: Iterable[Block]) -> None:
        self._dirty.update(k for k in keys if 0 <= k[0] < self.grid[0] and 0 <= k[1] < self.grid[1])

    def take(self, live: Any) -> Blocks:
        """Copy the marked blocks from ``live`` (GUI thread) and return the current copy."""
        if self._taken is not None and not self._dirty:
            return self._taken
        for i, j in self._dirty:
            self._parts[i * self.grid[1] + j] = self._frozen(np.array(self._view(live, (i, j)), copy=True))
        self._dirty.clear()
        self._taken = Blocks(self.shape, self.dtype, self.block, self.grid, tuple(self._parts))
        return self._taken

    def differing(self, live: Any, taken: Blocks) -> list[Block]:
        """Blocks of ``taken`` that differ from ``live`` (a read-only scan: safe in a worker)."""
        return [key for key, part in taken.items() if not np.array_equal(part, self._view(live, key))]


def _bounding_box(atom: Any, axes: int = 2) -> list[tuple[int, int]] | None:
    """``[start, stop)`` along the first ``axes`` axes of what a napari paint history atom
    touched (``None``: it cannot be told)."""
    key = getattr(atom, "slice_key", None)  # napari's mask-based atom: a bounding box
    if key is not None and len(key) >= axes and all(isinstance(k, slice) for k in key[:axes]):
        if any(k.stop is None for k in key[:axes]):
            return None
        return [(int(k.start or 0), int(k.stop)) for k in key[:axes]]
    if isinstance(atom, tuple) and atom and isinstance(atom[0], tuple) and len(atom[0]) >= axes:
        box = []
        for idx in atom[0][:axes]:  # (indices, old values, new values)
            idx = np.asarray(idx)
            box.append((int(idx.min()), int(idx.max()) + 1) if idx.size else (0, 0))
        return box
    return None


@dataclass(frozen=True, eq=False)
class PaintSnapshot:
    """The paintings of one image at one moment: what the trainer, the counts and saves get.

    ``version`` grows with every snapshot that differs from the one before.
    """

    image: str
    mode: str
    layers: tuple[Blocks, ...]
    version: int
    _joined: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def paintings(self) -> np.ndarray:
        """Exclusive: the label array; multilabel: ``(C, *spatial)``. Built once (call it in a
        worker: for big volumes it is a copy)."""
        if "all" not in self._joined:
            if self.mode == EXCLUSIVE:
                self._joined["all"] = self.layers[0].array()
            else:
                self._joined["all"] = np.stack([s.array() for s in self.layers])
        return self._joined["all"]


@dataclass(frozen=True, eq=False)
class Prediction:
    """The prediction layers' arrays, handed to a worker (``labels`` joins them there)."""

    mode: str
    arrays: tuple[np.ndarray, ...]

    def labels(self) -> np.ndarray:
        """Exclusive: the label array; multilabel: ``(C, *spatial)`` (a copy)."""
        return self.arrays[0] if self.mode == EXCLUSIVE else np.stack(self.arrays)

    def class_labels(self) -> np.ndarray | None:
        """The class labels objects are made from (exclusive: the label array, not a copy);
        ``None`` in multilabel mode, where a pixel has no single class."""
        return self.arrays[0] if self.mode == EXCLUSIVE else None


def _differing(checks: list[tuple[PaintCopy, Any, Blocks]]) -> list[tuple[PaintCopy, list[Block]]]:
    """Worker body: for each unverified copy, the blocks that differ from its layer."""
    return [(copy, copy.differing(live, taken)) for copy, live, taken in checks]


def label_colormap(colors: dict[int, str]) -> DirectLabelColormap:
    """A Labels colormap: 0 transparent, value -> colour."""
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colors})


# --------------------------------------------------------------------------- the layers
class Layers(QObject):
    """Paint, prediction and probability layers of the chosen image.

    Signals
    -------
    painted
        A paint layer changed (every event; the controller debounces).
    """

    painted = Signal()
    regions_changed = Signal()

    def __init__(self, viewer: Any, image: ChosenImage, workers: WorkerSet, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.image = image
        self.workers = workers
        self.mode = EXCLUSIVE
        self.classes: tuple[ProjectClass, ...] = ()
        self.paint_layers: list[Any] = []
        self.prediction_layers: list[Any] = []
        #: Whether the prediction layers hold a prediction of the whole image.
        self.complete = False
        #: Grows whenever the layers are remade (see :class:`~segstudio._qt.image.Stamp`).
        self.generation = 0
        self._copies: dict[int, PaintCopy] = {}
        self._callbacks: dict[int, list[tuple[Any, Any]]] = {}
        self._snapshot: PaintSnapshot | None = None
        self._version = 0
        self._prediction_lent = False
        self._swapping = False
        self._regions: Any = None  # the Shapes layer of the validation regions, once made

    @property
    def stamp(self) -> Stamp:
        """What results computed now are for."""
        return Stamp(self.image.key, self.generation)

    # ------------------------------------------------------------------ attach / detach
    def attach(self, mode: str, classes: Sequence[ProjectClass]) -> tuple[list[str] | None, int]:
        """Adopt the chosen image's paint layers (e.g. a sample's strokes) or make them, and
        make the (empty) prediction layers. Returns what the adopted layers say about the
        classes: ``(names or None, at least this many classes)``."""
        self.detach()
        self.mode, self.classes = mode, tuple(classes)
        names, count = self._adopt_or_create()
        # Made now, empty, not when the first live prediction arrives: adding a napari layer
        # costs 0.2-0.5 s of GUI thread, which must not fall into training.
        self.ensure_predictions()
        return names, count

    def detach(self) -> None:
        """Stop watching the paint layers and forget all layers (they stay in the viewer)."""
        for layer in self.paint_layers:
            self._unwatch(layer)
        self.paint_layers, self.prediction_layers = [], []
        self.complete = False
        self._snapshot = None
        self.generation += 1

    def forget(self, layer: Any) -> str | None:
        """``layer`` was removed from the viewer; returns its role (``paintings``,
        ``prediction``) or ``None`` when it was not one of ours."""
        if layer in self.paint_layers:
            self._unwatch(layer)
            self.paint_layers = [lyr for lyr in self.paint_layers if lyr is not layer]
            self._snapshot = None
            return "paintings"
        if layer in self.prediction_layers:
            self.prediction_layers, self.complete = [], False
            return "prediction"
        return None

    # ------------------------------------------------------------------ classes and mode
    def set_classes(self, classes: Sequence[ProjectClass]) -> None:
        """Show ``classes``: colours, multi-label layer names, one paint layer per class."""
        if self.mode == MULTILABEL and len(classes) != len(self.classes):
            self.generation += 1  # other prediction layers: results on the way no longer fit
        self.classes = tuple(classes)
        if self.mode == MULTILABEL and self.image.layer is not None:
            for k in range(len(self.paint_layers), len(self.classes)):
                self.paint_layers.append(self._new_multilabel_layer(k))
            for k, layer in enumerate(self.paint_layers[: len(self.classes)]):
                layer.name = f"paint: {self.classes[k].name}"
            for k, layer in enumerate(self.prediction_layers[: len(self.classes)]):
                layer.name = f"prediction: {self.classes[k].name}"
        self._apply_colors()

    def remove_class(self, index: int, classes: Sequence[ProjectClass]) -> None:
        """Class ``index`` is gone: its strokes are erased (later classes move down by one)."""
        if self.mode == EXCLUSIVE:
            for layer in self.paint_layers:
                data = layer.data
                data[data == index + 1] = 0
                data[data > index + 1] -= 1
                self._copies[id(layer)].mark_all()
                layer.refresh()
        elif index < len(self.paint_layers):
            layer = self.paint_layers.pop(index)
            self._unwatch(layer)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.remove_predictions()
        self.set_classes(classes)
        self.painted.emit()

    def switch_mode(self, mode: str) -> None:
        """Remake the paint layers for ``mode``, converting the strokes painted so far."""
        old = [np.asarray(layer.data) for layer in self.paint_layers]
        old_mode, self.mode = self.mode, mode
        self.remove_predictions()
        gone, self.paint_layers, self._snapshot = self.paint_layers, [], None
        for layer in gone:
            self._unwatch(layer)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.generation += 1
        if self.image.layer is None:
            return
        self._create_paint_layers()
        if old and old_mode == EXCLUSIVE:
            for layer, data in zip(self.paint_layers, exclusive_to_multilabel(old[0], len(self.paint_layers))):
                layer.data = data
        elif old and self.paint_layers:
            out = np.zeros_like(self.paint_layers[0].data)
            for k, src in reversed(list(enumerate(old))):
                out[src == PRESENT] = k + 1
            self.paint_layers[0].data = out
        self.ensure_predictions()

    def show_image(self, paintings: Sequence[np.ndarray], taken: PaintSnapshot | None,
                   prediction: np.ndarray | None) -> None:
        """Another image is on screen (the image layer shows its pixels now): its paintings go
        into the paint layers and its prediction (or nothing) into the prediction layers, in
        place. ``taken``: the snapshot the paintings were taken as, kept as the current one so
        an unchanged image is not copied or offered again. Results on the way for the image
        before are dropped (the stamp changes)."""
        self.generation += 1
        name = self.image.name
        self._swapping = True
        try:
            for k, (layer, data) in enumerate(zip(self.paint_layers, paintings)):
                layer.data = data
                layer.metadata = {**layer.metadata, META_KEY: {**layer_meta(layer), "image": name}}
                self._copies[id(layer)] = (PaintCopy.of(taken.layers[k]) if taken is not None and k < len(taken.layers)
                                           else PaintCopy(layer.data, blank=False))
        finally:
            self._swapping = False
        self._snapshot = taken
        layers = self.ensure_predictions()
        arrays = [] if prediction is None else ([prediction] if self.mode == EXCLUSIVE else list(prediction))
        for k, layer in enumerate(layers):
            if self._prediction_lent:
                layer.data = np.zeros_like(layer.data)
            if k < len(arrays):
                layer.data[...] = arrays[k]
            else:
                layer.data[...] = 0
            layer.metadata = {**layer.metadata, META_KEY: {**layer_meta(layer), "image": name}}
            layer.refresh()
        self._prediction_lent = False
        self.complete = prediction is not None

    def regions_layer(self, regions: Sequence[Sequence[int]]) -> Any:
        """The Shapes layer in which the validation regions of the image on screen are drawn
        (made when missing), showing ``regions``, selected in rectangle mode."""
        layer = self._regions
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_shapes(
                ndim=len(self.image.spatial_shape), name=REGIONS_NAME, face_color="transparent",
                edge_color=REGIONS_COLOR, edge_width=2, metadata=self.image.metadata("validation"),
                **self.image.geometry())
            layer.events.data.connect(self._on_regions_event)
            self._regions = layer
        self.show_regions(regions)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def show_regions(self, regions: Sequence[Sequence[int]]) -> None:
        """Show the validation regions (boxes ``(start..., stop...)``) of the image on screen."""
        layer = self._regions
        if layer is None or layer not in self.viewer.layers:
            return
        n = len(self.image.spatial_shape)
        rects = []
        for box in regions:
            lo, hi = np.asarray(box[:n], float), np.asarray(box[n:], float) - 1
            if n == 3:
                lo[0] = hi[0] = lo[0]  # a rectangle in its first slice
            corners = [(lo[-2], lo[-1]), (hi[-2], lo[-1]), (hi[-2], hi[-1]), (lo[-2], hi[-1])]
            rects.append(np.array([[*lo[:-2], a, b] for a, b in corners]))
        self._swapping = True
        try:
            layer.data = []
            if rects:
                layer.add(rects, shape_type="rectangle")
        finally:
            self._swapping = False

    def regions(self) -> tuple[tuple[int, ...], ...]:
        """The validation regions drawn now: boxes ``(start..., stop...)`` in pixels (a
        rectangle drawn in a slice of a volume covers that slice)."""
        layer = self._regions
        if layer is None or layer not in self.viewer.layers:
            return ()
        shape = self.image.spatial_shape
        boxes = []
        for vertices in layer.data:
            v = np.asarray(vertices, float)[:, -len(shape):]
            lo = np.clip(np.floor(v.min(axis=0)), 0, shape).astype(int)
            hi = np.clip(np.ceil(v.max(axis=0)) + 1, 0, shape).astype(int)
            if (hi > lo).all():
                boxes.append((*map(int, lo), *map(int, hi)))
        return tuple(boxes)

    def _on_regions_event(self, event: Any = None) -> None:
        if not self._swapping:
            self.regions_changed.emit()

    def select_class(self, index: int) -> None:
        """Make the class's paint layer active, in paint mode, with the class's label."""
        if not 0 <= index < len(self.classes) or not self.paint_layers:
            return
        if self.mode == EXCLUSIVE:
            layer, label = self.paint_layers[0], index + 1
        else:
            if index >= len(self.paint_layers):
                return
            layer, label = self.paint_layers[index], PRESENT
        if layer not in self.viewer.layers:
            return
        self.viewer.layers.selection.active = layer
        layer.visible = True
        layer.selected_label = label
        layer.mode = "paint"

    # ------------------------------------------------------------------ paintings
    def snapshot(self) -> PaintSnapshot:
        """The paintings now (GUI thread: copies only the blocks that changed).

        Raises
        ------
        UserInputError
            When there is no complete set of paint layers.
        """
        if not self.paint_layers:
            raise UserInputError("no paint layer: choose an image first")
        if self.mode == MULTILABEL and len(self.paint_layers) != len(self.classes):
            raise UserInputError("a paint layer was deleted; switch the mode or the image to recreate it")
        copies = [self._copies[id(layer)] for layer in self.paint_layers]
        if self._snapshot is None or any(c.changed for c in copies):
            blocks = tuple(copy.take(layer.data) for copy, layer in zip(copies, self.paint_layers))
            self._version += 1
            self._snapshot = PaintSnapshot(self.image.key, self.mode, blocks, self._version)
        self._verify()
        return self._snapshot

    def set_paintings(self, paintings: np.ndarray) -> None:
        """Put saved paintings (exclusive: labels; multilabel ``(C, *spatial)``) into the layers.

        Raises
        ------
        UserInputError
            When they do not fit the image.
        """
        try:
            if self.mode == EXCLUSIVE:
                layer = self.paint_layers[0]
                data = paintings.astype(layer.data.dtype, copy=False)
                if data.shape != layer.data.shape:
                    raise ValueError(f"shape {data.shape}, the image {layer.data.shape}")
                layer.data = data
            else:
                for k, layer in enumerate(self.paint_layers):
                    if paintings[k].shape != layer.data.shape:
                        raise ValueError(f"shape {paintings[k].shape}, the image {layer.data.shape}")
                    layer.data = paintings[k].astype(np.uint8, copy=False)
        except (ValueError, IndexError) as e:
            raise UserInputError(f"the paintings do not fit the image ({e})") from e

    def _verify(self) -> None:
        """Compare unverified copies with their layers in a worker; what differs is marked and
        ``painted`` fires, so the next snapshot re-copies it."""
        if self.workers.busy("verify") or self._snapshot is None:
            return
        checks = []
        for layer, taken in zip(self.paint_layers, self._snapshot.layers):
            copy = self._copies[id(layer)]
            if copy.unverified:
                copy.unverified = False
                checks.append((copy, layer.data, taken))
        if checks:
            self.workers.start("verify", _differing, checks, returned=self._on_verified)

    def _on_verified(self, found: list[tuple[PaintCopy, list[Block]]]) -> None:
        changed = False
        for copy, blocks in found:
            if blocks and copy in self._copies.values():
                copy.mark_blocks(blocks)
                changed = True
        if changed:
            self.painted.emit()

    # ------------------------------------------------------------------ predictions
    def ensure_predictions(self) -> list[Any]:
        """The prediction layers (made, empty, when missing or of another shape)."""
        shape = self.image.spatial_shape
        alive = [lyr for lyr in self.prediction_layers if lyr in self.viewer.layers]
        want = 1 if self.mode == EXCLUSIVE else len(self.classes)
        if len(alive) == want and all(tuple(lyr.data.shape) == shape for lyr in alive):
            return alive
        self.remove_predictions()
        geometry = self.image.geometry()
        if self.mode == EXCLUSIVE:
            self.prediction_layers = [self.viewer.add_labels(
                np.zeros(shape, dtype=self._label_dtype()), name="prediction",
                opacity=PREDICTION_OPACITY, metadata=self.image.metadata("prediction"), **geometry)]
        else:
            self.prediction_layers = [self.viewer.add_labels(
                np.zeros(shape, dtype=np.uint8), name=f"prediction: {spec.name}", opacity=PREDICTION_OPACITY,
                metadata=self.image.metadata("prediction", class_index=k), **geometry)
                for k, spec in enumerate(self.classes)]
        self._apply_colors()
        # Keep the paint layers on top so strokes stay visible over the prediction.
        for lyr in self.paint_layers:
            if lyr in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(lyr), len(self.viewer.layers))
        if self.paint_layers and self.paint_layers[0] in self.viewer.layers:
            self.viewer.layers.selection.active = self.paint_layers[0]
        return self.prediction_layers

    def write_prediction(self, result: PredictResult) -> None:
        """Write a prediction of the image (or of a region of it) into the layers, in place."""
        layers = self.ensure_predictions()
        if self._prediction_lent:  # a worker is reading the arrays: write into new ones
            for layer in layers:
                layer.data = np.array(layer.data, copy=True)
            self._prediction_lent = False
        region = tuple(result.region)
        labels = [result.labels] if self.mode == EXCLUSIVE else list(result.labels)
        for layer, data in zip(layers, labels):
            layer.data[region] = data
            layer.refresh()
        shape = self.image.spatial_shape
        full = all(sl.start in (0, None) and sl.stop == n for sl, n in zip(region, shape))
        self.complete = full or self.complete

    def prediction(self) -> Prediction | None:
        """The prediction layers' arrays for a worker (not copied: a later write goes into new
        arrays instead), or ``None`` when there are none."""
        if not self.prediction_layers:
            return None
        self._prediction_lent = True
        return Prediction(self.mode, tuple(np.asarray(lyr.data) for lyr in self.prediction_layers))

    def set_prediction(self, labels: np.ndarray) -> bool:
        """Show a saved whole-image prediction; ``False`` when it does not fit the layers."""
        layers = self.ensure_predictions()
        arrays = [labels] if self.mode == EXCLUSIVE else list(labels)
        if len(arrays) != len(layers) or any(a.shape != lyr.data.shape for a, lyr in zip(arrays, layers)):
            self.remove_predictions()
            return False
        for layer, data in zip(layers, arrays):
            layer.data[...] = data
            layer.refresh()
        self.complete = True
        return True

    def remove_predictions(self) -> None:
        """Remove the prediction layers (results on the way are dropped)."""
        self.generation += 1
        for layer in self.prediction_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.prediction_layers, self.complete = [], False

    def show_probabilities(self, probabilities: np.ndarray) -> None:
        """One Image layer per class (0..1, the class colour, additive), updated in place."""
        geometry = self.image.geometry()
        for k, spec in enumerate(self.classes[: len(probabilities)]):
            name = f"probability: {spec.name}"
            data = np.asarray(probabilities[k], dtype=np.float32)
            layer = next((lyr for lyr in self.viewer.layers
                          if lyr.name == name and layer_meta(lyr).get("role") == "probability"), None)
            if layer is not None and tuple(layer.data.shape) == data.shape:
                layer.data = data
                continue
            if layer is not None:
                self.viewer.layers.remove(layer)
            cmap = Colormap([[0.0, 0.0, 0.0, 1.0], transform_color(spec.color)[0]], name=f"segstudio {spec.color}")
            self.viewer.add_image(data, name=name, colormap=cmap, blending="additive", contrast_limits=(0.0, 1.0),
                                  visible=k == 0, metadata=self.image.metadata("probability", class_index=k),
                                  **geometry)

    def show_other(self, layer: Any, result: PredictResult) -> None:
        """The prediction of another Image layer, into ``"<name> prediction"`` Labels layers
        (one per class, multi-label) with that layer's scale."""
        meta_axis = layer_meta(layer).get("channel_axis")  # RGB: not among the layer's dims
        scale = tuple(s for i, s in enumerate(layer.scale) if i != meta_axis)
        if self.mode == EXCLUSIVE:
            outputs = [(f"{layer.name} prediction", result.labels, self._exclusive_colors())]
        else:
            outputs = [(f"{layer.name} prediction: {c.name}", result.labels[k], {1: c.color})
                       for k, c in enumerate(self.classes)]
        for name, data, colors in outputs:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            out = self.viewer.add_labels(data, name=name, scale=scale, opacity=PREDICTION_OPACITY,
                                         metadata={META_KEY: {"role": "prediction", "of": layer.name}})
            out.colormap = label_colormap(colors)

    def label_axes(self) -> str:
        """Axis letters of the prediction as written to a file."""
        spatial = "ZYX"[-len(self.image.spatial_shape):]
        return spatial if self.mode == EXCLUSIVE else "C" + spatial

    # ------------------------------------------------------------------ making layers
    def _label_dtype(self) -> type:
        return np.uint8 if len(self.classes) < 255 else np.uint16

    def _exclusive_colors(self) -> dict[int, str]:
        return {i + 1: c.color for i, c in enumerate(self.classes)}

    def _add_paint_layer(self, data: np.ndarray, name: str, **meta: Any) -> Any:
        layer = self.viewer.add_labels(data, name=name, metadata=self.image.metadata("paintings", **meta),
                                       **self.image.geometry())
        self._watch(layer, blank=True)
        return layer

    def _new_multilabel_layer(self, k: int) -> Any:
        spec = self.classes[k]
        layer = self._add_paint_layer(np.zeros(self.image.spatial_shape, dtype=np.uint8), f"paint: {spec.name}",
                                      class_index=k)
        layer.colormap = label_colormap({PRESENT: spec.color, ABSENT: ABSENT_COLOR})
        return layer

    def _create_paint_layers(self) -> None:
        if self.mode == EXCLUSIVE:
            layer = self._add_paint_layer(np.zeros(self.image.spatial_shape, dtype=self._label_dtype()), "paintings")
            layer.colormap = label_colormap(self._exclusive_colors())
            self.paint_layers = [layer]
        else:
            self.paint_layers = [self._new_multilabel_layer(k) for k in range(len(self.classes))]
        if self.paint_layers and self.image.layer in self.viewer.layers:
            self.viewer.layers.selection.active = self.paint_layers[0]

    def _adopt_or_create(self) -> tuple[list[str] | None, int]:
        """Reuse paint layers of this image (e.g. a sample's example strokes) or create them."""
        shape = self.image.spatial_shape
        found_excl, found_multi = None, {}
        for layer in self.viewer.layers:
            if layer.__class__.__name__ != "Labels" or tuple(layer.data.shape) != shape:
                continue
            meta = layer_meta(layer)
            if meta.get("role") != "paintings" or meta.get("image") not in (None, self.image.name):
                continue
            if "class_index" in meta:
                found_multi[int(meta["class_index"])] = layer
            elif found_excl is None:
                found_excl = layer
        if found_excl is not None and self.mode == EXCLUSIVE:
            names = layer_meta(found_excl).get("class_names")
            top = int(np.max(found_excl.data)) if found_excl.data.size else 0
            self.paint_layers = [found_excl]
            self._watch(found_excl, blank=False)
            return (list(names) if names else None), top
        if found_multi and self.mode == MULTILABEL and sorted(found_multi) == list(range(len(found_multi))):
            self.paint_layers = [found_multi[k] for k in range(len(found_multi))]
            for layer in self.paint_layers:
                self._watch(layer, blank=False)
            return None, len(found_multi)
        self._create_paint_layers()
        return None, 0

    def _apply_colors(self) -> None:
        if self.mode == EXCLUSIVE:
            cmap = label_colormap(self._exclusive_colors())
            for layer in self.paint_layers + self.prediction_layers:
                layer.colormap = cmap
            return
        for layer, spec in zip(self.paint_layers, self.classes):
            layer.colormap = label_colormap({PRESENT: spec.color, ABSENT: ABSENT_COLOR})
        for layer, spec in zip(self.prediction_layers, self.classes):
            layer.colormap = label_colormap({1: spec.color})

    # ------------------------------------------------------------------ paint events
    def _watch(self, layer: Any, *, blank: bool) -> None:
        self._copies[id(layer)] = PaintCopy(layer.data, blank=blank)
        callbacks = []
        for name in PAINT_EVENTS:
            cb = partial(self._on_paint_event, layer, name)
            getattr(layer.events, name).connect(cb)
            callbacks.append((getattr(layer.events, name), cb))
        self._callbacks[id(layer)] = callbacks

    def _unwatch(self, layer: Any) -> None:
        for event, cb in self._callbacks.pop(id(layer), []):
            try:
                event.disconnect(cb)
            except Exception:  # noqa: BLE001 - the layer may be half torn down
                pass
        self._copies.pop(id(layer), None)

    def _on_paint_event(self, layer: Any, kind: str, event: Any = None) -> None:
        copy = self._copies.get(id(layer))
        if copy is None or self._swapping:
            return
        if kind == "paint":
            copy.mark(getattr(event, "value", None))
        elif kind == "data":  # a new array: copy all of it
            self._copies[id(layer)] = PaintCopy(layer.data, blank=False)
        else:  # set_data: a refresh, an undo or a redo, or only a new slice in view
            copy.unverified = True
        self.painted.emit()
