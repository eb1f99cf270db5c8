"""Training in a worker, and the class weights the class table shows.

New paintings are *offered* here (:meth:`Training.offer`): while training they go to the
trainer through its :class:`~segstudio.core.data.SnapshotSource` (with the pinned weights), and
the trainer reports the class weights it uses; otherwise the same core function weighs them
here, with the same clamp. Either way the paintings are joined in a worker, one offer at a
time (a newer offer replaces a pending one).

The trainer owns its ending (:meth:`segstudio.core.trainer.Trainer.run` with ``stop``): Stop
and closing the window set ``stop``; the trainer writes its checkpoint, a last preview of the
weights and ``Finished``.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from segstudio._qt.layers import PaintSnapshot
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet, run_in_background, threads_disabled
from segstudio.core.annotations import EXCLUSIVE
from segstudio.core.background import UNEVEN_BACKGROUND, background_unevenness, slice_unevenness
from segstudio.core.config import (
    NETWORK_FIELDS,
    TrainConfig,
    level_slices_choice,
    textures_choice,
    use_level_slices,
    use_textures,
    wide_context_choice,
)
from segstudio.core.data import SnapshotSource, TrainingImage, split_holdout
from segstudio.core.device import ComputeTurns, resolve_device
from segstudio.core.errors import UserInputError
from segstudio.core.run import LoadedRun
from segstudio.core.textures import texture_gain
from segstudio.core.trainer import (
    Checkpoint,
    Failed,
    Finished,
    Notice,
    Preview,
    Progress,
    Started,
    Trainer,
    Validation,
    WeightsUpdated,
)
from segstudio.core.trainer_process import TrainerProcess, process_refusal
from segstudio.core.weights import (
    ClassWeights,
    count_paintings,
    coverage_of,
    painted_extent,
    pos_weights_from_counts,
    weights_from_counts,
)

#: Iterations/second is measured over this many recent steps.
RATE_WINDOW = 20
#: States in which a training worker exists.
TRAINING_STATES = ("running", "paused", "stopping")
REASONS = {"iterations": "done", "time": "time is up", "stopped": "stopped"}
#: ``thread`` keeps training in the app's process (default ``process`` where it can).
TRAIN_IN_ENV = "SEGSTUDIO_TRAIN_IN"
#: Shown under the class table when the painted background of a 2D image varies in brightness
#: more than the classes differ from it (:func:`segstudio.core.background.background_unevenness`).
UNEVEN_HINT = ("your background strokes vary in brightness more than your classes differ from them: "
               "if the background is uneven (illumination, glow), try wide context (Training)")
#: The same, when *wide context* is on ``auto``: the next run uses it.
UNEVEN_AUTO_NOTE = ("wide context is on (auto): your background strokes vary in brightness more than your "
                    "classes differ from them (set it to off under Training if the background is even)")
#: Shown under the class table when *textures* on ``auto`` is on for the paintings
#: (:func:`segstudio.core.textures.texture_gain` above :data:`~segstudio.core.config.TEXTURE_GAIN`).
TEXTURES_AUTO_NOTE = ("textures are on (auto): your classes differ more in texture than in brightness "
                      "(set Textures to off under Training if they do not)")
#: Shown under the class table when *level slices* on ``auto`` is on for the paintings
#: (:func:`segstudio.core.background.slice_unevenness` above
#: :data:`~segstudio.core.config.SLICE_UNEVENNESS`).
LEVEL_AUTO_NOTE = ("level slices is on (auto): the background's level runs along z more than your classes "
                   "differ (set Level slices to off under Training if it does not)")
#: The lines under the class table that come from weighing the paintings in the app (not from the
#: trainer): they stay while a run trains.
PAINTING_NOTES: tuple[str, ...] = (UNEVEN_HINT, UNEVEN_AUTO_NOTE, TEXTURES_AUTO_NOTE, LEVEL_AUTO_NOTE)


@dataclass(frozen=True)
class Paintings:
    """Paintings offered to the trainer or the class table, with what to weigh them by.

    ``snapshot``, ``image``, ``channel_axis``, ``holdout``: the image on screen. ``others``:
    the session's other painted images (:class:`segstudio._qt.images.PaintedImage`, read in
    the worker), trained on and weighed together with it.
    """

    snapshot: PaintSnapshot
    image: np.ndarray
    channel_axis: int | None
    pins: Mapping[int, float]
    method: str
    n_classes: int
    clamp: tuple[float, float]
    others: tuple[Any, ...] = ()
    holdout: Any = None
    wide_context: str = "auto"
    textures: str = "auto"
    spacing: tuple[float, ...] | None = None
    level_slices: str = "auto"

    def weigh_and_measure(self) -> tuple[ClassWeights, float | None, float | None, float | None]:
        """The class weights (what the trainer computes from the same paintings: the painted
        pixels of every image, without those held out for validation), the painted
        background's unevenness on the image on screen
        (:func:`~segstudio.core.background.background_unevenness`; ``None`` for volumes, lazy
        images and too few strokes), which *wide context* on ``auto`` goes by, the
        paintings' texture gain there (:func:`~segstudio.core.textures.texture_gain`; ``None``
        for lazy images and too few strokes), which *textures* on ``auto`` go by, and how much
        a volume's background runs along z (:func:`~segstudio.core.background.slice_unevenness`;
        ``None`` for 2D and lazy images and too few strokes), which *level slices* on ``auto``
        goes by. Lines under the class table say when any of them turns on."""
        mode = self.snapshot.mode
        kept = split_holdout(TrainingImage(self.image, self.snapshot.paintings(), self.channel_axis, self.holdout),
                             mode)[0]
        paint = None if kept is None else np.asarray(kept.paintings)
        present, absent = count_paintings(paint, mode, self.n_classes)
        extents = [painted_extent(paint, mode)]
        for other in self.others:
            p, a, extent = other.weighed(mode, self.n_classes)
            present, absent = present + p, absent + a
            extents.append(extent)
        coverage = coverage_of(extents)  # dense paintings temper the weights, as in training
        if mode == EXCLUSIVE:
            weights = weights_from_counts(present, self.method, clamp=self.clamp, pinned=self.pins, coverage=coverage)
        else:
            weights = pos_weights_from_counts(present, absent, self.method, clamp=self.clamp, pinned=self.pins,
                                              coverage=coverage)
        uneven = None
        if isinstance(self.image, np.ndarray):  # lazy images: not read for it
            uneven = background_unevenness(self.image, self.snapshot.paintings(), mode, self.channel_axis)
        choice = wide_context_choice(self.wide_context)
        if uneven is not None and uneven > UNEVEN_BACKGROUND and choice != "on":
            note = UNEVEN_AUTO_NOTE if choice == "auto" else UNEVEN_HINT
            weights = replace(weights, warnings=(*weights.warnings, note))
        gain = None
        if isinstance(self.image, np.ndarray) and textures_choice(self.textures) == "auto":
            gain = texture_gain(self.image, self.snapshot.paintings(), mode, self.channel_axis, self.spacing)
            if use_textures("auto", gain):
                weights = replace(weights, warnings=(*weights.warnings, TEXTURES_AUTO_NOTE))
        along_z = None
        if isinstance(self.image, np.ndarray) and level_slices_choice(self.level_slices) == "auto":
            along_z = slice_unevenness(self.image, self.snapshot.paintings(), mode, self.channel_axis)
            if use_level_slices("auto", 3, along_z):
                weights = replace(weights, warnings=(*weights.warnings, LEVEL_AUTO_NOTE))
        return weights, uneven, gain, along_z

    def training_images(self) -> list[TrainingImage]:
        """The image on screen first, then the other painted images (read here: call it in a
        worker)."""
        mode = self.snapshot.mode
        items = [TrainingImage(self.image, self.snapshot.paintings(), self.channel_axis, self.holdout)]
        for other in self.others:
            item = other.training_image(mode, self.n_classes)
            if item is not None:
                items.append(item)
        return items

    def put(self, source: SnapshotSource) -> None:
        """Hand the paintings (and pins) to a running trainer."""
        source.put(self.training_images(), pins=self.pins)


def train_in_process() -> bool:
    """Whether runs may train in a child process (``SEGSTUDIO_TRAIN_IN=thread``: never; nor
    when workers run inline)."""
    return os.environ.get(TRAIN_IN_ENV, "process").lower() != "thread" and not threads_disabled()


class TrainingRun:
    """One run as the worker runs it: the trainer in a child process
    (:class:`~segstudio.core.trainer_process.TrainerProcess`: its own GIL, so the GUI thread
    does not slow its steps) when :func:`process_refusal` allows, else in the worker's thread.

    Paintings offered while it trains land in ``source`` either way; in a process the worker
    forwards each new version to the child.
    """

    def __init__(self, config: TrainConfig, source: SnapshotSource, run_dir: Path, resume: Path | None,
                 first: Paintings, stop: threading.Event, done: threading.Event, turns: Any = None,
                 in_process: bool = False, spare: TrainerProcess | None = None) -> None:
        self.config, self.source, self.run_dir, self.resume_from = config, source, run_dir, resume
        self.first, self.stop, self.done, self.turns = first, stop, done, turns
        self.in_process = in_process
        #: A child started ahead (its imports done): used for this run, else left for the next.
        self.spare = spare
        #: The child, once started (``None``: training in the worker's thread).
        self.process: TrainerProcess | None = None
        self._paused = False  # asked before the child started: it starts paused
        self._lock = threading.Lock()

    def events(self) -> Iterator[Any]:
        """Worker body: the first paintings (joined here, off the GUI thread), then the
        trainer's events until it ends (``stop`` set: a checkpoint, a last preview,
        ``Finished``). ``turns``: held for each step (shared with the previews on a CPU, see
        :class:`ComputeTurns`)."""
        try:
            items = self.first.training_images()
            self.source.put(items, pins=self.first.pins)
            if self.in_process and process_refusal(self.config, items, _device_type(self.config.device)) is None:
                child, self.spare = self.spare, None
                if child is None or not child.alive:
                    _close_later(child)
                    child = TrainerProcess(turns=_process_turns(self.turns))
                with self._lock:
                    if self._paused:
                        child.pause()
                    self.process = child.start(self.config, self.run_dir, self.resume_from)
                yield from self.process.events(self.stop, source=self.source)
            else:
                yield from Trainer(self.config, self.source, self.run_dir, resume=self.resume_from,
                                   turns=self.turns, swap_in_background=True).run(stop=self.stop)
        finally:
            self.done.set()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self.process is not None:
                self.process.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self.process is not None:
                self.process.resume()


def _process_turns(turns: Any) -> ComputeTurns | None:
    """``turns`` when a training process can take them too (``ComputeTurns(shared=True)``)."""
    return turns if getattr(turns, "shared", False) else None


def _close_later(process: TrainerProcess | None) -> None:
    """End a training process that no run will use, off the GUI thread (it may be importing)."""
    if process is not None:
        run_in_background("segstudio-spare-close", process.close, daemon=True)


def _device_type(device: str) -> str:
    try:
        return resolve_device(device).type
    except UserInputError:
        return "absent"  # the trainer reports it itself


def cpu_turns(turns: ComputeTurns | None, device: str) -> ComputeTurns | None:
    """``turns`` when ``device`` resolves to the CPU (training and previews then take turns
    with every core; before, each had half the cores all the time), else ``None``."""
    if turns is None:
        return None
    try:
        return turns if resolve_device(device).type == "cpu" else None
    except UserInputError:
        return None  # the trainer reports an absent device itself


#: Set to 1 to let this (GUI) process import triton after all (see :func:`keep_triton_out`).
ALLOW_TRITON_ENV = "SEGSTUDIO_ALLOW_TRITON"


def keep_triton_out() -> bool:
    """Make ``import triton`` fail in this GUI process, unless it was imported already.

    ``torch._dynamo`` (which the optimizer's constructor, ``torch.export`` and the warm-up
    below import) imports triton wherever it is installed: with every CUDA build of PyTorch on
    Linux. Loaded after an OpenGL driver that links LLVM, triton's own LLVM crashed the process
    with a segmentation fault: Mesa's software renderer llvmpipe (virtual machines, remote
    desktops, Xvfb), torch 2.13+cu130 on Python 3.12, ``segstudio open``, every time; Mesa's
    radeonsi (AMD graphics) links LLVM too. This process never compiles GPU kernels
    (training in a thread or a child process uses eager PyTorch; the child, a fresh process
    without OpenGL, keeps triton), so it does without. As a napari plugin this also hides
    triton from code that runs in napari's process after the widget opened;
    ``SEGSTUDIO_ALLOW_TRITON=1`` leaves it importable. Returns whether it is kept out now.
    """
    if os.environ.get(ALLOW_TRITON_ENV, "") == "1":
        return False
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]  # ``import triton`` -> ImportError
    return sys.modules["triton"] is None


class TorchWarmUp:
    """Import, once and in a background thread, what the first training would import.

    The optimizer's constructor imports ``torch._dynamo`` on first use: 2.4 s of the 4.8 s
    from Train to the first live prediction on 2 cores (``benchmarks/gui_responsiveness.py``).
    Doing it while the user looks at the image and paints takes it off that path.
    """

    def __init__(self) -> None:
        self._started = threading.Event()

    def start(self) -> threading.Thread | None:
        """Start the import (a daemon thread); ``None`` when it was started before."""
        if self._started.is_set():
            return None
        self._started.set()
        return run_in_background("segstudio-torch-warm-up", self._work, daemon=True)

    @staticmethod
    def _work() -> None:
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # noqa: BLE001 - only a warm-up; training imports it again
            pass


#: The process's warm-up (the first controller starts it).
torch_warm_up = TorchWarmUp()


class Training(QObject):
    """The training worker, its state and history, and the newest weights.

    Signals
    -------
    state_changed(str)
        idle, running, paused or stopping.
    progress(Progress)
        One step done.
    weights_changed(ClassWeights)
        The class weights in use (the trainer's while training).
    model_updated(object)
        Newer weights (a state dict) for previews and predictions.
    validated(Validation)
        Dice per class on the painted pixels held out for validation.
    """

    state_changed = Signal(str)
    progress = Signal(object)
    weights_changed = Signal(object)
    model_updated = Signal(object)
    validated = Signal(object)

    def __init__(self, workers: WorkerSet, notify: Notifier, turns: ComputeTurns | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.notify = notify
        #: Shared with the previews: on a CPU one step or one preview at a time, each with all cores.
        self.turns = turns
        self.state = "idle"
        self.config: TrainConfig | None = None
        self.run_dir: Path | None = None
        self.iteration = 0
        self.loss_iterations: list[int] = []
        self.loss_values: list[float] = []
        #: Dice per class on the validation strokes, as training reported it (this run).
        self.validations: list[Validation] = []
        #: The newest weights (a CPU state dict), ``None`` before any training.
        self.model_state: Any = None
        self.last_checkpoint: Path | None = None
        self.done = threading.Event()
        self.done.set()
        self._stop = threading.Event()
        self._source: SnapshotSource | None = None
        self._rate: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)
        self._pending: Paintings | None = None
        self._newest: PaintSnapshot | None = None
        #: The painted background's unevenness of the newest weighed paintings
        #: (:meth:`Paintings.weigh_and_measure`), ``None`` when not known.
        self.unevenness: float | None = None
        #: The texture gain of the newest weighed paintings (:meth:`Paintings.weigh_and_measure`),
        #: ``None`` when not known.
        self.texture_gain: float | None = None
        #: How much the newest weighed volume's background runs along z
        #: (:meth:`Paintings.weigh_and_measure`), ``None`` when not known.
        self.slice_unevenness: float | None = None
        #: The painting notes (:data:`PAINTING_NOTES`) of the last weighing, kept under the table
        #: while a run trains.
        self._notes: tuple[str, ...] = ()
        self._worker: Any = None
        self._run: TrainingRun | None = None
        #: A training process started ahead of Train (see :meth:`warm_process`).
        self._spare: TrainerProcess | None = None
        self._closed = False

    @property
    def is_training(self) -> bool:
        return self.state in TRAINING_STATES

    # ------------------------------------------------------------------ paintings
    def offer(self, paintings: Paintings) -> None:
        """New paintings (or pins): to the trainer while training, else weighed for the table.
        Paintings older than ones offered before (of the same image) are dropped."""
        newest = self._newest
        if newest is not None and newest.image == paintings.snapshot.image and \
                paintings.snapshot.version < newest.version:
            return
        if newest is None or newest.image != paintings.snapshot.image:
            self.unevenness = self.texture_gain = self.slice_unevenness = None  # another image: not known yet
            self._notes = ()
        self._newest = paintings.snapshot
        if self.workers.busy("paintings"):
            self._pending = paintings
            return
        source = self._source if self.is_training else None
        if source is not None:
            self.workers.start("paintings", paintings.put, source, errored=self.notify.worker_failed,
                               finished=self._next_offer)
        else:
            self.workers.start("paintings", paintings.weigh_and_measure, returned=self._on_weighed,
                               errored=self.notify.worker_failed, finished=self._next_offer)

    def _on_weighed(self, out: tuple[ClassWeights, float | None, float | None, float | None]) -> None:
        weights, self.unevenness, self.texture_gain, self.slice_unevenness = out
        self._notes = tuple(w for w in weights.warnings if w in PAINTING_NOTES)
        self.weights_changed.emit(weights)

    def _next_offer(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.offer(pending)

    # ------------------------------------------------------------------ training
    def can_resume(self, config: TrainConfig) -> bool:
        """Whether the last run can go on with ``config`` (same network, classes, patch, and
        the same *level slices*: its input)."""
        old = self.config
        if old is None or self.run_dir is None or not (self.run_dir / "model.pt").exists():
            return False
        keys = ("mode", "n_classes", "spatial_dims", "in_channels", "spacing", "level_slices", *NETWORK_FIELDS)
        return all(getattr(old, k) == getattr(config, k) for k in keys) and old.patch == config.patch

    def start(self, config: TrainConfig, paintings: Paintings, run_dir: Path, resume: Path | None) -> None:
        """Train (a new run in ``run_dir``, or ``resume`` it) in a worker."""
        if resume is None:
            self.loss_iterations, self.loss_values, self.iteration = [], [], 0
            self.validations = []
        self.config, self.run_dir = config, run_dir
        self._pending, self._newest = None, paintings.snapshot  # an older offer must not follow
        self._source = SnapshotSource()
        self._stop, self.done = threading.Event(), threading.Event()
        self._rate.clear()
        self._set_state("running")
        self.notify.info("starting training…")
        spare, self._spare = self._spare, None
        self._run = TrainingRun(config, self._source, run_dir, resume, paintings, self._stop, self.done,
                                cpu_turns(self.turns, config.device), in_process=train_in_process(), spare=spare)
        self._worker = self.workers.start(
            "train", self._run.events, yielded=self._on_event,
            errored=lambda e: self.notify.worker_failed(e, "training failed"), finished=self._on_finished)

    def pause(self) -> None:
        if self.state == "running" and self._worker is not None:
            self._worker.pause()
            self._run.pause()
            self._set_state("paused")
            self.notify.info(f"paused at iteration {self.iteration}")

    def resume(self) -> None:
        if self.state == "paused" and self._worker is not None:
            self._run.resume()
            self._worker.resume()
            self._set_state("running")
            self.notify.info("training resumed")

    def stop(self) -> None:
        """Ask the trainer to stop; it writes a checkpoint and reports ``Finished``."""
        if self._worker is None or self.state not in ("running", "paused"):
            return
        self._stop.set()
        if self.state == "paused":
            self._worker.resume()
        self._set_state("stopping")
        self.notify.info("stopping…")

    def stop_for_close(self) -> threading.Event:
        """The session ends: stop without waiting; returns the event set when the trainer is
        done (it is set already when nothing trains)."""
        worker = self._worker
        if worker is not None and getattr(worker, "is_running", False):
            self._stop.set()
            if getattr(worker, "is_paused", False):
                worker.resume()
            if threads_disabled():
                worker.quit()  # inline: the event loop that would step it is ending
        return self.done

    def iterations_per_second(self) -> float | None:
        if len(self._rate) < 2:
            return None
        (s0, i0), (s1, i1) = self._rate[0], self._rate[-1]
        return (i1 - i0) / (s1 - s0) if s1 > s0 else None

    def restore(self, loaded: LoadedRun) -> None:
        """Show a saved run (weights, history) so previews, predictions and resuming work."""
        self.config, self.run_dir = loaded.config, loaded.path
        self.model_state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
        self.iteration = loaded.iteration
        self.loss_iterations = [int(r["iteration"]) for r in loaded.history]
        self.loss_values = [float(r["loss"]) for r in loaded.history]

    def forget(self) -> None:
        """No run any more (another project was opened)."""
        self.config = self.run_dir = self.model_state = None
        self.loss_iterations, self.loss_values, self.iteration = [], [], 0
        self.validations = []

    def require_model(self) -> tuple[TrainConfig, Any]:
        """``(config, weights)`` of the newest model.

        Raises
        ------
        UserInputError
            When there is none yet.
        """
        if self.config is None or self.model_state is None:
            raise UserInputError("train a model first (press Train)")
        return self.config, self.model_state

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            self.iteration = event.iteration
            self.loss_iterations.append(event.iteration)
            self.loss_values.append(event.loss)
            self._rate.append((event.seconds, event.iteration))
            self.progress.emit(event)
        elif isinstance(event, Preview):
            self.model_state = event.state_dict
            self.iteration = max(self.iteration, event.iteration)
            self.model_updated.emit(event.state_dict)
        elif isinstance(event, WeightsUpdated):
            # the trainer's weights, with the lines about the choices this run started with
            extra = tuple(n for n in self._notes if n not in event.weights.warnings)
            self.weights_changed.emit(replace(event.weights, warnings=(*event.weights.warnings, *extra)))
        elif isinstance(event, Validation):
            self.validations.append(event)
            self.validated.emit(event)
        elif isinstance(event, Started):
            self.notify.info(f"training on {event.device} · {event.parameters:,} parameters"
                             + (f" · from iteration {event.start_iteration}" if event.start_iteration else ""))
        elif isinstance(event, Checkpoint):
            self.last_checkpoint = Path(event.path)
        elif isinstance(event, Notice):
            self.notify.info(event.message, popup=True)
        elif isinstance(event, Finished):
            self.iteration = event.iteration
            why = REASONS.get(event.reason, event.reason)
            self.notify.info(f"training {why} at iteration {event.iteration} ({event.seconds:.0f} s)")
        elif isinstance(event, Failed):
            self.notify.fail(f"training failed: {event.message}")

    def warm_process(self) -> None:
        """Start the next run's training process now, so that Train does not wait for its
        imports (seconds); nothing when runs train in a thread or one is ready."""
        if self._closed or self.is_training or not train_in_process() or \
                (self._spare is not None and self._spare.alive):
            return
        _close_later(self._spare)  # one that died
        self._spare = TrainerProcess(turns=_process_turns(self.turns))

    def close(self) -> None:
        """The session ends: the spare process goes (a running one is stopped by
        :meth:`stop_for_close`)."""
        self._closed = True
        _close_later(self._spare)
        self._spare = None

    def _on_finished(self) -> None:
        run = self._run
        if run is not None and run.spare is not None:  # not used (trained in the thread)
            if self._spare is None and not self._closed and run.spare.alive:
                self._spare = run.spare
            else:
                _close_later(run.spare)
        self._worker = self._run = None
        self._source = None
        self._set_state("idle")
