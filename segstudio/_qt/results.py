"""Results of a model: whole-image, other-image and folder predictions, metrics, and saving or
exporting the prediction and the model, each in a worker (predictions with progress and Cancel).

Metrics compare the prediction with a ground-truth Labels layer: Dice and HD95 per class when it
holds classes (values 1..K), and object scores (F1 at IoU 0.5, AP, mean matched IoU, merges,
splits; :func:`segstudio.core.metrics.instance_scores`) of the prediction's objects when it
holds objects (see :func:`truth_holds_objects`).

Every prediction of the chosen image carries the :class:`~segstudio._qt.image.Stamp` it was
asked for; the controller drops one whose image or layers changed meanwhile.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from segstudio._qt.image import Stamp, layer_meta, write_labels
from segstudio._qt.layers import Prediction
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet
from segstudio.core.batch import FileDone, image_files, iter_predict_files
from segstudio.core.config import TrainConfig
from segstudio.core.data import Normalization
from segstudio.core.errors import UserInputError
from segstudio.core.export import export_model
from segstudio.core.instances import InstanceOptions, instances_from_labels
from segstudio.core.io import SUPPORTED_EXTENSIONS, ImageMeta
from segstudio.core.metrics import InstanceScores, dice_binary, evaluate_prediction, hd95, instance_scores
from segstudio.core.predictor import PredictProgress, Predictor, PredictResult
from segstudio.core.run import MODEL_FILE, model_from_config, save_run


@dataclass(frozen=True)
class MetricsRow:
    """Metrics of one class as the widget shows them."""

    name: str
    dice: float
    hd95: float


#: Name fragments of a ground-truth layer that holds objects (one id per object), not classes.
OBJECT_TRUTH_HINTS = ("object", "instance")
#: The row of the Dice/HD95 table for the objects' foreground (against an object truth).
OBJECTS_ROW = "objects"


def truth_holds_objects(layer: Any) -> bool | None:
    """Whether a ground-truth Labels layer holds objects (``True``: segstudio's metadata or its
    name says so), or ``None``: its values decide (:func:`metrics_of`)."""
    meta = layer_meta(layer)
    if meta.get("objects") or meta.get("role") == "objects":
        return True
    return True if any(h in str(layer.name).lower() for h in OBJECT_TRUTH_HINTS) else None


# --------------------------------------------------------------------------- worker bodies
def make_predictor(config: TrainConfig, state: Any) -> Predictor:
    """A predictor holding ``state`` (built in the worker, not on the GUI thread)."""
    predictor = Predictor(model_from_config(config), config, device=config.device)
    predictor.load_state(state)
    return predictor


def predict_image(config: TrainConfig, state: Any, image: np.ndarray, channel_axis: int | None,
                  stats: Normalization | None, probabilities: bool) -> Iterator[Any]:
    """Whole-image prediction with progress (cancellable between tile batches)."""
    yield from make_predictor(config, state).iter_predict(image, channel_axis, stats=stats,
                                                          probabilities=probabilities)


def predict_files(config: TrainConfig, state: Any, files: Sequence[Path], out_dir: Path) -> Iterator[Any]:
    """Predict files into ``out_dir`` (:func:`segstudio.core.batch.iter_predict_files`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    yield from iter_predict_files(make_predictor(config, state), files, out_dir)


def metrics_of(prediction: Prediction, truth: np.ndarray, names: Sequence[str], spacing: tuple[float, ...] | None,
               objects: bool | None = None, options: InstanceOptions | None = None,
               image: np.ndarray | None = None, channel_axis: int | None = None,
               ) -> tuple[list[MetricsRow], InstanceScores | None]:
    """Worker body: the metrics of a prediction against a ground truth.

    A truth of classes (``objects`` False, or ``None`` and no value above the number of
    classes) gives Dice and HD95 per class. A truth of objects gives the object scores of the
    prediction's objects (made with ``options``, from ``image`` when they split along its dim
    lines) and the Dice and HD95 of their foreground.

    Raises
    ------
    UserInputError
        When the truth does not fit the prediction, or objects cannot be made from it.
    """
    if objects is None:
        objects = truth.size > 0 and int(truth.max()) > len(names)
    if not objects:
        rows = evaluate_prediction(prediction.mode, prediction.labels(), truth, len(names), spacing)
        return [MetricsRow(n, r.dice, r.hd95) for n, r in zip(names, rows)], None
    labels = prediction.class_labels()
    if labels is None:
        raise UserInputError("object scores need an exclusive prediction (one class per pixel): switch the mode")
    if options is None:
        raise UserInputError("object scores need object classes: tick them under Objects")
    if truth.shape != labels.shape:
        raise UserInputError(f"ground truth has shape {truth.shape}, the prediction {labels.shape}")
    if truth.dtype.kind not in "iub" or (truth.size and truth.min() < 0):
        raise UserInputError("an object ground truth must hold ids >= 0 (0 = background)")
    found = instances_from_labels(labels, options, spacing, image=image, channel_axis=channel_axis).labels
    mine, true = found > 0, truth > 0
    row = MetricsRow(OBJECTS_ROW, dice_binary(mine, true), hd95(mine, true, spacing))
    return [row], instance_scores(found, truth)


def save_labels(prediction: Prediction, dest: Path, meta: ImageMeta, source: str | None) -> Path:
    """Write predicted labels like their image (:func:`~segstudio._qt.image.write_labels`)."""
    return write_labels(dest, prediction.labels(), meta, source)


def save_run_folder(src: Path | None, dest: Path, config: TrainConfig, state: Any,
                    history: list[dict[str, float]], iteration: int) -> Path:
    """Copy the run folder to ``dest`` (or write one from the weights when there is none)."""
    if src is not None and (src / MODEL_FILE).exists():
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return dest
    model = model_from_config(config)
    model.load_state_dict(state)
    return save_run(dest, config, model, history=history, iteration=iteration)


def export(config: TrainConfig, state: Any, dest: Path, fmt: str, image: Any,
           channel_axis: int | None) -> dict[str, Path]:
    model = model_from_config(config)
    model.load_state_dict(state)
    return export_model(model, config, dest, fmt, image=None if image is None else np.asarray(image),
                        channel_axis=channel_axis)


# --------------------------------------------------------------------------- the part
class Results(QObject):
    """Predictions, metrics, saved predictions and runs, exports.

    Signals
    -------
    predict_progress(done, total)
        (0, 0): no prediction runs.
    predicted(stamp, PredictResult)
        A whole-image prediction of the chosen image.
    other_predicted(layer, PredictResult)
        A prediction of another Image layer.
    metrics_ready(list[MetricsRow])
    object_scores_ready(InstanceScores or None)
        After ``metrics_ready``: the object scores (``None``: the truth holds classes).
    """

    predict_progress = Signal(int, int)
    predicted = Signal(object, object)
    other_predicted = Signal(object, object)
    metrics_ready = Signal(object)
    object_scores_ready = Signal(object)

    def __init__(self, workers: WorkerSet, notify: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.notify = notify
        self.last_metrics: list[MetricsRow] | None = None
        self.last_object_scores: InstanceScores | None = None
        self._then: Callable[[], None] | None = None

    @property
    def predicting(self) -> bool:
        return self.workers.busy("predict") or self.workers.busy("folder")

    def take_then(self) -> Callable[[], None] | None:
        """What to do after the whole-image prediction that just arrived (once)."""
        then, self._then = self._then, None
        return then

    def predict(self, stamp: Stamp, model: tuple[TrainConfig, Any], image: np.ndarray,
                channel_axis: int | None, stats: Normalization | None, probabilities: bool,
                then: Callable[[], None] | None = None) -> None:
        """Predict the chosen image with ``model`` (``then``: run after it arrived)."""
        if self.workers.busy("predict"):
            return
        self._then = then
        self.notify.info("predicting the whole image…")
        self._start(lambda result: self.predicted.emit(stamp, result),
                    predict_image, *model, image, channel_axis, stats, probabilities)

    def predict_other(self, layer: Any, model: tuple[TrainConfig, Any], image: np.ndarray,
                      channel_axis: int | None) -> None:
        """Predict another open Image layer."""
        if self.workers.busy("predict"):
            return
        self.notify.info(f"predicting {layer.name}…")
        self._start(lambda result: self.other_predicted.emit(layer, result),
                    predict_image, *model, image, channel_axis, None, False)

    def _start(self, deliver: Callable[[PredictResult], None], func: Callable[..., Any], *args: Any) -> None:
        def on_event(event: Any) -> None:
            if isinstance(event, PredictResult):
                deliver(event)
            elif isinstance(event, PredictProgress):
                self.predict_progress.emit(event.done, event.total)

        self.predict_progress.emit(0, 1)
        worker = self.workers.start("predict", func, *args, yielded=on_event, errored=self.notify.worker_failed,
                                    finished=self._finished)
        if worker is not None and hasattr(worker, "aborted"):
            worker.aborted.connect(lambda: self.notify.info("prediction cancelled"))

    def _finished(self) -> None:
        if not self.predicting:
            self.predict_progress.emit(0, 0)

    def predict_folder(self, in_dir: Path, out_dir: Path, model: tuple[TrainConfig, Any]) -> None:
        """Predict every image in ``in_dir`` into ``out_dir`` (``NAME_labels.EXT``)."""
        if self.workers.busy("folder"):
            return
        files = image_files(in_dir)
        if not files:
            self.notify.fail(f"no images ({', '.join(SUPPORTED_EXTENSIONS)}) in '{in_dir}'")
            return
        self.notify.info(f"predicting {len(files)} images…")
        self.predict_progress.emit(0, len(files))

        def on_event(event: Any) -> None:
            if isinstance(event, FileDone):
                self.predict_progress.emit(event.index, event.total)
                self.notify.info(f"predicted {Path(event.image).name} ({event.index}/{event.total}) → {out_dir}")

        self.workers.start("folder", predict_files, *model, files, out_dir, yielded=on_event,
                           errored=self.notify.worker_failed, finished=self._finished)

    def cancel(self) -> None:
        """Cancel the running predictions."""
        self._then = None
        self.workers.quit("predict")
        self.workers.quit("folder")

    def compute_metrics(self, prediction: Prediction, truth: np.ndarray, names: Sequence[str],
                        spacing: tuple[float, ...] | None, objects: bool | None = None,
                        options: InstanceOptions | None = None, image: np.ndarray | None = None,
                        channel_axis: int | None = None) -> None:
        """:func:`metrics_of` in a worker (``objects``, ``options``, ``image``: see there)."""
        self.notify.info("computing metrics…")
        self.workers.start("metrics", metrics_of, prediction, truth, list(names), spacing, objects, options,
                           image, channel_axis, returned=self._on_metrics, errored=self.notify.worker_failed)

    def _on_metrics(self, out: tuple[list[MetricsRow], InstanceScores | None]) -> None:
        rows, scores = out
        self.last_metrics, self.last_object_scores = rows, scores
        line = "Dice: " + " · ".join(f"{r.name} {r.dice:.3f}" for r in rows)
        if scores is not None:
            line += f" · F1 {scores.f1:.3f} ({scores.n_pred} objects, {scores.n_true} true)"
        self.notify.info(line)
        self.metrics_ready.emit(rows)
        self.object_scores_ready.emit(scores)

    def save_prediction(self, prediction: Prediction, dest: Path, meta: ImageMeta, source: str | None) -> None:
        self.notify.info(f"saving the prediction to {dest}…")
        self.workers.start("save prediction", save_labels, prediction, dest, meta, source,
                           returned=lambda p: self.notify.info(f"prediction saved to {p}"),
                           errored=self.notify.worker_failed)

    def save_run(self, src: Path | None, dest: Path, model: tuple[TrainConfig, Any],
                 history: list[dict[str, float]], iteration: int) -> None:
        self.notify.info(f"saving run to {dest}…")
        self.workers.start("save run", save_run_folder, src, dest, *model, history, iteration,
                           returned=lambda p: self.notify.info(f"run saved to {p}"),
                           errored=self.notify.worker_failed)

    def export(self, model: tuple[TrainConfig, Any], dest: Path, fmt: str, image: Any,
               channel_axis: int | None) -> None:
        self.notify.info(f"exporting the model to {dest}…")
        self.workers.start("export", export, *model, dest, fmt, image, channel_axis,
                           returned=lambda paths: self.notify.info(
                               "model exported to " + ", ".join(str(p) for p in paths.values())),
                           errored=self.notify.worker_failed)
