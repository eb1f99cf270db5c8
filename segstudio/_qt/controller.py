"""The session controller: a thin facade over the parts of one segstudio session.

The dock widget calls its methods and listens to its signals. The controller creates the
parts, connects them, and passes plain data between them; no part imports another's wiring:

==========  ===================================================================================
settings    what the user chose: mode, classes, weight method, training settings
image       the image being segmented: layer, channel axis, pixels, geometry
images      the session's images (a project of many): the list, switching, Predict all
layers      paint, prediction and probability layers (the one place that knows the two modes)
training    the trainer in a worker, and the class weights the class table shows
preview     live previews of the view, one at a time, with the newest weights
objects     the objects of the prediction: the objects layer, the object table, saving them
results     whole-image and folder predictions, metrics, saving and exporting
projects    save, open, autosave, recovery
notify      the status line and napari notifications
workers     every worker of the session
==========  ===================================================================================

The route of a stroke, top to bottom in :meth:`SegController._wire`::

    paint ─▶ (debounce) snapshot ─▶ trainer ─▶ Preview event ─▶ preview ─▶ prediction layer
          ─▶ objects (when they follow the prediction) ─▶ objects layer and table

Every prediction carries the :class:`~segstudio._qt.image.Stamp` (image, layer generation) it
was computed for and is dropped when the image or its layers changed since.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal

from segstudio._qt.image import META_KEY, ChosenImage, Stamp, channel_axis_of, layer_meta
from segstudio._qt.images import (
    Images,
    LabelsToImport,
    Loaded,
    imported_paintings,
    layer_metadata,
    layer_scale,
    read_labels_to_import,
    saved_prediction_reader,
)
from segstudio._qt.inferred import InferRequest, Inferred, overlay_styles
from segstudio._qt.layers import Layers
from segstudio._qt.notify import Notifier
from segstudio._qt.objects import Objects, ObjectsRequest, ObjectsResult, SaveTargets
from segstudio._qt.preview import Preview, PreviewRequest, cheaper_region, visible_region
from segstudio._qt.projects import Projects
from segstudio._qt.results import MetricsRow, Results, truth_holds_objects
from segstudio._qt.settings import Settings, TrainSettings
from segstudio._qt.training import Paintings, Training, keep_triton_out, torch_warm_up
from segstudio._qt.workers import WorkerSet, run_in_background
from segstudio.core.allocator import tune_allocator
from segstudio.core.config import (
    AUTO_CHOICES,
    TrainConfig,
    has_wide_context,
    uneven_background,
    use_level_slices,
    use_textures,
    use_wide_context,
)
from segstudio.core.device import ComputeTurns
from segstudio.core.errors import UserInputError
from segstudio.core.metrics import InstanceScores
from segstudio.core.predictor import Predictor, PredictResult
from segstudio.core.project import (
    PREDICTIONS_DIR,
    KeptAutosave,
    Project,
    ProjectClass,
    image_path,
    stored_path,
    update_images,
)
from segstudio.core.run import model_from_config
from segstudio.core.weights import ClassWeights

#: Quiet time after the last paint event before the paintings are copied and offered.
PAINT_DEBOUNCE_MS = 300
#: After the widget opens and after each run: start the next run's training process (its
#: imports take seconds; ``Training.warm_process``).
WARM_PROCESS_MS = 1500
#: Quiet time after a slice/camera change before an on-demand preview is asked for.
VIEW_DEBOUNCE_MS = 200
#: How long the background stop (after the window closed) waits for the trainer to finish.
STOP_TIMEOUT_S = 120.0

__all__ = ["PAINT_DEBOUNCE_MS", "VIEW_DEBOUNCE_MS", "SegController"]
#: Names a message lists before "…".
LISTED_NAMES = 3


def _listed(names: list[str]) -> str:
    return ", ".join(names[:LISTED_NAMES]) + (", …" if len(names) > LISTED_NAMES else "")


class SegController(QObject):
    """One segstudio session in a napari viewer (see the module docstring)."""

    classes_changed = Signal()
    weights_changed = Signal(object)  # ClassWeights
    mode_changed = Signal(str)
    image_changed = Signal()
    training_state_changed = Signal(str)  # idle | running | paused | stopping
    progress = Signal(object)  # core.trainer.Progress
    status = Signal(str)
    error = Signal(str)
    prediction_updated = Signal()
    predict_progress = Signal(int, int)  # done, total (0, 0: idle)
    metrics_ready = Signal(object)  # list[MetricsRow]
    object_scores_ready = Signal(object)  # core.metrics.InstanceScores, or None (a truth of classes)
    project_changed = Signal(str)  # the project folder, after it was opened or saved
    kept_changed = Signal()  # the kept-aside autosaves of the image (Recover…) changed
    images_changed = Signal()  # the image list or an image's state changed
    validation = Signal(object)  # core.trainer.Validation (Dice on the validation strokes)
    labels_ready = Signal(object)  # LabelsToImport: a label image read, its values to map

    def __init__(self, viewer: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        tune_allocator()  # as a napari plugin: before the trainer's thread first allocates
        keep_triton_out()  # before anything here imports torch._dynamo (see there)
        torch_warm_up.start()
        self.viewer = viewer
        self.notify = Notifier(self)
        self.workers = WorkerSet()
        self.choices = Settings()
        self.image = ChosenImage()
        self.images = Images(self.workers, self.notify, self)
        self.layers = Layers(viewer, self.image, self.workers, self)
        #: On a CPU, training steps and previews take turns, each with every core.
        self.turns = ComputeTurns(shared=True)  # a training process takes turns too
        self.training = Training(self.workers, self.notify, self.turns, self)
        self.preview = Preview(self.workers, self.notify, self.turns, self)
        self.results = Results(self.workers, self.notify, self)
        self.objects = Objects(viewer, self.image, self.workers, self.notify, self)
        self.inferred = Inferred(viewer, self.image, self.workers, self.notify, self)
        self.projects = Projects(self.image, self.workers, self.notify, self)
        #: The class weights the class table shows (the trainer's while it trains).
        self.weights: ClassWeights | None = None
        self._offered: tuple[Any, ...] | None = None
        self._inferred_decided: tuple[bool, bool, bool] | None = None  # (level slices, textures, uneven) shown
        self._closed = False
        self._batch_removed: list[Any] | None = None  # layers removed in an open batch
        self._saving: Any = None  # the save job running
        self._stopped = threading.Event()
        self._paint_timer = self._timer(PAINT_DEBOUNCE_MS)
        self._view_timer = self._timer(VIEW_DEBOUNCE_MS)
        #: A preview of new weights held back by the preview budget (``Preview.budget_wait``).
        self._budget_timer = self._timer(0)
        # a coarse timer (Qt's default) may fire up to 5 % early: the budget is a lower bound
        self._budget_timer.setTimerType(Qt.TimerType.PreciseTimer)
        #: The next run's training process is started while the user looks and paints.
        self._warm_timer = self._timer(WARM_PROCESS_MS)
        self._wire()
        self._warm_timer.start()

    def _timer(self, ms: int) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        return timer

    def _wire(self) -> None:
        # -- the route of a stroke ------------------------------------------------------------
        # 1. paint: every paint event restarts the debounce
        self.layers.painted.connect(self._paint_timer.start)
        # 2. snapshot: once painting settled, a copy of what changed is offered to training
        self._paint_timer.timeout.connect(self._offer_paintings)
        # 3. trainer: it weighs the paintings (the table shows its weights) and trains on them
        self.training.weights_changed.connect(self._on_weights)
        # 4. Preview event: newer weights
        self.training.model_updated.connect(self._on_model_updated)
        # 5. preview: the visible region, predicted with them
        self.preview.result.connect(self._on_preview)
        # 6. prediction layer: written when the result is still for this image and its layers
        self.results.predicted.connect(self._on_whole_prediction)
        # 7. objects: made of what the prediction layer shows (when they follow it), one at a
        #    time, and shown when still for this image and its layers
        self.prediction_updated.connect(self._follow_objects)
        self.objects.result.connect(self._on_objects)
        # -- everything else ------------------------------------------------------------------
        self.notify.status.connect(self.status)
        self.notify.error.connect(self.error)
        self.training.state_changed.connect(self.training_state_changed)
        self.training.state_changed.connect(self._on_training_state)
        self.training.progress.connect(self.progress)
        self.results.predict_progress.connect(self.predict_progress)
        self.results.metrics_ready.connect(self.metrics_ready)
        self.results.object_scores_ready.connect(self.object_scores_ready)
        self.image_changed.connect(self.objects.attach)
        self.objects.choices_changed.connect(self._refresh_objects)
        self.classes_changed.connect(self._refresh_objects)
        self.results.other_predicted.connect(self._on_other_prediction)
        self.projects.saved.connect(self._on_saved)
        self.images.changed.connect(self.images_changed)
        self.images.loaded.connect(self._on_image_loaded)
        self.images.predicted.connect(self._on_all_predicted)
        self.images.predict_progress.connect(self.predict_progress)
        self.layers.regions_changed.connect(self._on_regions_edited)
        self.training.validated.connect(self.validation)
        self.projects.kept_changed.connect(self.kept_changed)
        self.projects.timer.timeout.connect(self.autosave)
        self._view_timer.timeout.connect(self._on_view_settled)
        self._budget_timer.timeout.connect(self._on_budget_elapsed)
        self._warm_timer.timeout.connect(self.training.warm_process)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        for name, callback in (("begin_batch", self._on_layers_batch), ("end_batch", self._on_layers_batch_end)):
            if hasattr(self.viewer.layers.events, name):  # napari's LayerList.clear() batches
                getattr(self.viewer.layers.events, name).connect(callback)
        self.viewer.dims.events.current_step.connect(self._on_view_changed)

    # ------------------------------------------------------------------ state, read-only views
    @property
    def image_layer(self) -> Any:
        return self.image.layer

    @property
    def channel_axis(self) -> int | None:
        return self.image.channel_axis

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.image.spatial_shape

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.image.spacing

    def image_array(self) -> np.ndarray:
        return self.image.array()

    @property
    def mode(self) -> str:
        return self.choices.mode

    @property
    def classes(self) -> tuple[ProjectClass, ...]:
        return self.choices.classes

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def weight_method(self) -> str:
        return self.choices.weight_method

    @property
    def settings(self) -> TrainSettings:
        return self.choices.train

    @property
    def config_overrides(self) -> dict[str, Any]:
        """Extra ``TrainConfig`` fields (tests: tiny models; experts: patch/batch)."""
        return self.choices.overrides

    @config_overrides.setter
    def config_overrides(self, value: dict[str, Any]) -> None:
        self.choices.overrides = dict(value)

    @property
    def paint_layers(self) -> list[Any]:
        return self.layers.paint_layers

    @property
    def prediction_layers(self) -> list[Any]:
        return self.layers.prediction_layers

    @property
    def state(self) -> str:
        return self.training.state

    @property
    def is_training(self) -> bool:
        return self.training.is_training

    @property
    def config(self) -> TrainConfig | None:
        return self.training.config

    @property
    def run_dir(self) -> Path | None:
        return self.training.run_dir

    @property
    def iteration(self) -> int:
        return self.training.iteration

    @property
    def loss_iterations(self) -> list[int]:
        return self.training.loss_iterations

    @property
    def loss_values(self) -> list[float]:
        return self.training.loss_values

    def iterations_per_second(self) -> float | None:
        return self.training.iterations_per_second()

    @property
    def last_error(self) -> str | None:
        return self.notify.last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self.notify.last_error = value

    @property
    def last_metrics(self) -> list[MetricsRow] | None:
        return self.results.last_metrics

    @property
    def last_object_scores(self) -> InstanceScores | None:
        """The object scores of the last metrics (``None``: the truth held classes)."""
        return self.results.last_object_scores

    @property
    def project_dir(self) -> Path | None:
        return self.projects.folder

    @property
    def project(self) -> Project | None:
        return self.projects.project

    @property
    def ask(self) -> Callable[[str], bool]:
        """Asked yes/no questions (recover autosaved paintings? add missing classes?)."""
        return self.projects.ask

    @ask.setter
    def ask(self, value: Callable[[str], bool]) -> None:
        self.projects.ask = value

    @property
    def autosave_folder(self) -> Path:
        """Where the paintings are autosaved: the project, else the image's untitled folder."""
        return self.projects.autosave_folder()

    def kept_autosaves(self) -> list[KeptAutosave]:
        """Autosaves of earlier sessions on this image (*Recover…*), newest first."""
        return self.projects.kept()

    @property
    def preview_busy(self) -> bool:
        return self.preview.busy

    @property
    def predicting(self) -> bool:
        return self.results.predicting

    @property
    def busy(self) -> bool:
        """Whether any work of the session runs (training, previews, saves, counts…)."""
        return self.workers.busy() or self._paint_timer.isActive()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stopped(self) -> bool:
        """Closed, and what closing left running (training, the last autosave) is done."""
        return self._stopped.is_set()

    def wait_stopped(self, timeout_s: float) -> bool:
        """Wait (not on the GUI thread of a live session) until :attr:`stopped`."""
        return self._stopped.wait(timeout_s)

    def prediction_array(self) -> np.ndarray | None:
        """A copy of the prediction (exclusive: labels; multilabel ``(C, *spatial)``)."""
        prediction = self.layers.prediction()
        return None if prediction is None else np.array(prediction.labels(), copy=True)

    # ------------------------------------------------------------------ image
    def set_image_layer(self, layer: Any) -> None:
        """Choose the image to segment; adopts matching paint layers or creates them. The work
        of the previous image (previews, predictions) is cancelled and its results dropped."""
        if layer is self.image.layer:
            return
        if layer is None and self.image.layer not in self.viewer.layers:
            self._image_removed()
            return
        if self.is_training:
            self.notify.fail("stop training before changing the image")
            return
        if len(self.images.entries) > 1 and layer is not None:
            self.notify.fail("this session has several images: choose one in the image list")
            return
        self.preview.cancel()
        self.results.cancel()
        self.image.choose(layer)
        self.layers.detach()
        self.weights, self._offered = None, None
        self.images.reset(layer, self.image.channel_axis)
        self._anchor()
        if layer is not None:
            self._attach()
            self.projects.keep_aside()
        self.image_changed.emit()
        self.classes_changed.emit()
        self.kept_changed.emit()
        self._offer_paintings()

    def set_channel_axis(self, axis: int | None) -> None:
        """Set the image's channel axis (``None``: single channel)."""
        if axis == self.image.channel_axis:
            return
        if len(self.images.entries) > 1:
            self.notify.fail("the images of a project keep their channel axis: make a project of images that "
                             "have the same channels")
            return
        try:
            self.image.set_channel_axis(axis)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self.images.set_channel_axis(axis)
        self.preview.cancel()
        self.layers.detach()
        if self.image.layer is not None:
            self._attach()
        self.image_changed.emit()
        self._offer_paintings()

    def _attach(self) -> None:
        names, count = self.layers.attach(self.mode, self.classes)
        self.choices.adopt(names, count)
        self.layers.set_classes(self.classes)

    def _image_removed(self) -> None:
        if self.is_training:
            self.stop_training()
        self.preview.cancel()
        self.results.cancel()
        self.image.choose(None)
        self.layers.detach()
        self.images.reset(None, None)
        self.image_changed.emit()

    @property
    def in_layers_batch(self) -> bool:
        """Whether the viewer is removing layers in one batch (``viewer.layers.clear()``, which
        ``viewer.close()`` starts with): their removal is handled once it ends."""
        return self._batch_removed is not None

    def _on_layers_batch(self, event: Any = None) -> None:
        if self._batch_removed is None:
            self._batch_removed = []

    def _on_layers_batch_end(self, event: Any = None) -> None:
        removed, self._batch_removed = self._batch_removed or [], None
        if self._closed:
            return
        image = self.image.layer
        if image is not None and any(layer is image for layer in removed):
            if any(layer in self.layers.paint_layers for layer in removed):
                self.autosave(force=True)  # an open project keeps the strokes of deleted layers
            self._image_removed()  # detaches its paint and result layers: no message for each
        for layer in removed:  # the rest (an objects layer stops following)
            if layer is not image:
                self._layer_gone(layer)

    def _on_layer_removed(self, event: Any) -> None:
        if self._batch_removed is not None:
            self._batch_removed.append(event.value)
            return
        self._layer_gone(event.value)

    def _layer_gone(self, layer: Any) -> None:
        if layer is self.image.layer:
            self._image_removed()
            return
        if self.objects.forget(layer):
            return
        if layer in self.layers.paint_layers:
            self.autosave(force=True)  # an open project keeps the strokes of a deleted layer
        if self.layers.forget(layer) == "paintings" and self.is_training:
            self.notify.fail(f"the paint layer '{layer.name}' was removed: training goes on with the strokes "
                             "it already has; stop and press Train to recreate it")

    # ------------------------------------------------------------------ the image list
    def add_images(self, paths: list[str | Path]) -> None:
        """Add image files to the session (checked in a worker; ones that do not fit the
        session's dimensions and channels are refused, one line each)."""
        if not self._closed and self._has_image():
            self.images.add_files(paths)

    def add_folder(self, folder: str | Path) -> None:
        """Add every image file of ``folder``."""
        if not self._closed and self._has_image():
            self.images.add_folder(folder)

    def add_layers(self, layers: list[Any]) -> None:
        """Add open napari Image layers to the session; they leave the viewer (the image list
        shows them, the image layer shows the one chosen)."""
        if self._closed or not self._has_image():
            return
        layers = [lyr for lyr in layers if lyr is not self.image.layer and lyr not in self.layers.paint_layers]
        for layer in self.images.add_layers(layers, [channel_axis_of(lyr) for lyr in layers]):
            self.viewer.layers.remove(layer)

    def _has_image(self) -> bool:
        if self.image.layer is None:
            self.notify.fail("choose an image first")
            return False
        return True

    def remove_image(self, name: str) -> None:
        """Remove an image from the session (its file stays where it is); one with strokes
        only when the user agrees (they go with it at the next save)."""
        try:
            painted = sum(self.images.entry(name).painted)
            if painted and not self.projects.ask(f"'{name}' has {painted} painted pixels; remove it from the "
                                                 "project (its strokes go with it)?"):
                return
            self.images.remove(name)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self._offer_paintings()

    def set_validation(self, name: str, validation: bool) -> None:
        """Keep image ``name``'s strokes for validation (Dice per class while training)."""
        try:
            self.images.set_validation(name, validation)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self._offer_paintings()

    def edit_regions(self) -> None:
        """Draw validation regions (rectangles) on the image on screen: its strokes there are
        not trained on, and training reports Dice per class on them."""
        entry = self.images.current_entry()
        if not self._closed and entry is not None:
            self.layers.regions_layer(entry.regions)

    def _on_regions_edited(self) -> None:
        if self.images.current is not None:
            self.images.set_regions(self.images.current, self.layers.regions())
            self._offer_paintings()

    def set_reviewed(self, name: str, reviewed: bool) -> None:
        try:
            self.images.set_reviewed(name, reviewed)
        except UserInputError as e:
            self.notify.fail(str(e))

    def select_image(self, name: str) -> None:
        """Show image ``name`` with its paintings and prediction (read in a worker; training
        goes on, and the live preview follows)."""
        if self._closed or self.image.layer is None or name == self.images.current:
            return
        try:
            self.images.entry(name)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self.preview.cancel()
        self.images.load(name, self.mode, len(self.classes),
                         lambda n: saved_prediction_reader(self.projects.folder, self.projects.project, n))

    def next_unreviewed(self) -> None:
        """Mark the image on screen reviewed (when predicted) and show the unreviewed
        prediction the model is least sure about."""
        current = self.images.current_entry()
        if current is not None and current.predicted_by:
            self.images.set_reviewed(current.name, True)
        name = self.images.next_unreviewed()
        if name is None:
            self.notify.info("every predicted image is reviewed")
            return
        self.select_image(name)

    def read_labels_to_import(self, source: Any) -> None:
        """Read a label file (a path) or a napari Labels layer to import as the paintings of
        the image on screen (in a worker); ``labels_ready`` follows with its values to map."""
        if self._closed or not self._has_image():
            return
        if isinstance(source, (str, Path)):
            data, what = source, str(source)
        else:
            data, what = np.asarray(source.data), source.name
        self.workers.start("read labels", read_labels_to_import, data, what, self.image.spatial_shape,
                           len(self.classes), returned=self.labels_ready.emit, errored=self.notify.worker_failed)

    def import_labels(self, ready: LabelsToImport, mapping: dict[int, int | None] | None = None,
                      scheme: str | None = None) -> None:
        """Put imported labels into the paintings of the image on screen: each value mapped
        to a class or ignored (``mapping``), or an instance mask as classes (``scheme``). The
        strokes already painted are kept."""
        if self._closed or not self._has_image():
            return
        try:
            snapshot = self.layers.snapshot()
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        stamp, mode, k = self.layers.stamp, self.mode, len(self.classes)

        def done(paint: np.ndarray) -> None:
            if stamp != self.layers.stamp:
                self.notify.fail("the image changed before the labels were imported: import them again")
                return
            try:
                self.layers.set_paintings(paint)
            except UserInputError as e:
                self.notify.fail(str(e))
                return
            self.notify.info(f"labels of '{ready.what}' imported into the paintings of {self.image.name}")

        self.workers.start("import labels", lambda: imported_paintings(ready, mapping, scheme, mode, k,
                                                                       snapshot.paintings()),
                           returned=done, errored=self.notify.worker_failed)

    def _on_image_loaded(self, loaded: Loaded) -> None:
        """Put an image read for switching on screen (the layers keep their place)."""
        if self._closed or self.image.layer is None or self.images.superseded:
            return
        try:
            entry = self.images.entry(loaded.name)
        except UserInputError:
            return
        try:
            snapshot = self.layers.snapshot()
        except UserInputError:
            snapshot = None
        self.images.leave(snapshot, self.layers.prediction() if self.layers.complete else None)
        if snapshot is not None:
            self.images.count(snapshot, self.mode, len(self.classes))
        layer = self.image.layer
        old_shape = self.image.spatial_shape
        layer.metadata = {**(layer.metadata or {}), **layer_metadata(entry, loaded.meta)}
        layer.data = loaded.pixels
        layer.scale = layer_scale(entry, loaded.meta, layer.ndim)
        layer.name = entry.name
        layer.reset_contrast_limits()
        self.image.choose(layer)
        self.layers.show_image(loaded.paintings, loaded.taken, loaded.prediction)
        self.layers.show_regions(entry.regions)
        self.images.shown(entry.name, self._paint_key()[0])
        self.image_changed.emit()
        if self.image.spatial_shape != old_shape:
            self.viewer.reset_view()
        self._offer_paintings()
        if self.settings.live_preview and self.preview.predictor is not None and not loaded.complete:
            self.request_preview()

    def predict_all(self, out: str | Path | None = None) -> None:
        """Predict every image of the session with the newest weights into ``out`` (default:
        the project's ``predictions/`` folder), with progress and Cancel; each image's state
        then names the run, and *Next unreviewed* goes to the least certain one."""
        if self._closed or (model := self._model()) is None:
            return
        if out is None:
            if self.projects.folder is None:
                self.notify.fail("save the project first, or choose a folder for the predictions")
                return
            out = self.projects.folder / PREDICTIONS_DIR
        run, folder = self.run_dir, self.projects.folder
        by = "" if run is None else stored_path(folder, run) if folder is not None else run.name
        self.images.predict_all(model, Path(out), by or "this session",
                                record=self._record_predictions if folder is not None else None)

    def _record_predictions(self, written: dict[str, Path]) -> None:
        """*Predict all* ended in an open project: ``project.json`` says what was predicted
        (labels file, run, uncertainty), without waiting for the next save."""
        folder, project = self.projects.folder, self.projects.project
        if folder is None or project is None:
            return
        listed = {im.name for im in project.images}
        changes = {}
        for name in written:
            if name in listed:
                e = self.images.entry(name)
                changes[name] = {"labels": stored_path(folder, written[name]), "predicted_by": e.predicted_by,
                                 "uncertainty": e.uncertainty, "reviewed": e.reviewed}
        if changes:
            lock = self.projects.lock

            def write() -> Project:
                with lock:
                    return update_images(folder, changes)

            self.workers.start("record", write, returned=self._on_recorded, errored=self.notify.worker_failed)

    def _on_recorded(self, project: Project) -> None:
        if self.projects.folder is not None:
            self.projects.project = replace(self.projects.project or project, images=project.images)

    def _on_all_predicted(self, ev: Any) -> None:
        result = ev.done.result
        if ev.name == self.images.current and result is not None and not self._closed:
            self.layers.write_prediction(result)
            self.prediction_updated.emit()

    # ------------------------------------------------------------------ classes and mode
    def add_class(self, name: str | None = None, color: str | None = None) -> None:
        if self._classes_editable():
            self.choices.add_class(name, color)
            self._classes_edited()

    def remove_class(self, index: int) -> None:
        """Remove a class; its strokes are erased and later classes move down by one."""
        if not self._classes_editable():
            return
        if (others := self.images.painted_elsewhere()):
            self.notify.fail(f"other images have strokes ({_listed(others)}): a class of a project with several "
                             "painted images cannot be removed")
            return
        try:
            self.choices.remove_class(index)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self.layers.remove_class(index, self.classes)
        self._classes_edited()

    def rename_class(self, index: int, name: str) -> None:
        if self.choices.rename_class(index, name):
            self.layers.set_classes(self.classes)
            self.classes_changed.emit()

    def set_class_color(self, index: int, color: str) -> None:
        if self.choices.set_class_color(index, color):
            self.layers.set_classes(self.classes)
            self.classes_changed.emit()

    def set_pinned_weight(self, index: int, weight: float | None) -> None:
        """Pin a class weight (``None`` unpins); it travels to the trainer with the paintings."""
        try:
            changed = self.choices.set_pin(index, weight)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        if changed:
            self.classes_changed.emit()
            self._offer_paintings()

    def set_weight_method(self, method: str) -> None:
        if method != self.choices.weight_method:
            self.choices.weight_method = method
            self._offer_paintings()

    def select_class(self, index: int) -> None:
        """Make the class's paint layer active, in paint mode, with the class's label."""
        self.layers.select_class(index)

    def set_mode(self, mode: str) -> None:
        """Switch exclusive <-> multilabel, converting the strokes painted so far."""
        if mode == self.mode:
            return
        if self.is_training:
            self.notify.fail("stop training before changing the mode")
            self.mode_changed.emit(self.mode)
            return
        if (others := self.images.painted_elsewhere()):
            self.notify.fail(f"other images have strokes ({_listed(others)}): the mode of a project with several "
                             "painted images stays as it is")
            self.mode_changed.emit(self.mode)
            return
        self.choices.set_mode(mode)
        self.layers.switch_mode(mode)
        self.mode_changed.emit(mode)
        self.classes_changed.emit()
        self._offer_paintings()

    def _classes_editable(self) -> bool:
        if self.is_training:
            self.notify.fail("stop training before adding or removing classes")
            return False
        return True

    def _classes_edited(self) -> None:
        self.layers.set_classes(self.classes)
        self.classes_changed.emit()
        self._offer_paintings()

    # ------------------------------------------------------------------ the route of a stroke
    def _offer_paintings(self) -> None:
        """A snapshot of the paintings (a copy of what changed) goes to training: to the
        trainer while it trains, else to be weighed for the class table."""
        if self._closed or self.image.layer is None:
            return
        try:
            snapshot = self.layers.snapshot()
        except UserInputError:
            return  # no complete set of paint layers right now
        self.images.edited(snapshot.version)  # painted on a predicted image: reviewed
        c = self.choices
        key = (snapshot.image, snapshot.version, tuple(sorted(c.pins().items())), c.weight_method,
               len(c.classes), self.is_training, self.images.training_key(), c.train.wide_context,
               c.train.textures, c.train.level_slices)
        if key == self._offered:
            return
        self._offered = key
        self.training.offer(self._paintings(snapshot))
        self._refresh_inferred(snapshot)
        self.images.count(snapshot, self.mode, len(c.classes))

    def _paintings(self, snapshot: Any) -> Paintings:
        """The paintings of every image (the one on screen as ``snapshot``) for training."""
        c = self.choices
        entry = self.images.current_entry()
        return Paintings(snapshot, self.image.array(), self.image.channel_axis, c.pins(), c.weight_method,
                         len(c.classes), c.weight_clamp, self.images.others(),
                         None if entry is None else entry.holdout(), c.train.wide_context, c.train.textures,
                         self.image.spacing, c.train.level_slices)

    def _on_weights(self, weights: ClassWeights) -> None:
        self.weights = weights
        self.weights_changed.emit(weights)
        # the weighed paintings may turn *textures*, *level slices* or *wide context* on auto: the overlay follows
        if self.inferred.shown and self.image.layer is not None \
                and self._inferred_choices() != self._inferred_decided:
            self._refresh_inferred()

    def _on_model_updated(self, state: Any) -> None:
        self.preview.weights = state
        if not self.settings.live_preview or self._budget_timer.isActive():
            return  # the held-back preview takes these newest weights when it starts
        wait = self.preview.budget_wait()
        if wait > 0:
            self._budget_timer.start(int(1000 * wait) + 1)
        else:
            self.request_preview()

    def _on_budget_elapsed(self) -> None:
        if not self._closed and self.settings.live_preview:
            self.request_preview()

    def request_preview(self) -> None:
        """Predict the visible region with the newest weights (single slot, newest wins); a
        preview held back by the budget is then no longer owed."""
        if self._closed or self.image.layer is None:
            return
        self._budget_timer.stop()
        try:
            region = self.preview_region()
        except UserInputError:
            return
        self.preview.request(PreviewRequest(self.layers.stamp, self.image.array(), self.image.channel_axis, region))

    def preview_region(self) -> tuple[slice, ...] | None:
        """What a live preview predicts now: :func:`segstudio._qt.preview.visible_region`, or the
        whole image where that costs no more (:func:`segstudio._qt.preview.cheaper_region`)."""
        region = visible_region(self.viewer, self.image, self.settings.preview_region)
        return cheaper_region(self.preview.predictor, self.image.spatial_shape, region)

    def _current(self, stamp: Stamp) -> bool:
        return self.image.layer is not None and stamp == self.layers.stamp

    def _on_preview(self, stamp: Stamp, result: PredictResult) -> None:
        if self._current(stamp):
            self.layers.write_prediction(result)
            self.prediction_updated.emit()

    def _on_whole_prediction(self, stamp: Stamp, result: PredictResult) -> None:
        then = self.results.take_then()
        if not self._current(stamp):
            return
        self.layers.write_prediction(result)
        if result.probabilities is not None:
            self.layers.show_probabilities(result.probabilities)
        self.prediction_updated.emit()
        self.notify.info("whole-image prediction done")
        if then is not None:
            QTimer.singleShot(0, then)

    def _on_view_changed(self, event: Any = None) -> None:
        if not self._closed and self.preview.predictor is not None and self.settings.live_preview:
            self._view_timer.start()

    def _on_view_settled(self) -> None:
        if self.image.layer is not None and len(self.spatial_shape) == 3:
            self.request_preview()

    # ------------------------------------------------------------------ training
    def set_settings(self, **changes: Any) -> None:
        for key, read in AUTO_CHOICES.items():  # auto, on, off (and what older settings stored)
            if key in changes:
                changes[key] = read(changes[key])
        self.choices.train = replace(self.choices.train, **changes)
        if {"infer_outlines", "infer_background", "level_slices", "textures", "wide_context"} & set(changes):
            self._refresh_inferred()
        if set(AUTO_CHOICES) & set(changes):
            self._offer_paintings()  # the class table's notes follow the choices

    # ------------------------------------------------------------------ inferred labels
    def show_inferred(self, on: bool) -> None:
        """Overlay (or hide) what the implied-label rules infer from the strokes: what the
        trainer learns besides them (see :mod:`segstudio._qt.inferred`)."""
        self.inferred.show(on)
        self._refresh_inferred()

    def _inferred_choices(self) -> tuple[bool, bool, bool]:
        """*Level slices*, *textures* and whether the background is taken for uneven (*wide
        context* on a 2-D image, *level slices* on a volume) as the next run decides them
        (``auto`` by the newest weighed paintings): what the background rule shown depends on."""
        s = self.choices.train
        dims = len(self.image.spatial_shape)
        level = use_level_slices(s.level_slices, dims, self.training.slice_unevenness) and dims == 3
        uneven = uneven_background(use_wide_context(s.wide_context, dims, self.training.unevenness), level, dims)
        return level, use_textures(s.textures, self.training.texture_gain), uneven

    def _refresh_inferred(self, snapshot: Any = None) -> None:
        if not self.inferred.shown or self._closed or self.image.layer is None:
            return
        try:
            snapshot = snapshot or self.layers.snapshot()
        except UserInputError:
            return
        s = self.choices.train
        colors, names = overlay_styles(self.mode, self.choices.classes)
        self._inferred_decided = level, textures, uneven = self._inferred_choices()
        self.inferred.request(InferRequest(self.image.key, self.image.array(), self.image.channel_axis, snapshot,
                                           self.mode, s.infer_outlines, s.infer_background,
                                           self.choices.overrides.get("outline_halo", TrainConfig.outline_halo),
                                           level, textures, uneven),
                              colors, names)

    def loss_name(self) -> str:
        return self.choices.loss_name()

    def build_config(self, wide_context: bool | None = None, textures: bool | None = None,
                     level_slices: bool | None = None) -> TrainConfig:
        """The ``TrainConfig`` for the current image, classes and settings (*wide context*,
        *textures* and *level slices* on ``auto`` by the newest weighed paintings, unless
        ``wide_context``, ``textures`` or ``level_slices`` decide them)."""
        return self.choices.build_config(self.image.array().shape, channel_axis=self.image.channel_axis,
                                         spacing=self.image.spacing, unevenness=self.training.unevenness,
                                         wide_context=wide_context, texture_gain=self.training.texture_gain,
                                         textures=textures, slice_unevenness=self.training.slice_unevenness,
                                         level_slices=level_slices)

    def _train_config(self) -> TrainConfig:
        """What Train trains: :meth:`build_config`, except that *wide context*, *textures* and
        *level slices* on ``auto`` keep the model there is (the strokes' measures crossing their
        lines do not start a new one), and a textured model trained without standardised inputs
        goes on as it is."""
        config = self.build_config()
        if self.training.can_resume(config):
            return config
        train = self.choices.train
        wides = [None]
        if train.wide_context == "auto" and len(self.image.spatial_shape) == 2:
            wide = has_wide_context(config.input_filters, 2)
            wides = [wide, not wide]
        textures = [None]
        if train.textures == "auto":
            textures = [bool(config.filter_context), not config.filter_context]
        levels = [None]
        if train.level_slices == "auto" and len(self.image.spatial_shape) == 3:
            levels = [config.level_slices, not config.level_slices]
        for wide, texture, level in itertools.product(wides, textures, levels):
            other = self.build_config(wide_context=wide, textures=texture, level_slices=level)
            # a textured model from before textures came standardised (session 17) goes on too
            for candidate in (other, other.replace(input_norm=False)) if other.input_norm else (other,):
                if self.training.can_resume(candidate):
                    return candidate
        return config

    def start_training(self) -> None:
        """Start (or continue, when the model fits) training in a worker."""
        if self._closed or self.is_training:
            return
        try:
            snapshot = self.layers.snapshot()
            if self.weights is not None and not any(self.weights.counts) and not self._paint_timer.isActive():
                raise UserInputError("nothing is painted yet: paint a few strokes of each class")
            config = self._train_config()
            resume = self.training.run_dir if self.training.can_resume(config) else None
            run_dir = resume or self.projects.new_run_dir()
            predictor = Predictor(model_from_config(config), config, device=config.device)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the session goes on
            self.notify.fail(f"{type(e).__name__}: {e}")
            return
        paintings = self._paintings(snapshot)
        self.preview.set_model(predictor)
        self.layers.ensure_predictions()  # before training: adding a layer stalls the GUI
        self.objects.prepare()
        self.notify.last_error = None
        self.training.start(config, paintings, run_dir, resume)
        self._offered = None
        self.autosave(force=True)  # the paintings reach the disk when training starts

    def pause_training(self) -> None:
        self.training.pause()

    def resume_training(self) -> None:
        self.training.resume()

    def toggle_pause(self) -> None:
        if self.state == "paused":
            self.training.resume()
        else:
            self.training.pause()

    def stop_training(self) -> None:
        """Ask the trainer to stop; it writes a checkpoint and reports ``Finished``."""
        self.training.stop()

    # ------------------------------------------------------------------ results
    def _model(self, missing: str = "train a model first (press Train)") -> tuple[TrainConfig, Any] | None:
        try:
            return self.training.require_model()
        except UserInputError:
            self.notify.fail(missing)
            return None

    def predict_image(self, then: Callable[[], None] | None = None) -> None:
        """Predict the whole image with the newest weights (progress, cancellable)."""
        if self._closed or self.image.layer is None or (model := self._model()) is None:
            return
        ch = self.image.channel_axis
        stats = self.preview.stats(self.image.key, ch, model[0].level_slices)
        self.results.predict(self.layers.stamp, model, self.image.array(), ch, stats,
                             self.settings.probabilities, then)

    def predict_other(self, layer: Any) -> None:
        """Predict another open Image layer with the newest weights, into its own Labels layer
        ``"<name> prediction"`` (one per class, multi-label) with that layer's scale."""
        if layer is None or layer is self.image.layer:
            self.predict_image()
            return
        if self._closed or (model := self._model()) is None:
            return
        self.results.predict_other(layer, model, np.asarray(layer.data), channel_axis_of(layer))

    def _on_other_prediction(self, layer: Any, result: PredictResult) -> None:
        if layer in self.viewer.layers:
            self.layers.show_other(layer, result)
            self.notify.info(f"{layer.name} predicted")

    def cancel_predict(self) -> None:
        self.results.cancel()
        self.images.cancel()

    def predict_folder(self, in_dir: str | Path, out_dir: str | Path) -> None:
        """Predict every image in ``in_dir`` and write ``NAME_labels.EXT`` files to ``out_dir``."""
        if not self._closed and (model := self._model()) is not None:
            self.results.predict_folder(Path(in_dir), Path(out_dir), model)

    def compute_metrics(self, truth_layer: Any) -> None:
        """Dice and HD95 per class against ``truth_layer``, or object scores when it holds objects
        (:func:`~segstudio._qt.results.metrics_of`); predicts the whole image first."""
        if self._closed or truth_layer is None:
            return
        if not self.layers.complete:
            self.predict_image(then=lambda: self.compute_metrics(truth_layer))
            return
        prediction = self.layers.prediction()
        if prediction is None:
            return
        try:
            options = self.objects.options(self.class_names())
        except UserInputError:
            options = None  # reported only if the truth holds objects
        self.results.compute_metrics(prediction, np.asarray(truth_layer.data), self.class_names(), self.spacing,
                                     truth_holds_objects(truth_layer), options, self.image.array(),
                                     self.image.channel_axis)

    def save_prediction(self, dest: str | Path) -> None:
        """Write the whole-image prediction to ``dest`` (format from the extension; the image's
        spacing, and for NIfTI its affine, are kept). Predicts the whole image first if the
        layer only holds live previews of parts of it."""
        if self._closed or self._model("nothing to save yet: train a model first") is None:
            return
        if not self.layers.complete:
            self.predict_image(then=lambda: self.save_prediction(dest))
            return
        prediction = self.layers.prediction()
        if prediction is None:
            return
        self.results.save_prediction(prediction, Path(dest), self.image.labels_meta(self.layers.label_axes()),
                                     layer_meta(self.image.layer).get("path"))

    def save_run(self, dest: str | Path) -> None:
        """Copy the run directory (config, weights, history, classes) to ``dest``."""
        if (model := self._model("nothing to save yet: train a model first")) is None:
            return
        history = [{"iteration": i, "loss": v, "seconds": 0.0, "lr": 0.0}
                   for i, v in zip(self.loss_iterations, self.loss_values)]
        self.results.save_run(self.run_dir, Path(dest), model, history, self.iteration)

    def export_model(self, dest: str | Path, fmt: str) -> None:
        """Export the current model to ``dest`` as ``fmt`` (:mod:`segstudio.core.export`)."""
        if (model := self._model("nothing to export yet: train a model first")) is None:
            return
        image = None if self.image.layer is None else self.image.layer.data
        self.results.export(model, Path(dest), fmt, image, self.image.channel_axis)

    # ------------------------------------------------------------------ objects
    def _objects_request(self, *, mode_error: bool = True, choice_error: bool = True) -> ObjectsRequest | None:
        """A request for the objects of what the prediction layer shows, or ``None``: there is no
        prediction, it is multi-label (reported when ``mode_error``), or no class is an object
        (reported when ``choice_error``)."""
        prediction = self.layers.prediction() if self.image.layer is not None else None
        if prediction is None:
            return None
        labels = prediction.class_labels()
        if labels is None:
            if mode_error:
                self.notify.fail("objects need an exclusive prediction (one class per pixel): switch the mode")
            return None
        try:
            return self.objects.make_request(self.layers.stamp, labels, self.class_names())
        except UserInputError as e:
            if choice_error:
                self.notify.fail(str(e), popup=False)
            return None

    def _follow_objects(self) -> None:
        """The prediction layer changed: its objects, when they follow it."""
        if not self._closed and self.objects.follows:
            self._remake_objects(choice_error=False)

    def _refresh_objects(self) -> None:
        """The choices or the classes changed: the objects again, when they are shown, or follow
        the whole-image prediction the layer holds."""
        if not self._closed and (self.objects.shown is not None or (self.objects.follows and self.layers.complete)):
            self._remake_objects(choice_error=True)

    def _remake_objects(self, choice_error: bool) -> None:
        request = self._objects_request(mode_error=False, choice_error=choice_error)
        if request is not None:
            self.objects.request(request, quiet=True)
        else:
            self.objects.clear()

    def _on_objects(self, result: ObjectsResult) -> None:
        if self._current(result.stamp):
            self.objects.show(result)

    def find_objects(self) -> None:
        """The objects of the whole image (predicted first when the prediction layer holds only
        live previews of parts of it)."""
        if self._closed or self.image.layer is None:
            return
        if not self.layers.complete:
            self.predict_image(then=None if self.objects.follows else self.find_objects)
            return
        request = self._objects_request()
        if request is not None:
            self.objects.request(request)

    def save_objects(self, labels: str | Path | None = None, table: str | Path | None = None) -> None:
        """Write the objects of the whole image: their ``labels`` (format from the extension, with
        the image's spacing and NIfTI affine) and/or their ``table`` (CSV, an ``image`` column
        first). Predicts the whole image first when needed."""
        if self._closed or self.image.layer is None or (labels is None and table is None):
            return
        if not self.layers.complete:
            if self._model("nothing to save yet: train a model first") is not None:
                self.predict_image(then=lambda: self.save_objects(labels, table))
            return
        request = self._objects_request()
        if request is not None:
            targets = SaveTargets(None if labels is None else Path(labels), self.image.labels_meta(),
                                  self.image.source, None if table is None else Path(table))
            self.objects.save(request, targets)

    # ------------------------------------------------------------------ projects
    def set_autosave_interval(self, seconds: float) -> None:
        """Autosave the paintings every ``seconds`` (0 turns it off)."""
        self.projects.set_interval(seconds)

    def save_project(self, folder: str | Path | None = None) -> None:
        """Save the session as a project (``folder``: Save As; ``None``: the open project).

        Paintings are copied where they changed and written in a worker; a failed save leaves
        the project on disk as it was and is reported.
        """
        if self._closed:
            return
        if folder is None and self.projects.folder is None:
            self.notify.fail("choose a project folder first (Save project as…)")
            return
        target = Path(folder) if folder is not None else self.projects.folder
        try:
            job = self._save_job(target, None if self.is_training else self.run_dir)
        except UserInputError as e:
            self.notify.fail(str(e))
            return
        self._saving = job
        self.projects.save(job, self._paint_key())

    def _save_job(self, folder: Path, run_dir: Path | None, *, changed_only: bool = False) -> Any:
        """What saving every image into ``folder`` writes (GUI thread; no pixels copied).

        Raises
        ------
        UserInputError
            No complete set of paint layers.
        """
        snapshot = self.layers.snapshot()
        same = folder == self.projects.folder
        images, copies = self.images.project_images(folder, same)
        stored = self.images.stored_paintings(changed_only=same or changed_only)
        paintings = {snapshot.image: snapshot, **stored}
        predictions = self.images.predictions() if same else {}
        if self.layers.complete and (prediction := self.layers.prediction()) is not None:
            predictions[snapshot.image] = prediction
        versions = {snapshot.image: snapshot.version, **{n: p.version for n, p in stored.items()}}
        fields = {**self.choices.project_fields(), "objects": self.objects.project_fields()}
        return self.projects.job(folder, fields, images, paintings, predictions, run_dir, copies, versions)

    def _paint_key(self) -> Any:
        """What the paintings of every image are now (compared with the last save)."""
        try:
            version = self.layers.snapshot().version
        except UserInputError:
            version = -1
        return (version, self.images.paint_key())

    def _anchor(self) -> None:
        """The session's untitled autosave folder is its first image's."""
        entries = self.images.entries
        src = entries[0].source.path if entries else None
        self.projects.anchor = (entries[0].name, None if src is None else str(src)) if entries else None

    def _on_saved(self, folder: str) -> None:
        project = self.projects.project
        job = self._saving
        if project is not None and job is not None and str(job.folder) == folder:
            self.images.saved(Path(folder), project, job.versions, self.projects.lock)
        self._saving = None
        if not self.is_training and project is not None and project.last_run and self.projects.outside(self.run_dir):
            self.training.run_dir = Path(folder) / project.last_run  # the save copied the run in
        self.projects.retire_untitled(self.run_dir)
        self.project_changed.emit(folder)

    def _on_training_state(self, state: str) -> None:
        """A run that ended outside the open project (saved while it trained) is copied in; a
        preview held back by the budget starts now (the run's last weights)."""
        if state == "idle" and not self._closed:
            self._warm_timer.start()  # for the next Train
            if self._budget_timer.isActive():  # the run's last weights: no training left to spare
                self._budget_timer.stop()
                self._on_budget_elapsed()
        if state == "idle" and self.projects.outside(self.run_dir):
            self.workers.start("adopt run", self.projects.adopt_job(self.run_dir), returned=self._on_adopted,
                               errored=self.notify.worker_failed)

    def _on_adopted(self, run_dir: Path) -> None:
        self.training.run_dir = run_dir
        self.projects.retire_untitled(run_dir)

    def autosave(self, force: bool = False) -> None:
        """Write the paintings (in a worker) when they changed since the last save or autosave:
        to the open project's ``autosave/`` folder, else to the image's untitled project."""
        if self._closed or self.image.layer is None:
            return
        try:
            job = self._autosave_job()
        except UserInputError:
            return
        self.projects.autosave(job, self._paint_key(), force=force)

    def _autosave_job(self) -> Callable[[], Any]:
        """The autosave of every image's paintings (see ``Projects.autosave_job``)."""
        folder = self.projects.folder if self.projects.folder is not None else self.projects.untitled()
        return self.projects.autosave_job(self._save_job(folder, self.run_dir, changed_only=True))

    def open_project(self, folder: str | Path) -> bool:
        """Open a project: image, classes, mode, settings, paintings (recovered from the
        autosave if the user agrees), the last run's weights and the saved prediction.

        Returns ``True`` when the project opened (a broken run only costs the model, reported).
        """
        if self._closed:
            return False
        if self.is_training:
            self.notify.fail("stop training before opening a project")
            return False
        try:
            opened = self.projects.read(folder)
        except UserInputError as e:
            self.notify.fail(str(e))
            return False
        project, im = opened.project, opened.project.images[0]
        # Session state first, so the layers are made for the project's mode and classes.
        self.layers.remove_predictions()
        self.choices.load_project(project)
        self.objects.load_choices(project.objects)
        self.training.forget()
        self.preview.set_model(None)
        self.projects.folder = opened.folder
        self.mode_changed.emit(self.mode)
        kwargs: dict[str, Any] = {"name": im.name, "metadata": {META_KEY: {
            "path": str(image_path(opened.folder, im)), "channel_axis": im.channel_axis, "project_image": im.name}}}
        spacing = opened.meta.spacing
        n_spatial = opened.image.ndim - (im.channel_axis is not None)
        if spacing is not None and len(spacing) == n_spatial:
            scale = list(spacing)
            if im.channel_axis is not None:
                scale.insert(im.channel_axis, 1.0)
            kwargs["scale"] = tuple(scale)
        self.images.reset(None, None)  # the image list of the project follows
        self.set_image_layer(layer := self.viewer.add_image(opened.image, **kwargs))
        self.images.from_project(opened.folder, project, layer, opened.recovered_images, self.projects.lock)
        self._anchor()
        if opened.paintings is not None:
            try:
                self.layers.set_paintings(opened.paintings)
            except UserInputError as e:
                self.notify.fail(f"paintings of '{im.name}': {e}")
        self.images.shown(im.name, self._paint_key()[0])
        self.projects.opened(opened.folder, project, self._paint_key(), opened.recovered)
        self.classes_changed.emit()
        self.notify.info(f"opened project {opened.folder}"
                         + (" (autosaved paintings recovered)" if opened.recovered else ""))
        for note in opened.notes:
            self.notify.fail(note)  # a broken run is reported after (and over) that line
        if opened.run is not None:
            self.training.restore(opened.run)
            self.preview.set_model(Predictor(opened.run.model, opened.run.config, device=opened.run.config.device))
            if opened.prediction is not None:
                self.layers.set_prediction(opened.prediction)
        self._offer_paintings()
        self.project_changed.emit(str(opened.folder))
        return True

    # ------------------------------------------------------------------ lifetime
    def watch_window(self, window: QObject) -> None:
        """Shut down when ``window`` (the viewer's main window) closes."""
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self) -> None:
        """End the session without blocking: the trainer is told to stop (it writes its
        checkpoint), and the last autosave is written, in the background; :attr:`stopped`
        says when that is done."""
        if self._closed:
            return
        final = None
        try:
            if self._paint_key() != self.projects.saved_version:
                final = self._autosave_job()
        except UserInputError:
            pass  # no complete set of paint layers: nothing to autosave
        self._closed = True
        for timer in (self._paint_timer, self._view_timer, self._budget_timer, self._warm_timer, self.projects.timer):
            timer.stop()
        self.training.close()
        layer_events = self.viewer.layers.events
        for event, callback in ((layer_events.removed, self._on_layer_removed),
                                (getattr(layer_events, "begin_batch", None), self._on_layers_batch),
                                (getattr(layer_events, "end_batch", None), self._on_layers_batch_end),
                                (self.viewer.dims.events.current_step, self._on_view_changed)):
            try:
                if event is not None:
                    event.disconnect(callback)
            except Exception:  # noqa: BLE001 - the viewer may be half torn down
                pass
        self.layers.detach()
        self.preview.cancel()
        done = self.training.stop_for_close()
        run_dir = self.run_dir
        self.workers.close(keep=("train", "save", "autosave", "adopt run"))
        if not done.is_set() or final is not None:
            self.notify.info("stopping… (writing the last checkpoint and autosave)", popup=not done.is_set())
        self.notify.muted = True

        def finish() -> None:
            try:
                done.wait(STOP_TIMEOUT_S)
                self.projects.wait_for_writes(STOP_TIMEOUT_S)
                if final is not None:
                    final()
                if self.projects.outside(run_dir):  # a project saved while this run trained
                    self.projects.adopt_job(run_dir)()
            except Exception as e:  # noqa: BLE001 - nobody to show it to: kept for the record
                self.notify.last_error = f"closing: {type(e).__name__}: {e}"
            finally:
                self._stopped.set()

        run_in_background("segstudio-stop", finish)
