"""The session controller: state of one segstudio dock widget and the bridge to ``core``.

The controller owns everything that is not a Qt widget: the chosen image layer, the classes,
the paint and prediction layers, the training worker, the preview predictor. Widgets call its
methods and listen to its signals; it never blocks the GUI thread with numerical work:

* paint events are debounced (``PAINT_DEBOUNCE_MS``), then the paintings are copied and the
  class weights computed in a worker; the copy is pushed to the running trainer through its
  :class:`~segstudio.core.data.SnapshotSource`;
* training runs :class:`segstudio.core.trainer.Trainer` in a generator worker; its events
  arrive on the GUI thread through ``worker.yielded``;
* live previews run in a *single-slot* worker: while one prediction runs, a newer request
  replaces the pending one (never a queue);
* whole-image / folder predictions, metrics and run saving run in workers too.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, QTimer, Signal

from segstudio._qt.workers import start_worker, threads_disabled
from segstudio.core.annotations import ABSENT, EXCLUSIVE, MULTILABEL, PRESENT, check_mode
from segstudio.core.config import DEFAULT_COLORS, DEFAULT_PRESET, MODEL_PRESETS, NETWORK_FIELDS, TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.losses import LOSS_NAMES
from segstudio.core.project import DEFAULT_AUTOSAVE_EVERY_S
from segstudio.core.weights import DEFAULT_METHOD, ClassWeights, compute_weights

#: Quiet time after the last paint event before paintings are copied and weighed.
PAINT_DEBOUNCE_MS = 300
#: Quiet time after a slice/camera change before an on-demand preview is asked for.
VIEW_DEBOUNCE_MS = 200
#: How long closing waits for the training worker to write its checkpoint and stop.
SHUTDOWN_TIMEOUT_S = 15.0
#: Slices predicted on each side of the current one in 3D previews.
PREVIEW_SLAB = 1
#: 2D images up to this many pixels are previewed whole; larger ones around the view.
WHOLE_PREVIEW_MAX_PIXELS = 2048 * 2048
#: Colour of "absent" strokes in multi-label paint layers.
ABSENT_COLOR = "#8c8c8c"
#: Opacity of prediction overlays.
PREDICTION_OPACITY = 0.4
#: Folder prediction: files it picks up.
FOLDER_EXTENSIONS = (".tif", ".tiff", ".nii", ".nii.gz", ".npy", ".png", ".zarr")
#: Seconds between autosaves of the paintings of an open project.
DEFAULT_AUTOSAVE_S = DEFAULT_AUTOSAVE_EVERY_S
#: Key of segstudio's entries in ``layer.metadata``.
META_KEY = "segstudio"
LENGTHS = ("iterations", "minutes", "until stopped")
DEVICES = ("auto", "cpu", "cuda")
PREVIEW_REGIONS = ("view", "image")
DEFAULT_CLASSES = ("background", "foreground")


@dataclass
class ClassSpec:
    """One class as the user sees it: name, colour and an optional pinned weight."""

    name: str
    color: str
    pinned: float | None = None


@dataclass(frozen=True)
class TrainSettings:
    """What the training group of the widget sets."""

    preset: str = DEFAULT_PRESET
    loss: str | None = None  # None: the first loss of the mode
    device: str = "auto"
    length: str = "iterations"
    iterations: int = 500
    minutes: float = 5.0
    live_preview: bool = True
    preview_every_s: float = 2.0
    preview_region: str = "view"
    probabilities: bool = False  # whole-image predictions also show per-class probabilities
    infer_outlines: bool = True  # learn the labels closed traced outlines imply (core.outlines)


@dataclass(frozen=True)
class MetricsRow:
    """Per-class metrics shown in the widget."""

    name: str
    dice: float
    hd95: float


# --------------------------------------------------------------------------- worker bodies
# These run off the GUI thread: they only touch numpy arrays and core objects.
def _copy_and_weigh(
    arrays: Sequence[Any], mode: str, method: str, n_classes: int, pins: dict[int, float],
    previous: np.ndarray | None,
) -> tuple[np.ndarray, ClassWeights, bool]:
    """Copy the paintings, compute weights; say whether they changed since ``previous``."""
    if mode == EXCLUSIVE:
        paint = np.array(arrays[0], copy=True)
    else:
        paint = np.stack([np.asarray(a) for a in arrays])
    unchanged = previous is not None and previous.shape == paint.shape and np.array_equal(previous, paint)
    weights = compute_weights(
        paint, mode, method, n_classes=n_classes if mode == EXCLUSIVE else None, pinned=pins
    )
    return paint, weights, unchanged


def layer_meta(layer: Any) -> dict[str, Any]:
    """segstudio's entries in a layer's ``metadata`` (empty when it has none)."""
    return dict((layer.metadata or {}).get(META_KEY) or {})


def channel_axis_of(layer: Any) -> int | None:
    """The channel axis of an Image layer's data: after the layer's dims for RGB(A), else
    the one segstudio's reader recorded, else ``None`` (one channel)."""
    if getattr(layer, "rgb", False):
        return layer.ndim
    axis = layer_meta(layer).get("channel_axis")
    return None if axis is None else int(axis)


