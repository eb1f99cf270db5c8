"""Objects of the prediction: the *objects* layer, the object table, and saving them.

Objects (instances, ``1..N``) are made from the exclusive prediction by
:func:`segstudio.core.instances.instances_from_labels` and measured by
:func:`segstudio.core.instances.object_table`, in a worker, one at a time: while one runs, a
newer request replaces the pending one (never a queue). With *follow* on, every prediction the
prediction layer shows (a live preview, a whole-image prediction) is requested; follow is on by
default for images up to :data:`FOLLOW_MAX_VOXELS`.

Every result carries the :class:`~segstudio._qt.image.Stamp` and the
:class:`~segstudio.core.instances.InstanceOptions` it was computed for: the controller drops one
whose image or layers changed, and :meth:`Objects.show` drops one made with options older than
the newest request's.

The table keeps, per image, the image's name (:attr:`ObjectsResult.image_name`): one table
of several images is their tables with an ``image`` column
(:func:`segstudio.core.instances.merge_tables`), as the CLI writes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from segstudio._qt.image import ChosenImage, Stamp, layer_meta, under_strokes, write_labels
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet
from segstudio.core.errors import UserInputError
from segstudio.core.instances import (
    InstanceOptions,
    Instances,
    check_objects_file,
    instances_from_labels,
    merge_tables,
    object_table,
    options_for_classes,
    write_table_csv,
)
from segstudio.core.io import ImageMeta

#: Objects follow the prediction by default for images up to this many pixels (voxels): napari
#: outlines the objects of a 2D layer on the GUI thread at each update, 20-30 ms per million
#: pixels on 2 cores (``benchmarks/objects_gui.py``).
FOLLOW_MAX_VOXELS = 1024 * 1024
#: Name and look of the objects layer: outlines this many pixels wide over the prediction.
OBJECTS_LAYER = "objects"
OBJECTS_CONTOUR = 1
OBJECTS_OPACITY = 1.0
#: ``role`` of the objects layer in segstudio's layer metadata.
OBJECTS_ROLE = "objects"


@dataclass(frozen=True)
class ObjectChoices:
    """What the user chose in the Objects section.

    Attributes
    ----------
    object_classes
        Class values (1..K) whose pixels are objects; ``None``: every class but the
        background and the boundary class, found by name
        (:func:`~segstudio.core.instances.options_for_classes`).
    min_size
        Smallest object kept: area (2D) or volume (3D) in the image's physical units.
    split
        Split touching objects (seeded watershed); ``False``: connected regions.
    drop_border
        Drop objects that touch the image border.
    at_dim_lines
        Split touching objects along the image's dim lines (``InstanceOptions.declump =
        "intensity"``) instead of by shape or a boundary class.
    follow
        Make the objects of every new prediction; ``None``: on for images up to
        :data:`FOLLOW_MAX_VOXELS`.
    """

    object_classes: tuple[int, ...] | None = None
    min_size: float = 0.0
    split: bool = True
    drop_border: bool = False
    at_dim_lines: bool = False
    follow: bool | None = None


def choices_to_json(choices: ObjectChoices) -> dict[str, Any]:
    """``choices`` as plain JSON values (a project's ``objects``)."""
    d = asdict(choices)
    if d["object_classes"] is not None:
        d["object_classes"] = list(d["object_classes"])
    return d


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def _size(value: Any) -> float:
    size = float(value)
    if not (math.isfinite(size) and size >= 0):
        raise ValueError(f"{size} is not a size")
    return size


_READ_CHOICE = {
    "object_classes": lambda v: None if v is None else tuple(int(c) for c in v),
    "min_size": _size,
    "split": _flag,
    "drop_border": _flag,
    "at_dim_lines": _flag,
    "follow": lambda v: None if v is None else _flag(v),
}


def choices_from_json(saved: Mapping[str, Any]) -> ObjectChoices:
    """Choices from a project's ``objects`` (:func:`choices_to_json`): a field that is missing,
    unknown or cannot be read (a hand-edited file) takes its default, and the project opens."""
    changes = {}
    for key, read in _READ_CHOICE.items():
        if key in saved:
            try:
                changes[key] = read(saved[key])
            except (TypeError, ValueError):
                continue
    return replace(ObjectChoices(), **changes)


def object_classes(choices: ObjectChoices, class_names: Sequence[str]) -> tuple[int, ...]:
    """The class values (1..K) that are objects under ``choices``."""
    k = len(class_names)
    if choices.object_classes is not None:
        return tuple(c for c in choices.object_classes if 1 <= c <= k)
    return options_for_classes(class_names).classes_in(range(1, k + 1))


def instance_options(choices: ObjectChoices, class_names: Sequence[str]) -> InstanceOptions:
    """The :class:`~segstudio.core.instances.InstanceOptions` of ``choices`` for these classes:
    the background and boundary classes are found by name, unless chosen as objects.

    Raises
    ------
    UserInputError
        When no class is an object.
    """
    kinds = object_classes(choices, class_names)
    if not kinds:
        raise UserInputError("no class is an object: tick the classes that are objects under Objects")
    named = options_for_classes(class_names)
    return InstanceOptions(
        object_classes=kinds,
        background_class=0 if named.background_class in kinds else named.background_class,
        boundary_class=None if named.boundary_class in kinds else named.boundary_class,
        split=choices.split, min_size=float(choices.min_size), drop_border=choices.drop_border,
        declump="intensity" if choices.at_dim_lines else "shape")


@dataclass(frozen=True, eq=False)
class ObjectsRequest:
    """What to make objects of: the class labels of a prediction of the image, for ``stamp``."""

    stamp: Stamp
    image_name: str
    labels: np.ndarray
    image: np.ndarray
    channel_axis: int | None
    spacing: tuple[float, ...]
    class_names: tuple[str, ...]
    options: InstanceOptions


@dataclass(frozen=True, eq=False)
class ObjectsResult:
    """Objects of one prediction, their table, and what they were computed for."""

    stamp: Stamp
    image_name: str
    spacing: tuple[float, ...]
    options: InstanceOptions
    instances: Instances
    table: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return self.instances.n


@dataclass(frozen=True)
class SaveTargets:
    """Where a save writes: the instance labels (with their file metadata and the image's source
    file, for a NIfTI's header) and/or the object table."""

    labels: Path | None = None
    meta: ImageMeta | None = None
    source: str | None = None
    table: Path | None = None


# --------------------------------------------------------------------------- worker bodies
def make_objects(request: ObjectsRequest) -> ObjectsResult:
    """Worker body: the objects of ``request`` and their table."""
    found = instances_from_labels(request.labels, request.options, request.spacing, image=request.image,
                                  channel_axis=request.channel_axis)
    table = object_table(found.labels, request.image, channel_axis=request.channel_axis, spacing=request.spacing,
                         classes=found.classes, class_names=request.class_names)
    return ObjectsResult(request.stamp, request.image_name, request.spacing, request.options, found, table)


def save_objects(request: ObjectsRequest, targets: SaveTargets) -> tuple[ObjectsResult, list[Path]]:
    """Worker body: make the objects of ``request`` and write them (labels like the image, with its
    spacing and affine; the table as CSV with an ``image`` column)."""
    if targets.labels is not None:
        check_objects_file(targets.labels)
    result = make_objects(request)
    written = []
    if targets.labels is not None:
        written.append(write_labels(targets.labels, result.instances.labels, targets.meta, targets.source))
    if targets.table is not None:
        written.append(Path(write_table_csv(targets.table, table_of([result]))))
    return result, written


def table_of(results: Sequence[ObjectsResult]) -> dict[str, np.ndarray]:
    """One table of the objects of several images (an ``image`` column first)."""
    return merge_tables([(r.image_name, r.table) for r in results])


# --------------------------------------------------------------------------- the part
class Objects(QObject):
    """The objects of the prediction: choices, the single-slot worker, the objects layer and
    the table.

    Signals
    -------
    result(ObjectsResult)
        Objects were made (the controller shows them when the stamp is still current).
    changed()
        The objects shown (layer and table) changed, or were cleared.
    choices_changed()
        The user's choices changed (the controller makes the objects again).
    """

    result = Signal(object)
    changed = Signal()
    choices_changed = Signal()

    def __init__(self, viewer: Any, image: ChosenImage, workers: WorkerSet, notify: Notifier,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.image = image
        self.workers = workers
        self.notify = notify
        self.choices = ObjectChoices()
        #: The objects shown, or ``None``.
        self.shown: ObjectsResult | None = None
        self.layer: Any = None
        self._pending: tuple[ObjectsRequest, bool] | None = None
        self._wanted: InstanceOptions | None = None

    # ------------------------------------------------------------------ choices
    @property
    def busy(self) -> bool:
        return self.workers.busy("objects") or self.workers.busy("save objects")

    @property
    def follows(self) -> bool:
        """Whether the objects follow the prediction (the choice, else by the image's size)."""
        if self.choices.follow is not None:
            return self.choices.follow
        if self.image.layer is None:
            return False
        return int(np.prod(self.image.spatial_shape, dtype=np.int64)) <= FOLLOW_MAX_VOXELS

    def set_choices(self, **changes: Any) -> None:
        """Change the choices (fields of :class:`ObjectChoices`); ``choices_changed`` follows.

        Raises
        ------
        UserInputError
            For a negative or non-finite minimum size.
        """
        new = replace(self.choices, **changes)
        if not (np.isfinite(new.min_size) and new.min_size >= 0):
            raise UserInputError(f"the minimum object size must be a number >= 0, got {new.min_size}")
        self._take(new)

    def load_choices(self, saved: Mapping[str, Any]) -> None:
        """Take the choices a project saved (:func:`choices_from_json`; ``{}``: the defaults)."""
        self._take(choices_from_json(saved))

    def _take(self, new: ObjectChoices) -> None:
        """``new`` as the choices; ``choices_changed`` when they differ."""
        if new != self.choices:
            self.choices = new
            self.choices_changed.emit()

    def project_fields(self) -> dict[str, Any]:
        """The choices as a project saves them (:func:`choices_to_json`)."""
        return choices_to_json(self.choices)

    def object_classes(self, class_names: Sequence[str]) -> tuple[int, ...]:
        """The class values that are objects now (see :func:`object_classes`)."""
        return object_classes(self.choices, class_names)

    def options(self, class_names: Sequence[str]) -> InstanceOptions:
        """The instance options now (see :func:`instance_options`; raises ``UserInputError``)."""
        return instance_options(self.choices, class_names)

    def make_request(self, stamp: Stamp, labels: np.ndarray, class_names: Sequence[str]) -> ObjectsRequest:
        """A request for the objects of ``labels`` (a prediction of the chosen image) with the
        choices now (raises ``UserInputError`` when no class is an object)."""
        image = self.image
        source = image.source
        return ObjectsRequest(stamp, Path(source).name if source else image.name, labels, image.array(),
                              image.channel_axis, image.spacing, tuple(class_names), self.options(class_names))

    # ------------------------------------------------------------------ the worker
    def request(self, request: ObjectsRequest, *, quiet: bool = False) -> None:
        """Make the objects of ``request`` (a newer request replaces a pending one); ``quiet``:
        a failure shows in the status line only (following the live preview)."""
        self._wanted = request.options
        if self.workers.busy("objects"):
            self._pending = (request, quiet)
            return
        self._start(request, quiet)

    def cancel(self) -> None:
        """Forget the pending request (a running one finishes; its stamp gets it dropped)."""
        self._pending = None

    def _start(self, request: ObjectsRequest, quiet: bool) -> None:
        self.workers.start("objects", make_objects, request, returned=self.result.emit,
                           errored=lambda e: self._failed(e, quiet), finished=self._on_finished)

    def _failed(self, exc: BaseException, quiet: bool) -> None:
        message = str(exc) if isinstance(exc, UserInputError) else f"{type(exc).__name__}: {exc}"
        self.notify.fail(f"objects: {message}", popup=not quiet)

    def _on_finished(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(*pending)

    def save(self, request: ObjectsRequest, targets: SaveTargets) -> None:
        """Make the objects of ``request`` and write them (:func:`save_objects`); they are shown too."""
        self._wanted = request.options
        what = " and ".join(w for w, t in (("objects", targets.labels), ("table", targets.table)) if t is not None)
        self.notify.info(f"saving the {what}…")

        def done(out: tuple[ObjectsResult, list[Path]]) -> None:
            result, written = out
            self.result.emit(result)
            self.notify.info(f"{result.n} objects saved to " + ", ".join(str(p) for p in written))

        self.workers.start("save objects", save_objects, request, targets, returned=done,
                           errored=self.notify.worker_failed)

    # ------------------------------------------------------------------ what is shown
    def show(self, result: ObjectsResult) -> None:
        """Show objects in the objects layer and the table (dropped when made with options older
        than the newest request's)."""
        if result.options != self._wanted:
            return
        layer = self._ensure_layer()
        layer.data = result.instances.labels
        self.shown = result
        self.changed.emit()

    def tables(self) -> list[ObjectsResult]:
        """The objects shown, per image (one image for now), for the table."""
        return [] if self.shown is None else [self.shown]

    def clear(self) -> None:
        """Show no objects (the layer is emptied, the table cleared); objects on the way are dropped."""
        self.cancel()
        self._wanted = None
        if self.shown is None:
            return
        self.shown = None
        if self.layer is not None and self.layer in self.viewer.layers:
            self.layer.data = np.zeros(self.layer.data.shape, np.uint8)
        self.changed.emit()

    def attach(self) -> None:
        """A new image (or channel axis): forget the objects of the previous one; adopt an
        objects layer of this image when there is one."""
        self.cancel()
        self.shown, self.layer, self._wanted = None, None, None
        if self.image.layer is not None:
            shape = self.image.spatial_shape
            self.layer = next((lyr for lyr in self.viewer.layers
                               if layer_meta(lyr).get("role") == OBJECTS_ROLE
                               and layer_meta(lyr).get("image") == self.image.name
                               and tuple(lyr.data.shape) == shape), None)
        self.changed.emit()

    def forget(self, layer: Any) -> bool:
        """``layer`` was removed from the viewer; when it was the objects layer, objects stop
        following (the user removed them). Returns whether it was."""
        if layer is None or layer is not self.layer:
            return False
        self.layer, self.shown = None, None
        if self.follows:
            self.choices = replace(self.choices, follow=False)
            self.choices_changed.emit()
        self.changed.emit()
        return True

    def prepare(self) -> None:
        """Make the objects layer now when objects follow (adding a layer stalls the GUI for a
        moment: before training, not when the first preview arrives)."""
        if self.follows and self.image.layer is not None:
            self._ensure_layer()

    def _ensure_layer(self) -> Any:
        shape = self.image.spatial_shape
        layer = self.layer
        if layer is not None and layer in self.viewer.layers and tuple(layer.data.shape) == shape:
            return layer
        layers = self.viewer.layers
        active = layers.selection.active
        layer = self.viewer.add_labels(np.zeros(shape, np.uint8), name=OBJECTS_LAYER, opacity=OBJECTS_OPACITY,
                                       metadata=self.image.metadata(OBJECTS_ROLE), **self.image.geometry())
        layer.contour = OBJECTS_CONTOUR
        under_strokes(layers, [layer], active)
        self.layer = layer
        return layer

    # ------------------------------------------------------------------ going to an object
    def locate(self, object_id: int) -> bool:
        """Centre the view on object ``object_id`` of the table (and show its centre slice of a
        volume); ``False`` when there is no such object."""
        shown, layer = self.shown, self.layer
        if shown is None or layer is None or layer not in self.viewer.layers:
            return False
        rows = np.flatnonzero(shown.table["id"] == object_id)
        if not len(rows):
            return False
        axes = "zyx"[-len(shown.spacing):]
        index = [shown.table[f"centroid_{a}"][rows[0]] / s for a, s in zip(axes, shown.spacing)]
        world = np.asarray(layer.data_to_world(index), dtype=float)
        dims = self.viewer.dims
        offset = dims.ndim - len(world)
        for i, value in enumerate(world):
            if offset + i in dims.not_displayed:
                dims.set_point(offset + i, float(value))
        camera = getattr(self.viewer, "scene", self.viewer).camera  # napari >= 0.9: the scene's
        camera.center = tuple(float(world[a - offset]) for a in dims.displayed if a >= offset)
        layer.selected_label = int(object_id)
        return True
