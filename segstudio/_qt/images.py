"""The images of the session (a project of many images): the image list, switching, and
*Predict all*.

One napari Image layer shows the image on screen; switching puts another image's pixels,
paintings and prediction into the same layers (no napari layer is added, which costs more than
the switch may take). An image not on screen keeps what it needs to train and to come back:

* its pixels: a file read lazily (memory-mapped where the format allows) only when it is shown
  or trained on, or the array of a napari layer that was added to the list;
* its paintings (:class:`StoredPaintings`): the snapshot taken when it left the screen, or its
  saved file in the project (read once, in a worker, when training or the class weights need it);
* its prediction: the one it had on screen, or the labels file *Predict all* wrote;
* its state (:data:`segstudio.core.project.IMAGE_STATES`), painted pixels per class, which run
  predicted it and how sure that prediction is, whether it is reviewed or for validation.

Opening a project of many images reads ``project.json`` and the first image, nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from segstudio._qt.image import META_KEY, image_key, layer_meta, source_of
from segstudio._qt.layers import PaintSnapshot, Prediction
from segstudio._qt.notify import Notifier
from segstudio._qt.results import make_predictor
from segstudio._qt.workers import WorkerSet
from segstudio.core.annotations import EXCLUSIVE
from segstudio.core.batch import (
    FileDone,
    ImagePredicted,
    image_files,
    iter_predict_images,
    project_labels_path,
    split_ext,
)
from segstudio.core.data import TrainingImage
from segstudio.core.errors import UserInputError
from segstudio.core.io import ImageMeta, read_image, read_labels, write_image
from segstudio.core.label_import import (
    label_values,
    looks_like_instances,
    paintings_from_instances,
    paintings_from_labels,
)
from segstudio.core.metrics import mean_entropy
from segstudio.core.lazy import release_pages
from segstudio.core.predictor import PredictProgress, PredictResult
from segstudio.core.project import (
    Project,
    ProjectImage,
    check_same_dims,
    image_info,
    image_path,
    image_state,
    open_paintings,
    read_predictions,
    regions_mask,
    safe_name,
    stored_path,
    without_extra_classes,
)
from segstudio.core.weights import count_paintings, painted_extent

__all__ = [
    "ImageEntry", "Images", "LabelsToImport", "Loaded", "PaintedImage", "StoredPaintings", "layer_metadata",
    "layer_scale", "saved_prediction_reader",
]


# --------------------------------------------------------------------------- what an image keeps
class ImageSource:
    """Where an image's pixels are: a file (opened lazily, once) or an array already in memory.

    Safe to call from workers: the file is opened once, under a lock.
    """

    def __init__(self, path: Path | None = None, data: Any = None, meta: ImageMeta | None = None) -> None:
        self.path = path
        self._data, self._meta = data, meta
        self._lock = threading.Lock()

    def pixels(self) -> tuple[Any, ImageMeta | None]:
        """The pixels (lazy where the file allows) and the file's metadata.

        Raises
        ------
        UserInputError
            The file is gone or unreadable.
        """
        with self._lock:
            if self._data is None:
                if self.path is None:
                    raise UserInputError("the image has no pixels")
                self._data, self._meta = read_image(self.path, lazy=True)
            return self._data, self._meta


class StoredPaintings:
    """The paintings of an image that is not on screen: a snapshot taken this session, or the
    file a project saved (read once, when needed, under the project's write lock).

    ``paintings()`` and ``counts()`` may run in workers.
    """

    def __init__(self, name: str, snapshot: PaintSnapshot | None = None, *, folder: Path | None = None,
                 project: Project | None = None, autosaved: bool = False,
                 lock: Any = None, known: tuple[int, ...] = ()) -> None:
        self.name = name
        #: Painted pixels per class the project lists for the file (exclusive class counts).
        self.known = known if snapshot is None and not autosaved else ()
        self.snapshot = snapshot
        self.folder, self.project, self.autosaved = folder, project, autosaved
        self._lock = lock or threading.Lock()
        self._array: np.ndarray | None = None
        self._counts: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._extents: dict[str, tuple[int, int]] = {}
        self._mine = threading.Lock()

    @property
    def version(self) -> int:
        """The snapshot's version (``-1``: from a file, not changed this session)."""
        return -1 if self.snapshot is None else self.snapshot.version

    def paintings(self) -> np.ndarray | None:
        """The paintings (``None``: none saved). Strokes of classes the project does not
        declare are left out.

        Raises
        ------
        UserInputError
            A damaged paintings file.
        """
        if self.snapshot is not None:
            return self.snapshot.paintings()
        with self._mine:
            if self._array is None:
                self._array = self._read()
            return self._array

    def _read(self) -> np.ndarray | None:
        if self.folder is None or self.project is None:
            return None
        with self._lock:
            paint, mismatch = open_paintings(self.folder, self.project, self.name, autosaved=self.autosaved)
        if paint is not None and mismatch is not None:
            paint = without_extra_classes(self.project, paint)
        return paint

    def counts(self, mode: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """``(painted per class, absent per class)``: exclusive pixels of class k and zeros;
        multi-label present and absent pixels of class k (what the class weights count).

        Exclusive counts of a saved file come from the project (no file is read); a file read
        only to count is not kept."""
        key = (mode, n_classes)
        if key not in self._counts:
            known = self.known if mode == EXCLUSIVE and len(self.known) == n_classes else None
            if self.snapshot is None and known is not None:
                self._counts[key] = (np.asarray(known, np.int64), np.zeros(n_classes, np.int64))
            elif self.snapshot is None and self._array is None:
                self._counts[key] = count_paintings(self._read(), mode, n_classes)
            else:
                self._counts[key] = count_paintings(self.paintings(), mode, n_classes)
        return self._counts[key]

    def extent(self, mode: str) -> tuple[int, int]:
        """``(painted, bounding-box pixels)`` of the paintings (:func:`painted_extent`, what the
        class weights are tempered by); a file read only for it is not kept."""
        if mode not in self._extents:
            paint = self._read() if self.snapshot is None and self._array is None else self.paintings()
            self._extents[mode] = painted_extent(paint, mode)
        return self._extents[mode]


@dataclass(eq=False)
class ImageEntry:
    """One image of the session, on screen or not (GUI thread only; workers get the frozen
    pieces: its :class:`ImageSource`, its :class:`StoredPaintings`)."""

    name: str
    source: ImageSource
    channel_axis: int | None
    shape: tuple[int, ...]
    channels: int
    layer_meta: dict[str, Any] = field(default_factory=dict)  # the image layer's segstudio metadata
    scale: tuple[float, ...] | None = None  # the layer's scale (every axis), None: from the file
    stored: StoredPaintings | None = None
    painted: tuple[int, ...] = ()
    prediction: Prediction | None = None  # the whole-image prediction it had on screen
    labels: Path | None = None  # what Predict all wrote
    saved_prediction: bool = False  # the project holds a prediction of it
    predicted_by: str = ""
    uncertainty: float | None = None
    reviewed: bool = False
    validation: bool = False
    regions: tuple[tuple[int, ...], ...] = ()
    project_image: ProjectImage | None = None  # as the open project lists it
    saved_version: int = -1  # the paintings version last saved or autosaved
    clean_version: int = -1  # the paintings version as it was put on screen (unchanged since)
    counted_version: int = -1  # the paintings version ``painted`` was counted in

    @property
    def state(self) -> str:
        return image_state(sum(self.painted), bool(self.predicted_by), self.reviewed)

    @property
    def file(self) -> Path | None:
        """The image's file, when it has one that still exists."""
        path = self.source.path
        return path if path is not None and path.exists() else None

    def holdout(self) -> Any:
        """What of the image is held out for validation (``TrainingImage.holdout``)."""
        if self.validation:
            return True
        return regions_mask(self.shape, self.regions) if self.regions else None


@dataclass(frozen=True)
class PaintedImage:
    """A painted image that is not on screen, as training needs it (read in a worker)."""

    name: str
    source: ImageSource
    stored: StoredPaintings
    channel_axis: int | None
    holdout: Any = None

    def training_image(self, mode: str, n_classes: int) -> TrainingImage | None:
        """Its pixels and paintings for the trainer (``None``: nothing painted); multi-label
        paintings from before a class was added get empty channels for it."""
        paint = self.stored.paintings()
        if paint is None or not paint.any():
            return None
        if mode != EXCLUSIVE and paint.shape[0] < n_classes:
            paint = np.concatenate([paint, np.zeros((n_classes - paint.shape[0], *paint.shape[1:]), paint.dtype)])
        pixels, _ = self.source.pixels()
        return TrainingImage(pixels if isinstance(pixels, np.ndarray) else np.asarray(pixels), paint,
                             self.channel_axis, self.holdout)

    def weighed(self, mode: str, n_classes: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``(present, absent, extent)`` of the paintings trained on (held-out strokes left
        out): per class what the class weights count (:func:`count_paintings`), and the painted
        pixels with their bounding box, what the weights are tempered by
        (:func:`painted_extent`); with a holdout, both from one copy of the paintings."""
        if self.holdout is None:
            return (*self.stored.counts(mode, n_classes), self.stored.extent(mode))
        paint = self.stored.paintings()
        kept = None
        if self.holdout is not True and paint is not None:
            region = self.holdout if mode == EXCLUSIVE else np.broadcast_to(self.holdout, paint.shape)
            kept = np.where(region, 0, paint)
        return (*count_paintings(kept, mode, n_classes), painted_extent(kept, mode))


@dataclass(frozen=True)
class Loaded:
    """What switching to image ``name`` shows (read in a worker)."""

    name: str
    pixels: Any
    meta: ImageMeta | None
    paintings: tuple[np.ndarray, ...]  # one per paint layer, writable
    taken: PaintSnapshot | None  # the snapshot the paintings are (None: read from a file)
    prediction: np.ndarray | None  # exclusive labels or (C, *spatial)
    complete: bool  # the prediction covers the whole image


def load_entry(name: str, source: ImageSource, stored: StoredPaintings | None, prediction: Prediction | None,
               labels: Path | None, saved: Callable[[], np.ndarray | None] | None, mode: str, n_classes: int,
               shape: tuple[int, ...]) -> Loaded:
    """Worker body: an image's pixels, paintings and prediction, ready for the layers."""
    pixels, meta = source.pixels()
    taken = stored.snapshot if stored is not None else None
    paint = stored.paintings() if stored is not None else None
    if mode == EXCLUSIVE:
        layers = [_writable(paint, shape)] if paint is not None else [np.zeros(shape, np.uint8)]
    else:
        have = 0 if paint is None else min(len(paint), n_classes)
        layers = [_writable(paint[k], shape) for k in range(have)]
        layers += [np.zeros(shape, np.uint8) for _ in range(have, n_classes)]
        if have != n_classes:
            taken = None  # the snapshot is of other classes
    if taken is not None and len(taken.layers) != len(layers):
        taken = None
    labels_array = None
    if prediction is not None:
        labels_array = prediction.labels()
    elif labels is not None and labels.exists():
        labels_array = np.asarray(read_labels(labels)[0])
    elif saved is not None:
        labels_array = saved()
    expected = shape if mode == EXCLUSIVE else (n_classes, *shape)
    if labels_array is not None and tuple(labels_array.shape) != tuple(expected):
        labels_array = None  # a prediction of other classes: not shown
    return Loaded(name, pixels, meta, tuple(layers), taken, labels_array, labels_array is not None)


def _painted(snapshot: PaintSnapshot) -> bool:
    """Whether a snapshot has any stroke (its blocks are read, not joined)."""
    return any(part.any() for layer in snapshot.layers for part in layer.parts)


def _writable(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if tuple(arr.shape) != tuple(shape):
        raise UserInputError(f"the paintings have shape {arr.shape}, the image {shape}")
    return arr if arr.flags.writeable else np.array(arr, copy=True)


@dataclass(frozen=True)
class Described:
    """A file checked to be an image that fits the session (read lazily in a worker)."""

    path: Path
    shape: tuple[int, ...]
    channels: int
    channel_axis: int | None


def describe_files(paths: Sequence[Path]) -> tuple[list[Described], list[str]]:
    """Worker body: each file's spatial shape and channels (no pixels read); one error line
    per file that is not an image."""
    found, errors = [], []
    for path in paths:
        try:
            shape, channels, ch = image_info(path)
        except UserInputError as e:
            errors.append(str(e))
            continue
        found.append(Described(Path(path), shape, channels, ch))
    return found, errors


@dataclass(frozen=True)
class BatchItem:
    """One image for *Predict all*: a file, or pixels without one."""

    name: str
    path: Path | None
    channel_axis: int | None
    source: ImageSource | None = None


def predict_all(model: tuple[Any, Any], items: Sequence[BatchItem], out: Path) -> Iterator[Any]:
    """Worker body: predict every image into ``out`` with ``model`` (config, weights), the
    loop of ``segstudio predict --project``; images without a file are written as
    ``NAME_labels.tif``."""
    predictor = make_predictor(*model)
    files = [(it.name, it.path, it.channel_axis) for it in items if it.path is not None]
    total, done = len(items), 0
    for ev in iter_predict_images(predictor, files, out):
        if isinstance(ev, ImagePredicted):
            done += 1
            yield replace(ev, index=done, total=total)
        elif isinstance(ev, PredictProgress):
            yield ev
    for it in items:
        if it.path is None and it.source is not None:
            pixels, _ = it.source.pixels()
            done += 1
            yield from _predict_in_memory(predictor, it, np.asarray(pixels), out, done, total)


def _predict_in_memory(predictor: Any, it: BatchItem, pixels: np.ndarray, out: Path, index: int,
                       total: int) -> Iterator[Any]:
    result = None
    for ev in predictor.iter_predict(pixels, it.channel_axis, probabilities=True):
        if isinstance(ev, PredictResult):
            result = ev
        else:
            yield ev
    assert result is not None
    dest = project_labels_path(out, it.name, f"{it.name}.tif")
    write_image(dest, result.labels)
    done = FileDone(index, total, it.name, dest, None, 0.0, False, pixels=pixels, result=result)
    yield ImagePredicted(it.name, index, total, dest, mean_entropy(result.probabilities, predictor.config.mode), done)


@dataclass(frozen=True)
class LabelsToImport:
    """A label image read to become the paintings of the image on screen.

    ``values``: its distinct values; ``instances``: it looks like an instance mask (more
    values than classes), so the dialog offers the instance schemes first.
    """

    what: str
    labels: np.ndarray
    values: np.ndarray
    instances: bool


def read_labels_to_import(source: Any, what: str, spatial: tuple[int, ...], n_classes: int) -> LabelsToImport:
    """Worker body: a label file (path) or array, checked to fit the image, and its values."""
    if isinstance(source, (str, Path)):
        labels = np.asarray(read_labels(source)[0])
    else:
        labels = np.asarray(source)
    if tuple(labels.shape) != tuple(spatial):
        raise UserInputError(f"'{what}' has shape {labels.shape}; the image on screen has the spatial shape "
                             f"{spatial}: expected the same")
    values = label_values(labels, f"'{what}'")
    return LabelsToImport(what, labels, values, looks_like_instances(values, n_classes))


def imported_paintings(ready: LabelsToImport, mapping: Mapping[int, int | None] | None, scheme: str | None,
                       mode: str, n_classes: int, current: np.ndarray) -> np.ndarray:
    """Worker body: the paintings from imported labels (a value → class ``mapping``, or an
    instance ``scheme``), under the strokes already painted (those are kept)."""
    what = f"'{ready.what}'"
    if scheme is not None:
        new = paintings_from_instances(ready.labels, scheme, mode, n_classes, what=what)
    else:
        new = paintings_from_labels(ready.labels, mapping or {}, mode, n_classes, what=what)
    current = np.asarray(current)
    return np.where(current == 0, new, current).astype(current.dtype, copy=False)


def unique_name(base: str, taken: set[str]) -> str:
    """``base`` (as a file name), or ``base-2``, ``base-3`` … when taken."""
    base = safe_name(base)
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


# --------------------------------------------------------------------------- the part
class Images(QObject):
    """The session's images, the one on screen, switching, and *Predict all*.

    Signals
    -------
    changed
        The list or an image's state changed (the image list redraws).
    loaded(Loaded)
        An image was read for switching (the controller puts it on screen).
    predicted(ImagePredicted)
        *Predict all* finished an image.
    predict_progress(done, total)
        (0, 0): *Predict all* is not running.
    """

    changed = Signal()
    loaded = Signal(object)
    predicted = Signal(object)
    predict_progress = Signal(int, int)

    def __init__(self, workers: WorkerSet, notify: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.notify = notify
        self.entries: list[ImageEntry] = []
        #: The name of the image on screen (``None``: none).
        self.current: str | None = None
        #: The image being read for a switch (``None``: none).
        self.switching: str | None = None
        self._wanted: str | None = None
        self._count_next: dict[str, tuple[Any, ...]] = {}

    # ------------------------------------------------------------------ the list
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def entry(self, name: str) -> ImageEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise UserInputError(f"there is no image called {name!r}")

    def current_entry(self) -> ImageEntry | None:
        return next((e for e in self.entries if e.name == self.current), None)

    def reset(self, layer: Any, channel_axis: int | None) -> None:
        """The session shows ``layer`` only (an image chosen in the image menu)."""
        if layer is None:
            self.entries, self.current = [], None
        else:
            self.entries = [self._layer_entry(layer, channel_axis, image_key(layer))]
            self.current = self.entries[0].name
        self.changed.emit()

    def _layer_entry(self, layer: Any, channel_axis: int | None, name: str) -> ImageEntry:
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        shape = tuple(int(n) for i, n in enumerate(data.shape) if i != channel_axis)
        channels = 1 if channel_axis is None else int(data.shape[channel_axis])
        src = source_of(layer)
        return ImageEntry(name, ImageSource(Path(src) if src else None, data), channel_axis, shape, channels,
                          layer_meta=layer_meta(layer), scale=tuple(float(s) for s in layer.scale))

    def set_channel_axis(self, axis: int | None) -> None:
        """The image on screen's channel axis changed (a single-image session)."""
        entry = self.current_entry()
        if entry is not None:
            data, _ = entry.source.pixels()
            entry.channel_axis = axis
            entry.shape = tuple(int(n) for i, n in enumerate(data.shape) if i != axis)
            entry.channels = 1 if axis is None else int(data.shape[axis])

    def from_project(self, folder: Path, project: Project, first: Any, recovered: Sequence[str],
                     lock: Any) -> None:
        """The images of an opened project; ``first`` (the layer of its first image) is on
        screen. Paintings of the others stay in their files until needed."""
        entries = []
        for i, im in enumerate(project.images):
            path = image_path(folder, im)
            source = ImageSource(path, first.data) if i == 0 else ImageSource(path)
            labels = folder / im.labels if im.labels else None
            stored = None
            if im.paintings or im.name in recovered:
                stored = StoredPaintings(im.name, folder=folder, project=project, autosaved=im.name in recovered,
                                         lock=lock, known=im.painted)
            entries.append(ImageEntry(
                im.name, source, im.channel_axis, im.shape, im.channels,
                layer_meta=layer_meta(first) if i == 0 else {}, stored=stored, painted=im.painted,
                labels=labels, saved_prediction=bool(im.prediction), predicted_by=im.predicted_by,
                uncertainty=im.uncertainty, reviewed=im.reviewed, validation=im.validation, regions=im.regions,
                project_image=im))
        if entries and not entries[0].shape:  # a project written before shapes were kept
            data = first.data
            ch = entries[0].channel_axis
            entries[0].shape = tuple(int(n) for i, n in enumerate(data.shape) if i != ch)
            entries[0].channels = 1 if ch is None else int(data.shape[ch])
        self.entries = entries
        self.current = entries[0].name if entries else None
        self.changed.emit()

    def add_files(self, paths: Sequence[str | Path]) -> None:
        """Add image files (checked in a worker: 2D or 3D, the session's dimensions and channels)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.notify.info(f"adding {len(paths)} image{'s' if len(paths) != 1 else ''}…")
        self.workers.start("add images", describe_files, paths, returned=self._on_described,
                           errored=self.notify.worker_failed)

    def add_folder(self, folder: str | Path) -> None:
        """Add every image file of ``folder``."""
        files = image_files(folder)
        if not files:
            self.notify.fail(f"no images in '{folder}'")
            return
        self.add_files(files)

    def _on_described(self, out: tuple[list[Described], list[str]]) -> None:
        found, errors = out
        added = []
        for d in found:
            try:
                self._check_fits(d.path, d.shape, d.channels)
            except UserInputError as e:
                errors.append(str(e))
                continue
            name = unique_name(_stem(d.path), set(self.names()))
            self.entries.append(ImageEntry(name, ImageSource(d.path), d.channel_axis, d.shape, d.channels))
            added.append(name)
        for message in errors:
            self.notify.fail(message)
        if added:
            self.notify.info(f"{len(added)} image{'s' if len(added) != 1 else ''} added"
                             + (f" ({len(errors)} refused)" if errors else ""))
            self.changed.emit()

    def add_layers(self, layers: Sequence[Any], channel_axes: Sequence[int | None]) -> list[Any]:
        """Add napari Image layers; returns the layers added (the caller takes them out of
        the viewer: the image list shows them). A layer that does not fit is refused with one
        line."""
        added = []
        for layer, ch in zip(layers, channel_axes):
            entry = self._layer_entry(layer, ch, unique_name(image_key(layer), set(self.names())))
            try:
                self._check_fits(layer.name, entry.shape, entry.channels)
            except UserInputError as e:
                self.notify.fail(str(e))
                continue
            self.entries.append(entry)
            added.append(layer)
        if added:
            self.changed.emit()
        return added

    def _check_fits(self, what: Any, shape: tuple[int, ...], channels: int) -> None:
        if self.entries:
            check_same_dims(what, shape, channels, self.entries[0].shape, self.entries[0].channels)

    def remove(self, name: str) -> None:
        """Remove an image from the list (not the image on screen; its file stays where it is)."""
        if name == self.current:
            raise UserInputError("the image on screen cannot be removed: switch to another image first")
        self.entries = [e for e in self.entries if e.name != name]
        self.changed.emit()

    # ------------------------------------------------------------------ states
    def set_painted(self, name: str, counts: Sequence[int], version: int) -> None:
        """The painted pixels per class of image ``name`` as counted (in a worker) in its
        paintings ``version``; counts of an older version than shown already are dropped."""
        entry = next((e for e in self.entries if e.name == name), None)
        if entry is None or version < entry.counted_version:
            return
        entry.counted_version = version
        if tuple(counts) != entry.painted:
            entry.painted = tuple(int(c) for c in counts)
            self.changed.emit()

    def touched(self, name: str) -> None:
        """The user painted on image ``name``: a predicted image counts as reviewed."""
        entry = next((e for e in self.entries if e.name == name), None)
        if entry is not None and entry.predicted_by and not entry.reviewed:
            entry.reviewed = True
            self.changed.emit()

    def set_reviewed(self, name: str, reviewed: bool) -> None:
        entry = self.entry(name)
        if entry.reviewed != reviewed:
            entry.reviewed = reviewed
            self.changed.emit()

    def set_validation(self, name: str, validation: bool) -> None:
        entry = self.entry(name)
        if entry.validation != validation:
            entry.validation = validation
            self.changed.emit()

    def set_regions(self, name: str, regions: tuple[tuple[int, ...], ...]) -> None:
        """The validation regions of image ``name`` (boxes ``(start..., stop...)``)."""
        entry = self.entry(name)
        if entry.regions != regions:
            entry.regions = regions
            self.changed.emit()

    def next_unreviewed(self) -> str | None:
        """The predicted, unreviewed image (not the one on screen) the model is least sure of
        (highest mean entropy; images without one last), or ``None``."""
        todo = [e for e in self.entries if e.predicted_by and not e.reviewed and e.name != self.current]
        if not todo:
            return None
        return max(todo, key=lambda e: (-1.0 if e.uncertainty is None else e.uncertainty)).name

    def painted_elsewhere(self) -> list[str]:
        """Images other than the one on screen that have paintings."""
        return [e.name for e in self.entries if e.name != self.current and sum(e.painted)]

    def count(self, snapshot: PaintSnapshot, mode: str, n_classes: int) -> None:
        """Count the painted pixels per class of a paint snapshot (a worker), for the list."""
        if self.workers.busy("count"):
            self._count_next[snapshot.image] = (snapshot, mode, n_classes)
            return

        def work() -> tuple[int, ...]:
            present, absent = count_paintings(snapshot.paintings(), mode, n_classes)
            return tuple(int(c) for c in present + absent)

        def next_count() -> None:
            if self._count_next:
                self.count(*self._count_next.pop(next(iter(self._count_next))))

        self.workers.start("count", work,
                           returned=lambda counts: self.set_painted(snapshot.image, counts, snapshot.version),
                           errored=lambda e: None, finished=next_count)

    # ------------------------------------------------------------------ training
    def training_key(self) -> tuple[Any, ...]:
        """What training sees of the images (a new key: offer the paintings again): the
        paintings of those not on screen, and what of each is held out for validation."""
        return tuple((e.name, e.stored.version if e.stored is not None and e.name != self.current else None,
                      e.validation, e.regions) for e in self.entries)

    def paint_key(self) -> tuple[Any, ...]:
        """The paintings versions of the images not on screen (compared with the last save)."""
        return tuple((e.name, e.stored.version) for e in self.entries
                     if e.name != self.current and e.stored is not None and e.stored.snapshot is not None)

    def others(self) -> tuple[PaintedImage, ...]:
        """The painted images not on screen, for training and the class weights."""
        return tuple(PaintedImage(e.name, e.source, e.stored, e.channel_axis, e.holdout())
                     for e in self.entries if e.name != self.current and e.stored is not None)

    # ------------------------------------------------------------------ switching
    def leave(self, snapshot: PaintSnapshot | None, prediction: Prediction | None) -> None:
        """The image on screen leaves it: its paintings (and whole-image prediction) are kept."""
        entry = self.current_entry()
        if entry is None:
            return
        changed = snapshot is not None and snapshot.version != entry.clean_version
        if changed and (entry.stored is not None or _painted(snapshot)):
            entry.stored = StoredPaintings(entry.name, snapshot)
        if prediction is not None:
            entry.prediction = prediction
        if entry.source.path is not None:  # the pages read to show it need not stay resident
            release_pages(entry.source.pixels()[0])

    def load(self, name: str, mode: str, n_classes: int,
             saved: Callable[[str], Callable[[], np.ndarray | None] | None]) -> None:
        """Read image ``name`` for switching (a worker; ``loaded`` follows). A newer switch
        replaces one that waits; ``saved(name)``: how to read its saved prediction, if any."""
        entry = self.entry(name)
        if self.workers.busy("switch"):
            self._wanted = name
            return
        self.switching = name
        self.workers.start("switch", load_entry, name, entry.source, entry.stored, entry.prediction, entry.labels,
                           saved(name) if entry.saved_prediction else None, mode, n_classes, entry.shape,
                           returned=self.loaded.emit, errored=self._on_load_failed,
                           finished=lambda: self._next_load(mode, n_classes, saved))

    def _on_load_failed(self, exc: BaseException) -> None:
        self.switching = None
        self.notify.worker_failed(exc, "cannot show the image")

    def _next_load(self, mode: str, n_classes: int, saved: Callable[[str], Any]) -> None:
        wanted, self._wanted = self._wanted, None
        if wanted is not None and wanted != self.current:
            self.load(wanted, mode, n_classes, saved)
        elif not self.workers.busy("switch"):
            self.switching = None

    @property
    def superseded(self) -> bool:
        """A newer switch waits: the image just read is not shown."""
        return self._wanted is not None

    def shown(self, name: str, version: int) -> None:
        """Image ``name`` is on screen now, its paintings as snapshot ``version``."""
        self.current = name
        self.switching = None
        self.entry(name).clean_version = version
        self.changed.emit()

    def edited(self, version: int) -> None:
        """The paintings on screen are at ``version``: when that is not what was put on
        screen, the user painted (a predicted image counts as reviewed)."""
        entry = self.current_entry()
        if entry is not None and version != entry.clean_version:
            self.touched(entry.name)

    # ------------------------------------------------------------------ predict all
    @property
    def predicting(self) -> bool:
        return self.workers.busy("predict all")

    def predict_all(self, model: tuple[Any, Any], out: Path, run: str,
                    record: Callable[[dict[str, Path]], None] | None = None) -> None:
        """Predict every image of the list into ``out`` with ``model`` (config, weights),
        with progress and Cancel; ``record`` gets the labels files written, at the end."""
        if self.predicting:
            return
        items = [BatchItem(e.name, e.file, e.channel_axis, None if e.file is not None else e.source)
                 for e in self.entries]
        self.notify.info(f"predicting {len(items)} images into {out}…")
        self.predict_progress.emit(0, len(items))
        written: dict[str, Path] = {}

        def on_event(ev: Any) -> None:
            if isinstance(ev, ImagePredicted):
                entry = next((e for e in self.entries if e.name == ev.name), None)
                if entry is not None:
                    entry.labels, entry.predicted_by, entry.uncertainty = Path(ev.labels), run, ev.uncertainty
                    entry.reviewed, entry.prediction = False, None
                    written[ev.name] = Path(ev.labels)
                self.predict_progress.emit(ev.index, ev.total)
                self.predicted.emit(ev)
                self.changed.emit()

        def finished() -> None:
            self.predict_progress.emit(0, 0)
            if record is not None and written:
                record(dict(written))

        worker = self.workers.start("predict all", predict_all, model, items, out, yielded=on_event,
                                    errored=self.notify.worker_failed, finished=finished)
        if worker is not None and hasattr(worker, "aborted"):
            worker.aborted.connect(lambda: self.notify.info("Predict all cancelled"))

    def cancel(self) -> None:
        self.workers.quit("predict all")

    # ------------------------------------------------------------------ projects
    def project_images(self, folder: Path, same: bool) -> tuple[tuple[ProjectImage, ...], dict[str, Any]]:
        """The images as ``project.json`` lists them for a save into ``folder`` (``same``: the
        open project), and the pixels of images without a file (copied into the project)."""
        out, copies = [], {}
        for e in self.entries:
            # the counts of saved paintings that are not written again are the project's
            unchanged = same and e.project_image is not None and (e.stored is None or e.stored.snapshot is None)
            painted = e.project_image.painted if unchanged else e.painted
            state = dict(shape=e.shape, channels=e.channels, painted=painted, predicted_by=e.predicted_by,
                         uncertainty=e.uncertainty, reviewed=e.reviewed, validation=e.validation, regions=e.regions,
                         labels=stored_path(folder, e.labels) if e.labels is not None else "")
            if same and e.project_image is not None:
                out.append(replace(e.project_image, channel_axis=e.channel_axis, **state))
            elif (path := e.file) is not None:
                out.append(ProjectImage(name=e.name, path=stored_path(folder, path), absolute=str(path.resolve()),
                                        channel_axis=e.channel_axis, **state))
            else:
                out.append(ProjectImage(name=e.name, path="", channel_axis=e.channel_axis, **state))
                copies[e.name] = e.source.pixels()[0]
        return tuple(out), copies

    def stored_paintings(self, changed_only: bool) -> dict[str, Any]:
        """The paintings of the images not on screen, for a save (``changed_only``: those
        changed since the last save or autosave)."""
        return {e.name: e.stored for e in self.entries if e.name != self.current and e.stored is not None
                and (not changed_only or (e.stored.snapshot is not None and e.stored.version != e.saved_version))}

    def predictions(self) -> dict[str, Prediction]:
        """Whole-image predictions the images not on screen had (to save with the project)."""
        return {e.name: e.prediction for e in self.entries if e.name != self.current and e.prediction is not None}

    def saved(self, folder: Path, project: Project, versions: Mapping[str, int], lock: Any) -> None:
        """A save of the project finished: the images now are as it lists them."""
        listed = {im.name: im for im in project.images}
        for e in self.entries:
            im = listed.get(e.name)
            if im is None:
                continue
            e.project_image = im
            e.saved_prediction = bool(im.prediction) or e.saved_prediction
            if e.name in versions:
                e.saved_version = versions[e.name]
            if e.stored is not None and e.stored.snapshot is None:  # read from the saved files now
                e.stored = StoredPaintings(e.name, folder=folder, project=project, lock=lock,
                                           known=project.image(e.name).painted)
            if e.file is None and im.path:  # the pixels were copied in
                e.source = ImageSource(image_path(folder, im), e.source.pixels()[0])
        self.changed.emit()


def _stem(path: Path) -> str:
    return split_ext(path)[0]


def saved_prediction_reader(folder: Path | None, project: Project | None, name: str) -> Callable[[], Any] | None:
    """How to read the prediction a project saved for image ``name`` (in a worker), if any."""
    if folder is None or project is None or name not in {im.name for im in project.images}:
        return None

    def read() -> np.ndarray | None:
        try:
            return read_predictions(folder, project, name)
        except UserInputError:
            return None

    return read


def layer_metadata(entry: ImageEntry, meta: ImageMeta | None) -> dict[str, Any]:
    """segstudio's metadata for the image layer showing ``entry``."""
    out = dict(entry.layer_meta)
    out.update({"project_image": entry.name, "channel_axis": entry.channel_axis})
    if entry.source.path is not None:
        out["path"] = str(entry.source.path)
    if meta is not None and meta.affine is not None:
        out["affine"] = np.asarray(meta.affine).tolist()
    return {META_KEY: out}


def layer_scale(entry: ImageEntry, meta: ImageMeta | None, ndim: int) -> tuple[float, ...]:
    """The image layer's scale for ``entry`` (its layer's, else the file's spacing, else 1)."""
    if entry.scale is not None and len(entry.scale) == ndim:
        return entry.scale
    spacing = list(meta.spacing) if meta is not None and meta.spacing is not None else []
    if len(spacing) != len(entry.shape):
        spacing = [1.0] * len(entry.shape)
    if entry.channel_axis is not None:
        spacing.insert(entry.channel_axis, 1.0)
    return tuple(float(s) for s in spacing[-ndim:]) if len(spacing) >= ndim else (1.0,) * ndim