def _share_cpu_threads(device: str) -> None:
    """On CPU, give torch half the cores: training and the live previews run at the same time
    in two threads, and two OpenMP teams of all cores each oversubscribe the CPU (measured with
    ``benchmarks/gui_responsiveness.py`` on 2 cores: 33 → 57 iterations in 15 s, first live
    prediction 8.2 → 6.2 s, stall p99 64 → 45 ms)."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()
                           and not torch.backends.mps.is_available()):
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


_warm_up_started = threading.Event()
_warm_up_threads: list[threading.Thread] = []


def warm_up_torch() -> None:
    """Import, once and in a background thread, what the first training would import.

    The optimizer's constructor imports ``torch._dynamo`` on first use: 2.4 s of the 4.8 s
    from Train to the first live prediction on 2 cores (``benchmarks/gui_responsiveness.py``).
    Doing it while the user looks at the image and paints takes it off that path.
    """
    if _warm_up_started.is_set():
        return
    _warm_up_started.set()

    def work() -> None:
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # noqa: BLE001 - only a warm-up; training imports it again
            pass

    thread = threading.Thread(target=work, name="segstudio-torch-warm-up", daemon=True)
    _warm_up_threads.append(thread)
    thread.start()


def wait_for_background_work(timeout_s: float = 30.0) -> None:
    """Before the process exits: let the torch warm-up import and any pool worker finish.

    A worker whose start superqt queued just before the window closed, or an import still
    running in a daemon thread, would otherwise meet Qt objects that Python is tearing down
    ("Signal source has been deleted" on stderr).
    """
    from qtpy.QtCore import QThreadPool

    for thread in _warm_up_threads:
        thread.join(timeout_s)
    QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))


def _training_events(
    config: TrainConfig,
    source: Any,
    run_dir: Path,
    resume: Path | None,
    first_snapshot: Callable[[], tuple[list[Any], tuple[float, ...] | None]],
    stop: threading.Event,
    done: threading.Event,
) -> Iterator[Any]:
    """Wrap the trainer: put the first snapshot, forward events, stop cooperatively.

    Stopping with ``stop`` (rather than only ``worker.quit()``) lets the trainer's generator be
    closed *here*, in the worker thread, so it writes its final checkpoint; a last
    ``Preview`` and ``Finished("stopped")`` follow so the GUI shows the final weights.
    """
    from segstudio.core.trainer import Finished, Trainer, cpu_state

    try:
        images, weights = first_snapshot()
        source.put(images, weights)
        trainer = Trainer(config, source, run_dir, resume=resume)
        events = trainer.run()
        stopped = False
        try:
            for event in events:
                yield event
                if stop.is_set():
                    stopped = True
                    break
        finally:
            events.close()
        if stopped and hasattr(trainer, "model"):
            from segstudio.core.trainer import Preview

            yield Preview(trainer.iteration, cpu_state(trainer.model))
            yield Finished(trainer.iteration, trainer.elapsed, "stopped", str(run_dir))
    finally:
        done.set()


def _predict_region(predictor: Any, image: np.ndarray, channel_axis: int | None, state: Any,
                    region: tuple[slice, ...] | None, stats: Any) -> tuple[Any, Any]:
    """Load ``state`` into the preview predictor and predict ``region``."""
    from segstudio.core.data import image_stats

    if stats is None:
        stats = image_stats(image, channel_axis, predictor.config.percentiles)
    if state is not None:
        predictor.load_state(state)
    return predictor.predict(image, channel_axis, region=region, stats=stats), stats


def _predict_whole(predictor: Any, image: np.ndarray, channel_axis: int | None, stats: Any,
                   probabilities: bool = False) -> Iterator[Any]:
    """Whole-image prediction with progress (cancellable between tile batches)."""
    yield from predictor.iter_predict(image, channel_axis, stats=stats, probabilities=probabilities)


def _predict_folder(predictor: Any, files: list[Path], out_dir: Path) -> Iterator[tuple[int, int, str]]:
    """Read, predict and write every file; yields ``(done, total, name)``."""
    from segstudio.core.io import read_image, write_image

    out_dir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        image, meta = read_image(path)
        axes = (meta.axes or "").upper()
        ch = axes.index("C") if "C" in axes and len(axes) == image.ndim else None
        result = predictor.predict(np.asarray(image), ch)
        name = path.name
        for ext in sorted(FOLDER_EXTENSIONS, key=len, reverse=True):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
                break
        out_meta = replace(meta, axes=None) if ch is not None else meta
        write_image(out_dir / f"{name}_labels.tif", result.labels, like=out_meta)
        yield i + 1, len(files), path.name


def _metrics(mode: str, pred: np.ndarray, truth: np.ndarray, names: list[str],
             spacing: tuple[float, ...] | None) -> list[MetricsRow]:
    from segstudio.core.metrics import evaluate, evaluate_multilabel

    if mode == EXCLUSIVE:
        if truth.shape != pred.shape:
            raise UserInputError(f"ground truth has shape {truth.shape}, the prediction {pred.shape}")
        rows = evaluate(pred, truth, list(range(1, len(names) + 1)), spacing)
    else:
        if truth.shape == pred.shape[1:]:  # an exclusive label image: class k is value k+1
            truth = np.stack([truth == k + 1 for k in range(len(names))])
        if truth.shape != pred.shape:
            raise UserInputError(f"ground truth has shape {truth.shape}, the prediction {pred.shape}")
        rows = evaluate_multilabel(pred, truth, spacing)
    return [MetricsRow(n, r.dice, r.hd95) for n, r in zip(names, rows)]


def _save_prediction(labels: np.ndarray, dest: Path, spacing: tuple[float, ...] | None,
                     source: str | None, axes: str | None, affine: Any = None) -> Path:
    """Write predicted labels next to their image's metadata (spacing; NIfTI affine and
    header from the source file, else the affine the reader kept in the layer)."""
    from segstudio.core.io import ImageMeta, read_image, write_image

    like = None
    if source and Path(source).exists():
        try:
            like = read_image(source, lazy=True)[1]
        except UserInputError:
            like = None  # the source went bad since it was opened: spacing alone is kept
    affine = None if affine is None else np.asarray(affine, dtype=float)
    return write_image(dest, labels, ImageMeta(spacing=spacing, axes=axes, affine=affine), like=like)


def _write_project(folder: Path, project: Any, arrays: dict[str, list[Any]], mode: str,
                   predictions: dict[str, Any], image: tuple[str, Any, Any] | None,
                   run_dir: Path | None) -> Any:
    """Copy the paintings and write the project folder (off the GUI thread).

    ``image``: ``(name, array, meta)`` of an image that has no file yet (a sample or a layer
    made in napari): written into the project's ``images/`` folder first. A run outside the
    project (a temporary one) is copied into ``runs/``.
    """
    from segstudio.core import project as P
    from segstudio.core.atomic import atomic_write_with

    folder.mkdir(parents=True, exist_ok=True)
    if image is not None:
        name, data, _meta = image
        dest = folder / P.IMAGES_DIR / f"{name}.npy"
        if not dest.exists():  # pixels do not change: written once
            arr = np.asarray(data)
            atomic_write_with(dest, lambda fh: np.save(fh, arr))
        ch = project.images[0].channel_axis if project.images else None
        project = P.add_image(folder, replace(project, images=()), dest, name=name, channel_axis=ch, copy=True)
    paint = {n: (np.array(a[0], copy=True) if mode == EXCLUSIVE else np.stack([np.asarray(x) for x in a]))
             for n, a in arrays.items()}
    if run_dir is not None and (run_dir / "model.pt").exists():
        inside = folder.resolve() in run_dir.resolve().parents
        if not inside:
            dest_run = P.new_run_dir(folder)
            shutil.copytree(run_dir, dest_run, dirs_exist_ok=True)
            run_dir = dest_run
        project = replace(project, last_run=P._stored_path(folder, run_dir))
    return P.save_project(folder, project, paint, predictions)


def _write_autosave(folder: Path, arrays: dict[str, list[Any]], mode: str) -> Path:
    """Copy the paintings and write them to the project's autosave side folder."""
    from segstudio.core.project import autosave

    paint = {n: (np.array(a[0], copy=True) if mode == EXCLUSIVE else np.stack([np.asarray(x) for x in a]))
             for n, a in arrays.items()}
    return autosave(folder, paint)


def _export_model(config: TrainConfig, state: dict[str, Any], dest: Path, fmt: str, image: Any,
                  channel_axis: int | None) -> dict[str, Path]:
    from segstudio.core.export import export_model
    from segstudio.core.run import model_from_config

    model = model_from_config(config)
    model.load_state_dict(state)
    return export_model(model, config, dest, fmt, image=None if image is None else np.asarray(image),
                        channel_axis=channel_axis)


def _copy_run(src: Path | None, dest: Path, fallback: Callable[[Path], None]) -> Path:
    if src is not None and (src / "model.pt").exists():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        fallback(dest)
    return dest


# --------------------------------------------------------------------------- controller
class SegController(QObject):
    """State of one segstudio session in a napari viewer (see the module docstring)."""

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
    project_changed = Signal(str)  # the project folder, after it was opened or saved

    def __init__(self, viewer: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        warm_up_torch()
        self.viewer = viewer
        self.image_layer: Any = None
        self.channel_axis: int | None = None
        self.mode: str = EXCLUSIVE
        self.classes: list[ClassSpec] = [
            ClassSpec(n, DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i, n in enumerate(DEFAULT_CLASSES)
        ]
        self.weight_method: str = DEFAULT_METHOD
        self.settings = TrainSettings()
        #: Extra ``TrainConfig`` fields (tests: tiny models; experts: patch/batch).
        self.config_overrides: dict[str, Any] = {}
        self.paint_layers: list[Any] = []
        self.prediction_layers: list[Any] = []
        self.weights: ClassWeights | None = None
        self.config: TrainConfig | None = None
        self.run_dir: Path | None = None
        self.last_checkpoint: Path | None = None
        self.iteration = 0
        self.loss_iterations: list[int] = []
        self.loss_values: list[float] = []
        self.state = "idle"
        self.last_error: str | None = None
        self.last_metrics: list[MetricsRow] | None = None
        self._closed = False
        self._image_cache: tuple[Any, np.ndarray] | None = None
        self._stats_cache: dict[int, Any] = {}
        self._last_paint: np.ndarray | None = None
        self._last_put_weights: tuple[float, ...] | None = None
        self._source: Any = None
        self._train_worker: Any = None
        self._train_stop = threading.Event()
        self._train_done = threading.Event()
        self._rate = collections.deque(maxlen=20)
        self._count_worker: Any = None
        self._count_dirty = False
        self._preview_predictor: Any = None
        self._preview_worker: Any = None
        self._preview_pending: tuple[Any, tuple[slice, ...] | None] | None = None
        self._preview_state: Any = None  # latest weights (state dict)
        self._prediction_complete = False
        self._predict_worker: Any = None
        self._predict_target: Any = None  # an Image layer other than the training image
        self._after_predict: Callable[[], None] | None = None
        self._folder_worker: Any = None
        self._misc_workers: list[Any] = []
        #: The open project folder (``None``: not saved as a project yet).
        self.project_dir: Path | None = None
        self.project: Any = None  # core.project.Project as last saved or opened
        #: Asked (with a one-line message) before autosaved paintings are recovered; the widget
        #: shows a dialog, tests inject the answer.
        self.ask_recover: Callable[[str], bool] = lambda message: True
        self._paint_version = 0
        self._autosaved_version = 0
        self._save_worker: Any = None
        self._autosave_worker: Any = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.timeout.connect(self.autosave)
        self.set_autosave_interval(DEFAULT_AUTOSAVE_S)

        self._paint_timer = QTimer(self)
        self._paint_timer.setSingleShot(True)
        self._paint_timer.setInterval(PAINT_DEBOUNCE_MS)
        self._paint_timer.timeout.connect(self.refresh_counts)
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(VIEW_DEBOUNCE_MS)
        self._view_timer.timeout.connect(self._on_view_settled)

        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.dims.events.current_step.connect(self._on_view_changed)

    def watch_window(self, window: QObject) -> None:
        """Shut down when ``window`` (the viewer's main window) closes."""
        window.installEventFilter(self)

    # ------------------------------------------------------------------ lifetime
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Stop every worker (training writes its checkpoint) and disconnect from the viewer."""
        if self._closed:
            return
        self._autosave_sync()  # before anything stops: the newest strokes reach the disk
        self._closed = True
        self._paint_timer.stop()
        self._autosave_timer.stop()
        self._view_timer.stop()
        self._preview_pending = None
        for event, cb in (
            (self.viewer.layers.events.removed, self._on_layer_removed),
            (self.viewer.dims.events.current_step, self._on_view_changed),
        ):
            try:
                event.disconnect(cb)
            except Exception:  # noqa: BLE001 - viewer may be half torn down
                pass
        for layer in self.paint_layers:
            self._disconnect_paint_layer(layer)
        worker = self._train_worker
        if worker is not None and worker.is_running:
            self._train_stop.set()
            if getattr(worker, "is_paused", False):
                worker.resume()
            if threads_disabled():
                worker.quit()
            elif not self._train_done.wait(timeout_s):
                worker.quit()
        for w in (self._preview_worker, self._predict_worker, self._folder_worker, self._count_worker,
                  *self._misc_workers):
            if w is not None and getattr(w, "is_running", False) and hasattr(w, "quit"):
                w.quit()
        if not threads_disabled():
            from qtpy.QtCore import QThreadPool

            QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))
        self._set_state("idle")

    # ------------------------------------------------------------------ image
    def set_image_layer(self, layer: Any) -> None:
        """Choose the image to segment; adopts matching paint layers or creates them."""
        if layer is self.image_layer:
            return
        if self.is_training:
            self._report_error("stop training before changing the image")
            return
        self.image_layer = layer
        self._image_cache = None
        self._last_paint = None
        self._prediction_complete = False
        self.channel_axis = None if layer is None else channel_axis_of(layer)
        self._detach_layers()
        if layer is not None:
            self._adopt_or_create_paint_layers()
            # Made now, empty (transparent), not when the first live prediction arrives: adding
            # a napari layer costs 0.2-0.5 s of GUI thread, which must not fall into training.
            self._ensure_prediction_layers()
            self._keep_untitled_autosave()
        self.image_changed.emit()
        self.classes_changed.emit()
        self.refresh_counts()

    def set_channel_axis(self, axis: int | None) -> None:
        """Set the image's channel axis (``None``: single channel)."""
        if axis == self.channel_axis:
            return
        if axis is not None and self.image_layer is not None:
            ndim = self.image_array().ndim
            if not 0 <= axis < ndim:
                self._report_error(f"channel axis {axis} is out of range for a {ndim}-D image")
                return
        self.channel_axis = axis
        self._detach_layers()
        if self.image_layer is not None:
            self._adopt_or_create_paint_layers()
        self.image_changed.emit()
        self.refresh_counts()

    def image_array(self) -> np.ndarray:
        """The chosen image as a numpy array (largest scale of a multiscale layer), cached."""
        layer = self.image_layer
        if layer is None:
            raise UserInputError("choose an image first")
        if self._image_cache is not None and self._image_cache[0] is layer.data:
            return self._image_cache[1]
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        arr = np.asarray(data)
        self._image_cache = (layer.data, arr)
        return arr

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        shape = list(self.image_array().shape)
        if self.channel_axis is not None:
            del shape[self.channel_axis]
        return tuple(shape)

    def _spatial_of(self, values: Sequence[float]) -> tuple[float, ...]:
        vals = list(values)
        if self.channel_axis is not None and self.channel_axis < len(vals):
            del vals[self.channel_axis]
        return tuple(float(v) for v in vals)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Physical pixel size per spatial axis (the image layer's scale)."""
        return self._spatial_of(self.image_layer.scale)[-len(self.spatial_shape):]

    def _layer_geometry(self) -> dict[str, Any]:
        layer = self.image_layer
        n = len(self.spatial_shape)
        return {
            "scale": self.spacing,
            "translate": self._spatial_of(layer.translate)[-n:],
        }

    # ------------------------------------------------------------------ classes
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def add_class(self, name: str | None = None, color: str | None = None) -> None:
        if not self._classes_editable():
            return
        k = len(self.classes)
        used = {c.color for c in self.classes}
        if color is None:
            color = next((c for c in DEFAULT_COLORS if c not in used), DEFAULT_COLORS[k % len(DEFAULT_COLORS)])
        self.classes.append(ClassSpec(name or f"class {k + 1}", color))
        if self.mode == MULTILABEL and self.image_layer is not None:
            self.paint_layers.append(self._new_multilabel_layer(k))
        self._apply_colors()
        self.classes_changed.emit()
        self.refresh_counts()

    def remove_class(self, index: int) -> None:
        """Remove a class; its strokes are erased and later classes move down by one."""
        if not self._classes_editable():
            return
        if len(self.classes) <= 1:
            self._report_error("at least one class is needed")
            return
        if not 0 <= index < len(self.classes):
            return
        del self.classes[index]
        if self.mode == EXCLUSIVE:
            for layer in self.paint_layers:
                data = layer.data
                value = index + 1
                data[data == value] = 0
                data[data > value] -= 1
                layer.refresh()
        elif index < len(self.paint_layers):
            layer = self.paint_layers.pop(index)
            self._disconnect_paint_layer(layer)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._remove_prediction_layers()
        self._apply_colors()
        self.classes_changed.emit()
        self.refresh_counts()

    def rename_class(self, index: int, name: str) -> None:
        name = name.strip()
        if not name or not 0 <= index < len(self.classes) or self.classes[index].name == name:
            return
        self.classes[index].name = name
        if self.mode == MULTILABEL and index < len(self.paint_layers):
            self.paint_layers[index].name = f"paint: {name}"
        if self.mode == MULTILABEL and index < len(self.prediction_layers):
            self.prediction_layers[index].name = f"prediction: {name}"
        self.classes_changed.emit()

    def set_class_color(self, index: int, color: str) -> None:
        if not 0 <= index < len(self.classes):
            return
        self.classes[index].color = color
        self._apply_colors()
        self.classes_changed.emit()

    def set_pinned_weight(self, index: int, weight: float | None) -> None:
        """Pin a class weight (``None`` unpins); the trainer gets it with the next snapshot."""
        if not 0 <= index < len(self.classes):
            return
        if weight is not None and (not math.isfinite(weight) or weight < 0):
            self._report_error("a pinned weight must be a number >= 0")
            return
        self.classes[index].pinned = weight
        self.classes_changed.emit()
        self.refresh_counts()

    def set_weight_method(self, method: str) -> None:
        if method != self.weight_method:
            self.weight_method = method
            self.refresh_counts()

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

    def _classes_editable(self) -> bool:
        if self.is_training:
            self._report_error("stop training before adding or removing classes")
            return False
        return True

    def _pins(self) -> dict[int, float]:
        return {i: c.pinned for i, c in enumerate(self.classes) if c.pinned is not None}

    # ------------------------------------------------------------------ mode
    def set_mode(self, mode: str) -> None:
        """Switch exclusive <-> multilabel, converting the strokes painted so far."""
        check_mode(mode)
        if mode == self.mode:
            return
        if self.is_training:
            self._report_error("stop training before changing the mode")
            self.mode_changed.emit(self.mode)
            return
        old = [np.asarray(layer.data) for layer in self.paint_layers]
        old_mode = self.mode
        self.mode = mode
        self._remove_prediction_layers()
        for layer in list(self.paint_layers):
            self._disconnect_paint_layer(layer)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.paint_layers = []
        self._last_paint = None
        if self.image_layer is not None:
            self._create_paint_layers()
            if old:
                self._convert_paint(old_mode, old)
        if self.settings.loss is not None and self.settings.loss not in LOSS_NAMES[mode]:
            self.settings = replace(self.settings, loss=None)
        self.mode_changed.emit(mode)
        self.classes_changed.emit()
        self.refresh_counts()

    def _convert_paint(self, old_mode: str, old: list[np.ndarray]) -> None:
        if old_mode == EXCLUSIVE and self.mode == MULTILABEL:
            src = old[0]
            painted = src > 0
            for k, layer in enumerate(self.paint_layers):
                data = np.zeros_like(layer.data)
                data[painted] = ABSENT
                data[src == k + 1] = PRESENT
                layer.data = data
        elif old_mode == MULTILABEL and self.mode == EXCLUSIVE and self.paint_layers:
            out = np.zeros_like(self.paint_layers[0].data)
            for k, src in reversed(list(enumerate(old))):
                out[src == PRESENT] = k + 1
            self.paint_layers[0].data = out

    # ------------------------------------------------------------------ paint layers
    def _paint_dtype(self) -> type:
        return np.uint8 if len(self.classes) < 255 else np.uint16

    def _colormap(self, colors: dict[int, str]) -> Any:
        from napari.utils.colormaps import DirectLabelColormap

        return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **colors})

    def _exclusive_colors(self) -> dict[int, str]:
        return {i + 1: c.color for i, c in enumerate(self.classes)}

    def _meta(self, role: str, **extra: Any) -> dict[str, Any]:
        source = (self.image_layer.metadata or {}).get(META_KEY) or {}
        if source.get("affine") is not None:  # NIfTI: the napari writer keeps it when saving
            extra = {"affine": source["affine"], **extra}
        return {META_KEY: {"role": role, "image": self.image_layer.name, **extra}}

    def _new_multilabel_layer(self, k: int) -> Any:
        spec = self.classes[k]
        layer = self.viewer.add_labels(
            np.zeros(self.spatial_shape, dtype=np.uint8),
            name=f"paint: {spec.name}",
            metadata=self._meta("paintings", class_index=k),
            **self._layer_geometry(),
        )
        layer.colormap = self._colormap({PRESENT: spec.color, ABSENT: ABSENT_COLOR})
        self._connect_paint_layer(layer)
        return layer

    def _create_paint_layers(self) -> None:
        if self.mode == EXCLUSIVE:
            layer = self.viewer.add_labels(
                np.zeros(self.spatial_shape, dtype=self._paint_dtype()),
                name="paintings",
                metadata=self._meta("paintings"),
                **self._layer_geometry(),
            )
            layer.colormap = self._colormap(self._exclusive_colors())
            self._connect_paint_layer(layer)
            self.paint_layers = [layer]
        else:
            self.paint_layers = [self._new_multilabel_layer(k) for k in range(len(self.classes))]
        if self.paint_layers and self.image_layer in self.viewer.layers:
            self.viewer.layers.selection.active = self.paint_layers[0]

    def _adopt_or_create_paint_layers(self) -> None:
        """Reuse paint layers of this image (e.g. a sample's example strokes) or create them."""
        shape = self.spatial_shape
        found_excl, found_multi = None, {}
        for layer in self.viewer.layers:
            if layer.__class__.__name__ != "Labels" or tuple(layer.data.shape) != shape:
                continue
            meta = (layer.metadata or {}).get(META_KEY, {})
            if meta.get("role") != "paintings" or meta.get("image") not in (None, self.image_layer.name):
                continue
            if "class_index" in meta:
                found_multi[int(meta["class_index"])] = layer
            elif found_excl is None:
                found_excl = layer
        names = None
        if found_excl is not None and self.mode == EXCLUSIVE:
            meta = found_excl.metadata[META_KEY]
            names = meta.get("class_names")
            if names:
                self._set_class_names(names)
            else:
                top = int(np.max(found_excl.data)) if found_excl.data.size else 0
                while len(self.classes) < top:
                    k = len(self.classes)
                    self.classes.append(ClassSpec(f"class {k + 1}", DEFAULT_COLORS[k % len(DEFAULT_COLORS)]))
            self.paint_layers = [found_excl]
            found_excl.colormap = self._colormap(self._exclusive_colors())
            self._connect_paint_layer(found_excl)
        elif found_multi and self.mode == MULTILABEL and sorted(found_multi) == list(range(len(found_multi))):
            while len(self.classes) < len(found_multi):
                k = len(self.classes)
                self.classes.append(ClassSpec(f"class {k + 1}", DEFAULT_COLORS[k % len(DEFAULT_COLORS)]))
            self.paint_layers = [found_multi[k] for k in range(len(found_multi))]
            for layer in self.paint_layers:
                self._connect_paint_layer(layer)
            for k in range(len(self.paint_layers), len(self.classes)):
                self.paint_layers.append(self._new_multilabel_layer(k))
            self._apply_colors()
        else:
            self._create_paint_layers()

    def _set_class_names(self, names: Sequence[str]) -> None:
        old = self.classes
        self.classes = [
            ClassSpec(str(n), old[i].color if i < len(old) else DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
            for i, n in enumerate(names)
        ]

    def _apply_colors(self) -> None:
        if self.mode == EXCLUSIVE:
            cmap = self._exclusive_colors()
            for layer in self.paint_layers + self.prediction_layers:
                layer.colormap = self._colormap(cmap)
        else:
            for k, layer in enumerate(self.paint_layers):
                if k < len(self.classes):
                    layer.colormap = self._colormap({PRESENT: self.classes[k].color, ABSENT: ABSENT_COLOR})
            for k, layer in enumerate(self.prediction_layers):
                if k < len(self.classes):
                    layer.colormap = self._colormap({1: self.classes[k].color})

    def _connect_paint_layer(self, layer: Any) -> None:
        for name in ("paint", "set_data", "data"):
            getattr(layer.events, name).connect(self._on_paint_event)

    def _disconnect_paint_layer(self, layer: Any) -> None:
        for name in ("paint", "set_data", "data"):
            try:
                getattr(layer.events, name).disconnect(self._on_paint_event)
            except Exception:  # noqa: BLE001
                pass

    def _detach_layers(self) -> None:
        for layer in self.paint_layers:
            self._disconnect_paint_layer(layer)
        self.paint_layers = []
        self.prediction_layers = []

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        if layer is self.image_layer:
            if self.is_training:
                self.stop_training()
            self.image_layer = None
            self._image_cache = None
            self._detach_layers()
            self.image_changed.emit()
        elif layer in self.paint_layers:
            self._autosave_sync()  # an open project keeps the strokes of a deleted layer
            self._disconnect_paint_layer(layer)
            self.paint_layers = [lyr for lyr in self.paint_layers if lyr is not layer]
            if self.is_training:
                self._report_error(
                    f"the paint layer '{layer.name}' was removed: training goes on with the strokes it "
                    "already has; stop and press Train to recreate it")
        elif layer in self.prediction_layers:
            self.prediction_layers = []
            self._prediction_complete = False

    # ------------------------------------------------------------------ paintings → counts
    def _on_paint_event(self, event: Any = None) -> None:
        if not self._closed:
            self._paint_version += 1
            self._paint_timer.start()  # restart: debounce

    def paint_arrays(self) -> list[Any]:
        """The live paint arrays (not copies)."""
        if self.mode == MULTILABEL and len(self.paint_layers) != len(self.classes):
            raise UserInputError("a paint layer was deleted; switch the mode or the image to recreate it")
        if not self.paint_layers:
            raise UserInputError("no paint layer: choose an image first")
        return [layer.data for layer in self.paint_layers]

    def refresh_counts(self) -> None:
        """Copy the paintings and recompute counts/weights in a worker (single slot)."""
        if self._closed or not self.paint_layers:
            return
        if self._count_worker is not None:
            self._count_dirty = True
            return
        try:
            arrays = self.paint_arrays()
        except UserInputError:
            return
        self._count_dirty = False
        self._count_worker = start_worker(
            _copy_and_weigh, arrays, self.mode, self.weight_method, len(self.classes), self._pins(),
            self._last_paint,
            returned=self._on_counts, errored=self._on_worker_error, finished=self._on_count_finished,
        )

    def _on_counts(self, result: tuple[np.ndarray, ClassWeights, bool]) -> None:
        if self._closed or self._count_dirty:
            return  # (dirty: the paintings changed while counting; a fresh count follows)
        paint, weights, unchanged = result
        self._last_paint = paint
        self.weights = weights
        self.weights_changed.emit(weights)
        if self._source is not None and self.is_training and (
            not unchanged or weights.weights != self._last_put_weights
        ):
            from segstudio.core.data import TrainingImage

            self._source.put([TrainingImage(self.image_array(), paint, self.channel_axis)], weights.weights)
            self._last_put_weights = weights.weights

    def _on_count_finished(self) -> None:
        self._count_worker = None
        if self._count_dirty and not self._closed:
            self.refresh_counts()

    # ------------------------------------------------------------------ training
    @property
    def is_training(self) -> bool:
        return self.state in ("running", "paused", "stopping")

    def set_settings(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)

    def loss_name(self) -> str:
        loss = self.settings.loss
        return loss if loss in LOSS_NAMES[self.mode] else LOSS_NAMES[self.mode][0]

    def build_config(self) -> TrainConfig:
        """The ``TrainConfig`` for the current image, classes and settings."""
        from segstudio.core.trainer import infer_config

        s = self.settings
        image = self.image_array()
        arrays = self.paint_arrays()
        paint = arrays[0] if self.mode == EXCLUSIVE else arrays
        kw: dict[str, Any] = {
            "class_names": tuple(self.class_names()),
            "class_colors": tuple(c.color for c in self.classes),
            "features": MODEL_PRESETS[s.preset],
            "loss": self.loss_name(),
            "device": s.device,
            "weight_method": self.weight_method,
            "pinned_weights": tuple(sorted(self._pins().items())),
            "spacing": self.spacing,
            "iterations": s.iterations if s.length == "iterations" else None,
            "minutes": s.minutes if s.length == "minutes" else None,
            "preview_every_s": s.preview_every_s,
            "infer_outlines": s.infer_outlines,
        }
        kw.update(self.config_overrides)
        return infer_config(
            image.shape, paint, self.mode, channel_axis=self.channel_axis, n_classes=len(self.classes), **kw
        )

    def _can_resume(self, config: TrainConfig) -> bool:
        old = self.config
        if old is None or self.run_dir is None or not (self.run_dir / "model.pt").exists():
            return False
        keys = ("mode", "n_classes", "spatial_dims", "in_channels", "spacing", *NETWORK_FIELDS)
        return all(getattr(old, k) == getattr(config, k) for k in keys) and old.patch == config.patch

    def start_training(self) -> None:
        """Start (or continue, when the model fits) training in a worker."""
        if self._closed or self.is_training:
            return
        from segstudio.core.data import SnapshotSource, TrainingImage
        from segstudio.core.predictor import Predictor
        from segstudio.core.run import model_from_config

        try:
            image = self.image_array()
            arrays = self.paint_arrays()
            if self.weights is not None and self._last_paint is not None and not any(self.weights.counts):
                raise UserInputError("nothing is painted yet: paint a few strokes of each class")
            config = self.build_config()
            resume = self.run_dir if self._can_resume(config) else None
            if resume is None:
                if self.project_dir is not None:
                    from segstudio.core.project import new_run_dir

                    self.run_dir = new_run_dir(self.project_dir)
                else:
                    self.run_dir = Path(tempfile.mkdtemp(prefix="segstudio-run-"))
                self.loss_iterations, self.loss_values = [], []
                self.iteration = 0
            self._preview_predictor = Predictor(model_from_config(config), config, device=config.device)
        except UserInputError as e:
            self._report_error(str(e))
            return
        except Exception as e:  # noqa: BLE001
            self._report_error(f"{type(e).__name__}: {e}")
            return
        self.config = config
        self._source = SnapshotSource()
        self._train_stop = threading.Event()
        self._train_done = threading.Event()
        self._rate.clear()
        self.last_error = None
        mode, method, k, pins, ch = self.mode, self.weight_method, len(self.classes), self._pins(), self.channel_axis

        def first_snapshot() -> tuple[list[Any], tuple[float, ...]]:
            paint, weights, _ = _copy_and_weigh(arrays, mode, method, k, pins, None)
            return [TrainingImage(image, paint, ch)], weights.weights

        self._ensure_prediction_layers()  # before training: adding a layer stalls the GUI
        _share_cpu_threads(config.device)
        self.autosave(force=True)  # paintings reach the disk before training starts
        self._set_state("running")
        self.status.emit("starting training…")
        self._train_worker = start_worker(
            _training_events, config, self._source, self.run_dir, resume, first_snapshot,
            self._train_stop, self._train_done,
            yielded=self._on_train_event, errored=self._on_train_error, finished=self._on_train_finished,
        )

    def pause_training(self) -> None:
        if self.state == "running" and self._train_worker is not None:
            self._train_worker.pause()
            self._set_state("paused")
            self.status.emit(f"paused at iteration {self.iteration}")

    def resume_training(self) -> None:
        if self.state == "paused" and self._train_worker is not None:
            self._train_worker.resume()
            self._set_state("running")
            self.status.emit("training resumed")

    def toggle_pause(self) -> None:
        if self.state == "paused":
            self.resume_training()
        else:
            self.pause_training()

    def stop_training(self) -> None:
        """Ask the trainer to stop; it writes a checkpoint and reports ``Finished``."""
        worker = self._train_worker
        if worker is None or not self.is_training:
            return
        self._train_stop.set()
        if self.state == "paused":
            worker.resume()
        self._set_state("stopping")
        self.status.emit("stopping…")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.training_state_changed.emit(state)

    def _on_train_event(self, event: Any) -> None:
        from segstudio.core import trainer as T

        if self._closed:
            return
        if isinstance(event, T.Progress):
            self.iteration = event.iteration
            self.loss_iterations.append(event.iteration)
            self.loss_values.append(event.loss)
            self._rate.append((event.seconds, event.iteration))
            self.progress.emit(event)
        elif isinstance(event, T.Preview):
            self._preview_state = event.state_dict
            self.iteration = max(self.iteration, event.iteration)
            if self.settings.live_preview:
                self.request_preview()
        elif isinstance(event, T.Started):
            self.status.emit(
                f"training on {event.device} · {event.parameters:,} parameters"
                + (f" · from iteration {event.start_iteration}" if event.start_iteration else "")
            )
        elif isinstance(event, T.WeightsUpdated):
            self.weights = event.weights
        elif isinstance(event, T.Checkpoint):
            self.last_checkpoint = Path(event.path)
        elif isinstance(event, T.Notice):
            self.status.emit(event.message)
            self._notify_info(event.message)
        elif isinstance(event, T.Finished):
            self.iteration = event.iteration
            why = {"iterations": "done", "time": "time is up", "stopped": "stopped"}.get(event.reason, event.reason)
            self.status.emit(f"training {why} at iteration {event.iteration} ({event.seconds:.0f} s)")
        elif isinstance(event, T.Failed):
            self._report_error(f"training failed: {event.message}")

    def _on_train_error(self, exc: BaseException) -> None:
        self._report_error(f"training failed: {type(exc).__name__}: {exc}")

    def _on_train_finished(self) -> None:
        self._train_worker = None
        if not self._closed:
            self._set_state("idle")

    def iterations_per_second(self) -> float | None:
        if len(self._rate) < 2:
            return None
        (s0, i0), (s1, i1) = self._rate[0], self._rate[-1]
        return (i1 - i0) / (s1 - s0) if s1 > s0 else None

    # ------------------------------------------------------------------ previews
    def request_preview(self) -> None:
        """Predict the visible region with the newest weights (single slot, newest wins)."""
        if self._closed or self._preview_predictor is None or self.image_layer is None:
            return
        try:
            request = (self._preview_state, self.preview_region())
        except UserInputError:
            return
        if self._preview_worker is not None:
            self._preview_pending = request  # replaces an older pending request
            return
        self._start_preview(request)

    def _start_preview(self, request: tuple[Any, tuple[slice, ...] | None]) -> None:
        state, region = request
        image = self.image_array()
        self._preview_worker = start_worker(
            _predict_region, self._preview_predictor, image, self.channel_axis, state, region,
            self._stats_cache.get(id(image)),
            returned=self._on_preview_result, errored=self._on_preview_error,
            finished=self._on_preview_finished,
        )

    def _on_preview_result(self, result: tuple[Any, Any]) -> None:
        if self._closed:
            return
        prediction, stats = result
        self._stats_cache = {id(self.image_array()): stats}
        self._apply_prediction(prediction)

    def _on_preview_error(self, exc: BaseException) -> None:
        self._report_error(f"preview failed: {type(exc).__name__}: {exc}", notify=False)

    def _on_preview_finished(self) -> None:
        self._preview_worker = None
        pending, self._preview_pending = self._preview_pending, None
        if pending is not None and not self._closed:
            # Newer weights may have arrived while waiting: use the newest.
            self._start_preview((self._preview_state, pending[1]))

    @property
    def preview_busy(self) -> bool:
        return self._preview_worker is not None

    def preview_region(self) -> tuple[slice, ...] | None:
        """Spatial slices to preview: the current slice(s) ± ``PREVIEW_SLAB`` in 3D, the view
        for large 2D images, ``None`` (everything) for small 2D images or region "image"."""
        shape = self.spatial_shape
        if self.settings.preview_region == "image":
            return None
        layer = self.image_layer
        dims = self.viewer.dims
        offset = dims.ndim - layer.ndim
        point = layer.world_to_data(dims.point[offset:] if len(dims.point) > layer.ndim else dims.point)
        spatial_axes = [a for a in range(layer.ndim) if a != self.channel_axis][-len(shape):]
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
        zoom = max(float(self.viewer.camera.zoom), 1e-6)
        canvas = getattr(self.viewer, "_canvas_size", (1024, 1024))
        centre = layer.world_to_data(self.viewer.camera.center[-layer.ndim:] if
                                     len(self.viewer.camera.center) >= layer.ndim else self.viewer.camera.center)
        for i, axis in enumerate(spatial_axes):
            half = int(canvas[i] / zoom / 2 / float(layer.scale[axis])) + 1
            c = int(np.clip(round(float(centre[axis])), 0, shape[i] - 1))
            region[i] = slice(max(c - half, 0), min(c + half, shape[i]))
        return tuple(region)

    def _on_view_changed(self, event: Any = None) -> None:
        if not self._closed and self._preview_state is not None and self.settings.live_preview:
            self._view_timer.start()

    def _on_view_settled(self) -> None:
        if self.image_layer is not None and len(self.spatial_shape) == 3:
            self.request_preview()

    # ------------------------------------------------------------------ prediction layers
    def _ensure_prediction_layers(self) -> list[Any]:
        shape = self.spatial_shape
        alive = [lyr for lyr in self.prediction_layers if lyr in self.viewer.layers]
        want = 1 if self.mode == EXCLUSIVE else len(self.classes)
        if len(alive) == want and all(tuple(lyr.data.shape) == shape for lyr in alive):
            return alive
        self._remove_prediction_layers()
        geometry = self._layer_geometry()
        layers = []
        if self.mode == EXCLUSIVE:
            layer = self.viewer.add_labels(
                np.zeros(shape, dtype=self._paint_dtype()), name="prediction",
                opacity=PREDICTION_OPACITY, metadata=self._meta("prediction"), **geometry,
            )
            layers.append(layer)
        else:
            for k, spec in enumerate(self.classes):
                layers.append(self.viewer.add_labels(
                    np.zeros(shape, dtype=np.uint8), name=f"prediction: {spec.name}",
                    opacity=PREDICTION_OPACITY, metadata=self._meta("prediction", class_index=k), **geometry,
                ))
        self.prediction_layers = layers
        self._apply_colors()
        # Keep the paint layers on top so strokes stay visible over the prediction.
        for lyr in self.paint_layers:
            if lyr in self.viewer.layers:
                idx = self.viewer.layers.index(lyr)
                self.viewer.layers.move(idx, len(self.viewer.layers))
        if self.paint_layers and self.paint_layers[0] in self.viewer.layers:
            self.viewer.layers.selection.active = self.paint_layers[0]
        return layers

    def _apply_prediction(self, result: Any) -> None:
        """Write a ``PredictResult`` into the prediction layer(s), in place."""
        if self.image_layer is None:
            return
        layers = self._ensure_prediction_layers()
        region = tuple(result.region)
        if self.mode == EXCLUSIVE:
            layer = layers[0]
            layer.data[region] = result.labels
            layer.refresh()
        else:
            for k, layer in enumerate(layers):
                layer.data[region] = result.labels[k]
                layer.refresh()
        full = all(sl.start in (0, None) and sl.stop == n for sl, n in zip(region, self.spatial_shape))
        self._prediction_complete = full or self._prediction_complete
        self.prediction_updated.emit()

    def _show_probabilities(self, probabilities: np.ndarray) -> None:
        """One Image layer per class (0..1, the class colour, additive), updated in place."""
        from napari.utils.colormaps import Colormap
        from napari.utils.colormaps.standardize_color import transform_color

        geometry = self._layer_geometry()
        for k, spec in enumerate(self.classes[: len(probabilities)]):
            name = f"probability: {spec.name}"
            data = np.asarray(probabilities[k], dtype=np.float32)
            layer = next((lyr for lyr in self.viewer.layers if lyr.name == name
                          and (lyr.metadata or {}).get(META_KEY, {}).get("role") == "probability"), None)
            if layer is not None and tuple(layer.data.shape) == data.shape:
                layer.data = data
                continue
            if layer is not None:
                self.viewer.layers.remove(layer)
            rgba = transform_color(spec.color)[0]
            cmap = Colormap([[0.0, 0.0, 0.0, 1.0], rgba], name=f"segstudio {spec.color}")
            self.viewer.add_image(
                data, name=name, colormap=cmap, blending="additive", contrast_limits=(0.0, 1.0),
                visible=k == 0, metadata=self._meta("probability", class_index=k), **geometry,
            )

    def _remove_prediction_layers(self) -> None:
        for layer in self.prediction_layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.prediction_layers = []
        self._prediction_complete = False

    def prediction_array(self) -> np.ndarray | None:
        if not self.prediction_layers:
            return None
        if self.mode == EXCLUSIVE:
            return np.asarray(self.prediction_layers[0].data)
        return np.stack([np.asarray(lyr.data) for lyr in self.prediction_layers])

    # ------------------------------------------------------------------ results
    def _predictor_for_results(self) -> Any:
        """A predictor (separate from the preview one) holding the newest weights."""
        from segstudio.core.predictor import Predictor
        from segstudio.core.run import model_from_config

        if self.config is None or self._preview_state is None:
            raise UserInputError("train a model first (press Train)")
        predictor = Predictor(model_from_config(self.config), self.config, device=self.config.device)
        predictor.load_state(self._preview_state)
        return predictor

    def _predictor_or_report(self) -> Any:
        """:meth:`_predictor_for_results`, or ``None`` with the reason in the status line."""
        try:
            return self._predictor_for_results()
        except UserInputError as e:
            self._report_error(str(e))
            return None

    @property
    def predicting(self) -> bool:
        return self._predict_worker is not None or self._folder_worker is not None

    def save_prediction(self, dest: str | Path) -> None:
        """Write the whole-image prediction to ``dest`` (format from the extension; the image's
        spacing, and for NIfTI its affine, are kept). Predicts the whole image first if the
        layer only holds live previews of parts of it."""
        if self._closed:
            return
        if self.config is None or self._preview_state is None:
            self._report_error("nothing to save yet: train a model first")
            return
        if not self._prediction_complete or self.prediction_array() is None:
            self.predict_image(then=lambda: self.save_prediction(dest))
            return
        labels = np.array(self.prediction_array(), copy=True)
        nd = len(self.spatial_shape)
        axes = ("C" if self.mode == MULTILABEL else "") + "ZYX"[-nd:]
        meta = layer_meta(self.image_layer)
        self.status.emit(f"saving the prediction to {dest}…")
        self._spawn(_save_prediction, labels, Path(dest), self.spacing, meta.get("path"), axes, meta.get("affine"),
                    returned=lambda p: self.status.emit(f"prediction saved to {p}"))

    def predict_image(self, then: Callable[[], None] | None = None) -> None:
        """Predict the whole image with the newest weights (progress, cancellable)."""
        if self._closed or self._predict_worker is not None:
            return
        try:
            predictor = self._predictor_for_results()
            image = self.image_array()
        except UserInputError as e:
            self._report_error(str(e))
            return
        self._after_predict = then
        self.status.emit("predicting the whole image…")
        self.predict_progress.emit(0, 1)
        self._predict_worker = start_worker(
            _predict_whole, predictor, image, self.channel_axis, self._stats_cache.get(id(image)),
            self.settings.probabilities,
            yielded=self._on_predict_event, errored=self._on_worker_error,
            finished=self._on_predict_finished,
        )
        if hasattr(self._predict_worker, "aborted"):
            self._predict_worker.aborted.connect(self._on_predict_aborted)

    def predict_other(self, layer: Any) -> None:
        """Predict another open Image layer with the newest weights, into its own Labels layer
        ``"<name> prediction"`` (one per class, multi-label) with that layer's scale."""
        if layer is None or layer is self.image_layer:
            self.predict_image()
            return
        if self._closed or self._predict_worker is not None:
            return
        predictor = self._predictor_or_report()
        if predictor is None:
            return
        channel_axis = channel_axis_of(layer)
        self._predict_target = layer
        self.status.emit(f"predicting {layer.name}…")
        self.predict_progress.emit(0, 1)
        self._predict_worker = start_worker(
            _predict_whole, predictor, np.asarray(layer.data), channel_axis, None,
            yielded=self._on_predict_event, errored=self._on_worker_error,
            finished=self._on_predict_finished,
        )

    def _apply_other_prediction(self, layer: Any, result: Any) -> None:
        meta_axis = layer_meta(layer).get("channel_axis")  # RGB: not among the layer's dims
        scale = tuple(s for i, s in enumerate(layer.scale) if i != meta_axis)
        names = ([f"{layer.name} prediction"] if self.mode == EXCLUSIVE
                 else [f"{layer.name} prediction: {c.name}" for c in self.classes])
        arrays = [result.labels] if self.mode == EXCLUSIVE else list(result.labels)
        for k, (name, data) in enumerate(zip(names, arrays)):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            out = self.viewer.add_labels(data, name=name, scale=scale, opacity=PREDICTION_OPACITY,
                                         metadata=self._meta("prediction", of=layer.name))
            colors = self._exclusive_colors() if self.mode == EXCLUSIVE else {1: self.classes[k].color}
            out.colormap = self._colormap(colors)
        self.status.emit(f"{layer.name} predicted")

    def cancel_predict(self) -> None:
        for w in (self._predict_worker, self._folder_worker):
            if w is not None:
                self._after_predict = None
                w.quit()

    def _on_predict_event(self, event: Any) -> None:
        from segstudio.core.predictor import PredictResult

        if self._closed:
            return
        if isinstance(event, PredictResult) and self._predict_target is not None:
            self._apply_other_prediction(self._predict_target, event)
        elif isinstance(event, PredictResult):
            self._apply_prediction(event)
            if event.probabilities is not None:
                self._show_probabilities(event.probabilities)
            self.status.emit("whole-image prediction done")
            then, self._after_predict = self._after_predict, None
            if then is not None:
                QTimer.singleShot(0, then)
        else:
            self.predict_progress.emit(event.done, event.total)

    def _on_predict_aborted(self) -> None:
        if not self._closed:  # cancelled by closing the session: nobody to tell
            self.status.emit("prediction cancelled")

    def _on_predict_finished(self) -> None:
        self._predict_worker = None
        self._predict_target = None
        if not self._closed:
            self.predict_progress.emit(0, 0)

    def predict_folder(self, in_dir: str | Path, out_dir: str | Path) -> None:
        """Predict every image in ``in_dir`` and write ``<name>_labels.tif`` to ``out_dir``."""
        if self._closed or self._folder_worker is not None:
            return
        in_dir, out_dir = Path(in_dir), Path(out_dir)
        files = sorted(
            p for p in in_dir.iterdir()
            if p.name.lower().endswith(FOLDER_EXTENSIONS) and not p.name.startswith(".")
        ) if in_dir.is_dir() else []
        if not files:
            self._report_error(f"no images ({', '.join(FOLDER_EXTENSIONS)}) in '{in_dir}'")
            return
        predictor = self._predictor_or_report()
        if predictor is None:
            return
        self.status.emit(f"predicting {len(files)} images…")
        self.predict_progress.emit(0, len(files))

        def on_step(step: tuple[int, int, str]) -> None:
            if self._closed:
                return
            done, total, name = step
            self.predict_progress.emit(done, total)
            self.status.emit(f"predicted {name} ({done}/{total}) → {out_dir}")

        def on_finished() -> None:
            self._folder_worker = None
            if not self._closed:
                self.predict_progress.emit(0, 0)

        self._folder_worker = start_worker(
            _predict_folder, predictor, files, out_dir,
            yielded=on_step, errored=self._on_worker_error, finished=on_finished,
        )

    def compute_metrics(self, truth_layer: Any) -> None:
        """Dice and HD95 per class against ``truth_layer`` (predicts the whole image first)."""
        if self._closed or truth_layer is None:
            return
        if not self._prediction_complete:
            self.predict_image(then=lambda: self.compute_metrics(truth_layer))
            return
        pred = self.prediction_array()
        if pred is None:
            return
        truth = np.asarray(truth_layer.data)
        self.status.emit("computing metrics…")
        self._spawn(
            _metrics, self.mode, pred.copy(), truth, self.class_names(), self.spacing,
            returned=self._on_metrics,
        )

    def _on_metrics(self, rows: list[MetricsRow]) -> None:
        if self._closed:
            return
        self.last_metrics = rows
        text = " · ".join(f"{r.name} {r.dice:.3f}" for r in rows)
        self.status.emit(f"Dice: {text}")
        self.metrics_ready.emit(rows)

    def save_run(self, dest: str | Path) -> None:
        """Copy the run directory (config, weights, history, classes) to ``dest``."""
        if self.config is None or self._preview_state is None:
            self._report_error("nothing to save yet: train a model first")
            return
        dest = Path(dest)
        config, state, history = self.config, self._preview_state, list(
            {"iteration": i, "loss": v, "seconds": 0.0, "lr": 0.0}
            for i, v in zip(self.loss_iterations, self.loss_values)
        )
        iteration = self.iteration

        def fallback(path: Path) -> None:
            from segstudio.core.run import model_from_config
            from segstudio.core.run import save_run as core_save_run

            model = model_from_config(config)
            model.load_state_dict(state)
            core_save_run(path, config, model, history=history, iteration=iteration)

        src = self.run_dir
        self.status.emit(f"saving run to {dest}…")
        self._spawn(_copy_run, src, dest, fallback,
                    returned=lambda p: self.status.emit(f"run saved to {p}"))

    def export_model(self, dest: str | Path, fmt: str) -> None:
        """Export the current model to ``dest`` as ``fmt`` (:mod:`segstudio.core.export`), off the GUI thread."""
        if self.config is None or self._preview_state is None:
            self._report_error("nothing to export yet: train a model first")
            return
        image = None if self.image_layer is None else self.image_layer.data
        self.status.emit(f"exporting the model to {dest}…")
        self._spawn(_export_model, self.config, self._preview_state, Path(dest), fmt, image, self.channel_axis,
                    returned=lambda paths: self.status.emit(
                        "model exported to " + ", ".join(str(p) for p in paths.values())))

    def _spawn(self, func: Callable[..., Any], *args: Any, returned: Callable[[Any], None]) -> None:
        holder: list[Any] = []

        def done() -> None:
            for w in holder:
                if w in self._misc_workers:
                    self._misc_workers.remove(w)

        def on_returned(value: Any) -> None:
            if not self._closed:  # the session may have closed while the worker ran
                returned(value)

        worker = start_worker(func, *args, returned=on_returned, errored=self._on_worker_error, finished=done)
        holder.append(worker)
        self._misc_workers.append(worker)

    # ------------------------------------------------------------------ projects
    def set_autosave_interval(self, seconds: float) -> None:
        """Autosave the paintings every ``seconds`` (0 turns it off): into the open project's
        ``autosave/`` folder, or, before the session was saved as a project, into an untitled
        project folder (:func:`segstudio.core.project.untitled_folder`)."""
        self._autosave_timer.stop()
        self._autosave_timer.setInterval(max(int(seconds * 1000), 1))
        self._autosave_enabled = seconds > 0
        if self._autosave_enabled and not self._closed:
            self._autosave_timer.start()

    def _image_name(self) -> str:
        from segstudio.core.project import _safe

        meta = (self.image_layer.metadata or {}).get(META_KEY, {})
        return _safe(meta.get("project_image") or self.image_layer.name)

    def _project_content(self, folder: Path, same_folder: bool = True) -> tuple[Any, tuple[str, Any, Any] | None]:
        """The project as the session stands (GUI thread; no pixels are copied here)."""
        from dataclasses import asdict

        from segstudio.core import project as P

        if self.image_layer is None:
            raise UserInputError("choose an image first")
        name = self._image_name()
        meta = (self.image_layer.metadata or {}).get(META_KEY, {})
        source = meta.get("path") or getattr(getattr(self.image_layer, "source", None), "path", None)
        base = P.Project(
            mode=self.mode,
            classes=tuple(P.ProjectClass(c.name, c.color, c.pinned) for c in self.classes),
            weight_method=self.weight_method,
            training={**asdict(self.settings), "overrides": {
                k: v for k, v in self.config_overrides.items() if isinstance(v, (int, float, str, bool, list, tuple))
            }},
            last_run=self.project.last_run if same_folder and self.project is not None else None,
        )
        old = self.project.images[0] if same_folder and self.project is not None and self.project.images else None
        if old is not None and old.name == name:
            image = replace(old, channel_axis=self.channel_axis)
            return replace(base, images=(image,)), None
        if source and Path(source).exists():
            image = P.ProjectImage(name=name, path=P._stored_path(folder, Path(source)),
                                   absolute=str(Path(source).resolve()), channel_axis=self.channel_axis)
            return replace(base, images=(image,)), None
        # No file behind the layer (a sample, a layer made in napari): copy the pixels in.
        ghost = P.ProjectImage(name=name, path="", channel_axis=self.channel_axis)
        return replace(base, images=(ghost,)), (name, self.image_array(), None)

    def save_project(self, folder: str | Path | None = None) -> None:
        """Save the session as a project (``folder``: Save As; ``None``: the open project).

        Paintings are copied and written off the GUI thread; a failed write leaves the
        previous files intact and is reported.
        """
        if self._closed:
            return
        if folder is None and self.project_dir is None:
            self._report_error("choose a project folder first (Save project as…)")
            return
        if self._save_worker is not None:
            self._report_error("a save is already running")
            return
        target = Path(folder) if folder is not None else self.project_dir
        try:
            # Save As elsewhere: the image path is computed against the new folder.
            content, image = self._project_content(target, same_folder=target == self.project_dir)
            arrays = {content.images[0].name: self.paint_arrays()}
        except UserInputError as e:
            self._report_error(str(e))
            return
        preds = {}
        pred = self.prediction_array()
        if pred is not None and self._prediction_complete:
            preds[content.images[0].name] = pred.copy()
        run_dir = self.run_dir if not self.is_training else None
        self.status.emit(f"saving project to {target}…")
        version = self._paint_version

        def saved(project: Any) -> None:
            if self.image_layer is not None and self.project_dir is None and self._untitled() != target:
                shutil.rmtree(self._untitled(), ignore_errors=True)  # saved for real now
            self.project_dir, self.project = target, project
            self._autosaved_version = version
            self.status.emit(f"project saved to {target}")
            self.project_changed.emit(str(target))
            if self._autosave_enabled and not self._closed:
                self._autosave_timer.start()

        def finished() -> None:
            self._save_worker = None

        self._save_worker = start_worker(
            _write_project, target, content, arrays, self.mode, preds, image, run_dir,
            returned=saved, errored=self._on_worker_error, finished=finished,
        )

    def _untitled(self) -> Path:
        from segstudio.core.project import untitled_folder

        meta = (self.image_layer.metadata or {}).get(META_KEY, {})
        source = meta.get("path") or getattr(getattr(self.image_layer, "source", None), "path", None)
        return untitled_folder(self._image_name(), source)

    def _autosave_job(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``(function, args)`` that autosaves the paintings now (run in a worker or inline)."""
        if self.image_layer is None:
            raise UserInputError("choose an image first")
        arrays = {self._image_name(): self.paint_arrays()}
        if self.project_dir is not None:
            return _write_autosave, (self.project_dir, arrays, self.mode)
        folder = self._untitled()  # never saved as a project: autosave as an untitled project
        content, image = self._project_content(folder, same_folder=False)
        return _write_project, (folder, content, arrays, self.mode, {}, image, None)

    def _keep_untitled_autosave(self) -> None:
        """An untitled autosave of this image from before is renamed (kept) and announced, so
        this session does not overwrite it."""
        from segstudio.core.project import set_aside

        if self.project_dir is not None or (self.image_layer.metadata or {}).get(META_KEY, {}).get("project_image"):
            return
        kept = set_aside(self._untitled())
        if kept is not None:
            msg = (f"unsaved paintings of '{self.image_layer.name}' were autosaved in '{kept}': "
                   "Open project… on that folder to recover them")
            self.status.emit(msg)
            self._notify_info(msg)

    def autosave(self, force: bool = False) -> None:
        """Write the paintings (in a worker) when they changed since the last save or autosave:
        to the open project's ``autosave/`` folder, else to an untitled project folder."""
        if self._closed or self._autosave_worker is not None:
            return
        if not force and self._paint_version == self._autosaved_version:
            return
        try:
            func, args = self._autosave_job()
        except UserInputError:
            return
        version = self._paint_version

        def done(_: Any) -> None:
            self._autosaved_version = version

        def finished() -> None:
            self._autosave_worker = None

        self._autosave_worker = start_worker(
            func, *args, returned=done, errored=self._on_worker_error, finished=finished,
        )

    def _autosave_sync(self) -> None:
        """Autosave on the calling thread (closing the app: no worker may outlive it)."""
        if self._closed or self._paint_version == self._autosaved_version:
            return
        try:
            func, args = self._autosave_job()
        except UserInputError:
            return  # no complete set of paint layers right now (mode switch, image removed)
        try:
            func(*args)
            self._autosaved_version = self._paint_version
        except Exception as e:  # noqa: BLE001 - closing must go on; the message is kept
            self.last_error = f"autosave failed: {e}"

    def open_project(self, folder: str | Path) -> bool:
        """Open a project: image, classes, mode, settings, paintings (recovered from the
        autosave if the user agrees), the last run's weights and the saved prediction.

        Returns ``True`` when the project opened (a broken run only costs the model, reported).
        """
        from segstudio.core import project as P

        if self._closed:
            return False
        if self.is_training:
            self._report_error("stop training before opening a project")
            return False
        try:
            folder = P.find_project(folder)
            project = P.load_project(folder)
            if not project.images:
                raise UserInputError(f"project '{folder}' has no image")
            im = project.images[0]
            data, meta = P.read_image_of(folder, project, im.name, lazy=True)
            paint = P.read_paintings(folder, project, im.name)
            rec = P.recovery(folder)
            recovered = False
            if rec is not None:
                if self.ask_recover(rec.message):
                    paint = P.recover_paintings(folder, project).get(im.name, paint)
                    recovered = True
                else:
                    P.discard_autosave(folder)
        except UserInputError as e:
            self._report_error(str(e))
            return False
        # Session state first, so the layers are made for the project's mode and classes.
        self._remove_prediction_layers()
        self.mode = project.mode
        self.classes = [ClassSpec(c.name, c.color, c.pinned) for c in project.classes] or self.classes
        self.weight_method = project.weight_method
        known = {f for f in TrainSettings.__dataclass_fields__}
        self.settings = replace(TrainSettings(), **{k: v for k, v in project.training.items() if k in known})
        self.config_overrides.update({k: tuple(v) if isinstance(v, list) else v
                                      for k, v in dict(project.training.get("overrides", {})).items()})
        self.config, self.run_dir, self._preview_state = None, None, None
        self.loss_iterations, self.loss_values, self.iteration = [], [], 0
        self.project_dir, self.project = folder, project
        self.mode_changed.emit(self.mode)
        meta_seg = {META_KEY: {"path": str(P.image_path(folder, im)), "channel_axis": im.channel_axis,
                               "project_image": im.name}}
        kwargs: dict[str, Any] = {"name": im.name, "metadata": meta_seg}
        if meta.spacing is not None:
            n_spatial = data.ndim - (im.channel_axis is not None)
            if len(meta.spacing) == n_spatial:
                sp = list(meta.spacing)
                if im.channel_axis is not None:
                    sp.insert(im.channel_axis, 1.0)
                kwargs["scale"] = tuple(sp)
        layer = self.viewer.add_image(data, **kwargs)
        self.set_image_layer(layer)
        if paint is not None:
            try:
                if self.mode == EXCLUSIVE:
                    self.paint_layers[0].data = paint.astype(self.paint_layers[0].data.dtype, copy=False)
                else:
                    for k, lyr in enumerate(self.paint_layers):
                        lyr.data = paint[k].astype(np.uint8, copy=False)
            except (ValueError, IndexError) as e:
                self._report_error(f"paintings of '{im.name}' do not fit the image ({e})")
        self._paint_version += 1
        self._autosaved_version = self._paint_version if not recovered else 0
        self.classes_changed.emit()
        self.status.emit(f"opened project {folder}" + (" (autosaved paintings recovered)" if recovered else ""))
        self._load_last_run(folder, project)  # a broken run is reported after (and over) that line
        self.refresh_counts()
        if self._autosave_enabled:
            self._autosave_timer.start()
        self.project_changed.emit(str(folder))
        return True

    def _load_last_run(self, folder: Path, project: Any) -> None:
        """Restore the last run's weights (for previews, predictions and resuming) and the
        saved prediction; a missing or tampered run is reported and skipped."""
        from segstudio.core import project as P
        from segstudio.core.predictor import Predictor
        from segstudio.core.run import load_run

        run = P.latest_run(folder, project)
        if run is None:
            return
        try:
            loaded = load_run(run)
            P.check_run_fits(project, loaded.config, run)
        except UserInputError as e:
            self._report_error(f"{e}; the paintings are open, train again to get a model")
            return
        self.config, self.run_dir = loaded.config, run
        self._preview_state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
        self._preview_predictor = Predictor(loaded.model, loaded.config, device=loaded.config.device)
        self.iteration = loaded.iteration
        self.loss_iterations = [int(r["iteration"]) for r in loaded.history]
        self.loss_values = [float(r["loss"]) for r in loaded.history]
        try:
            pred = P.read_predictions(folder, project, self._image_name())
        except UserInputError:
            pred = None
        if pred is not None:
            layers = self._ensure_prediction_layers()
            try:
                if self.mode == EXCLUSIVE:
                    layers[0].data[...] = pred
                else:
                    for k, lyr in enumerate(layers):
                        lyr.data[...] = pred[k]
                self._prediction_complete = True
                for lyr in layers:
                    lyr.refresh()
            except (ValueError, IndexError):
                self._remove_prediction_layers()

    # ------------------------------------------------------------------ errors
    def _on_worker_error(self, exc: BaseException) -> None:
        if isinstance(exc, UserInputError):
            self._report_error(str(exc))
        else:
            self._report_error(f"{type(exc).__name__}: {exc}")

    def _report_error(self, message: str, notify: bool = True) -> None:
        """Show an error in the status line and as a napari notification."""
        self.last_error = message
        if self._closed:
            return
        self.error.emit(message)
        if notify:
            try:
                from napari.utils.notifications import show_error

                show_error(f"segstudio: {message}")
            except Exception:  # noqa: BLE001 - never fail while reporting a failure
                pass

    def _notify_info(self, message: str) -> None:
        try:
            from napari.utils.notifications import show_info

            show_info(f"segstudio: {message}")
        except Exception:  # noqa: BLE001
            pass
