"""Training in a child process: :meth:`Trainer.run <segstudio.core.trainer.Trainer.run>` there,
its events here.

In the app the trainer shares the process with the GUI. PyTorch releases Python's GIL inside
each operation and takes it back after it, hundreds of times a step; whenever the GUI thread
holds the GIL then, the trainer waits, and its OpenMP threads with it. On the 2-core machine
the app made 0.6–0.7 of the steps the same training makes alone (``benchmarks/gui_
responsiveness.py``). A process started with *spawn* has a GIL of its own.

:class:`TrainerProcess` starts the child and feeds it: the paintings through :meth:`put` (the
same call as :class:`~segstudio.core.data.SnapshotSource`'s; an image goes over once, later
snapshots of the same array name it), pause and stop. :meth:`events` yields the trainer's
events (a live preview's weights arrive as a copy) and ends after ``Finished``; if the child
dies it yields one :class:`~segstudio.core.trainer.Failed` with its exit code. The CPU turns
(:class:`~segstudio.core.device.ComputeTurns` with ``shared=True``) are handed to the child, so
steps and live previews still take turns with every core.

:func:`process_refusal` says when a run stays in a thread: not on a CPU (a GPU interleaves the
work itself), images that are not in memory (lazy, out of core) or too large to copy.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.config import TrainConfig
from segstudio.core.data import SnapshotSource, TrainingImage

__all__ = ["PROCESS_MAX_BYTES", "TrainerProcess", "process_refusal"]

#: Images and paintings larger than this (in all) train in a thread: copying them to the
#: child would cost more than the GIL does.
PROCESS_MAX_BYTES = 512 << 20
#: How long :meth:`TrainerProcess.close` waits for the child's last checkpoint.
CLOSE_WAIT_S = 60.0
_POLL_S = 0.05
_END = "segstudio-trainer-end"


def process_refusal(config: TrainConfig, images: Sequence[TrainingImage], device: str) -> str | None:
    """Why this run should train in a thread instead of a child process (``None``: it need
    not). ``device`` is the resolved device's type."""
    if device != "cpu":
        return f"training on {device}"
    total = 0
    for item in images:
        for array in (item.image, item.paintings):
            if type(array) is not np.ndarray:
                return "an image is not in memory"
            total += array.nbytes
    if total > PROCESS_MAX_BYTES:
        return f"{total / 2**20:.0f} MiB of images and paintings"
    return None


def _child(turns: Any, commands: Any, events: Any, paused: Any, num_threads: int) -> None:
    """The child process: import what training needs, wait for the run and its first
    paintings, then run the trainer."""
    from segstudio.core.allocator import tune_allocator

    tune_allocator()
    import torch

    from segstudio.core.data import SnapshotSource
    from segstudio.core.trainer import Trainer, _failed

    try:  # what the optimizer's first construction imports (seconds): while the child waits
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001 - only a warm-up
        pass
    torch.set_num_threads(num_threads)
    source = SnapshotSource()
    images: dict[int, np.ndarray] = {}
    job: list[Any] = []
    stop = threading.Event()
    first = threading.Event()

    def read() -> None:
        while True:
            try:
                message = commands.get()
            except (EOFError, OSError):
                message = None
            if message is None or message[0] == "stop":
                stop.set()
                first.set()
                return
            if message[0] == "run":
                job[:] = message[1:]
                continue
            _, entries, weights, pins = message
            items, kept = [], {}
            for key, image, paintings, channel_axis, holdout in entries:
                kept[key] = images[key] if image is None else image
                items.append(TrainingImage(kept[key], paintings, channel_axis, holdout))
            images.clear()
            images.update(kept)
            source.put(items, weights=weights, pins=pins)
            first.set()

    def orphaned() -> None:  # the app ended without stopping us (killed): stop, keep the checkpoint
        parent = multiprocessing.parent_process()
        if parent is not None:
            parent.join()
            stop.set()
            first.set()

    threading.Thread(target=read, name="segstudio-paintings", daemon=True).start()
    threading.Thread(target=orphaned, name="segstudio-parent-watch", daemon=True).start()
    try:
        first.wait()
        if source.version == 0 or not job:
            return
        config, run_dir, resume = job
        for event in Trainer(config, source, run_dir, resume=resume, turns=turns,
                             swap_in_background=True).run(stop=stop):
            # Pickled by value here: the queue's own pickler would hand tensors over as shared
            # memory, which a child that has ended can no longer serve.
            events.put(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
            while paused.is_set() and not stop.is_set():
                time.sleep(_POLL_S)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then the child ends
        events.put(pickle.dumps(_failed(e)))
    finally:
        events.put(_END)
        events.close()
        events.join_thread()


class TrainerProcess:
    """One training run in a child process (see the module's notes).

    The child starts here and imports torch and the trainer (2–3 s on 2 cores), then waits:
    start one ahead (a *spare*) and its run begins at once. :meth:`start` gives it the run,
    :meth:`put` the paintings (the run begins with the first).

    Parameters
    ----------
    turns
        ``ComputeTurns(shared=True)`` shared with the live previews, or ``None``.
    num_threads
        Torch threads in the child (default: this process's).
    """

    def __init__(self, turns: Any = None, num_threads: int | None = None) -> None:
        import torch

        ctx = multiprocessing.get_context("spawn")
        self._commands = ctx.Queue()
        self._events = ctx.Queue()
        self._paused = ctx.Event()
        #: id -> array of the images the child has (those of the last put, kept alive here so
        #: that their ids stay theirs): sent once, named by id after.
        self._sent: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self.started = False
        self.process = ctx.Process(
            target=_child, name="segstudio-trainer", daemon=True,
            args=(turns, self._commands, self._events, self._paused, num_threads or torch.get_num_threads()),
        )
        self.process.start()

    def start(self, config: TrainConfig, run_dir: Path | None, resume: Path | None = None) -> TrainerProcess:
        """Give the child its run (as for :class:`~segstudio.core.trainer.Trainer`); returns self."""
        if self.started:
            raise RuntimeError("a TrainerProcess runs one training")
        self.started = True
        self._commands.put(("run", config, run_dir, resume))
        return self

    @property
    def alive(self) -> bool:
        """Whether the child is there and has no run yet or is running it."""
        return self.process.is_alive() and not self._stopped

    # -- what SnapshotSource offers the app ---------------------------------------------
    def put(self, images: Sequence[TrainingImage], weights: Sequence[float] | None = None,
            pins: Mapping[int, float] | None = None) -> None:
        """Hand new paintings (and pins) to the child; an image array it has is not sent again."""
        with self._lock:
            if self._stopped:
                return
            entries, sent = [], {}
            for item in images:
                key = id(item.image)
                new = self._sent.get(key) is not item.image
                sent[key] = item.image
                entries.append((key, item.image if new else None, item.paintings, item.channel_axis, item.holdout))
            self._sent = sent  # the child keeps the same ones
            self._commands.put(("paint", entries, None if weights is None else tuple(weights),
                                None if pins is None else dict(pins)))

    def pause(self) -> None:
        """The child waits after its current step."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        """End the run as the trainer's ``stop`` does (a checkpoint, a last preview, ``Finished``)."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._paused.clear()
                self._commands.put(("stop",))

    def events(self, stop: threading.Event | None = None, source: SnapshotSource | None = None) -> Iterator[Any]:
        """The trainer's events until it ends; setting ``stop`` stops it. Closing this
        generator stops the child and waits for its last checkpoint. ``source``: each new
        version put there is forwarded to the child (between events, from this thread)."""
        from segstudio.core.trainer import Failed, Finished

        forwarded = 0
        finished = False
        try:
            while True:
                if stop is not None and stop.is_set():
                    self.stop()
                if source is not None and source.version != forwarded:
                    forwarded = source.version
                    snapshot = source.latest()
                    if snapshot is not None:
                        self.put(snapshot.images, snapshot.weights, None if snapshot.pins is None else dict(snapshot.pins))
                try:
                    event = self._events.get(timeout=_POLL_S)
                except (queue.Empty, EOFError, OSError):  # EOF: a child killed mid-message
                    if self.process.is_alive():
                        continue
                    try:  # it may have put its last events just before it ended
                        event = self._events.get(timeout=1.0)
                    except (queue.Empty, EOFError, OSError):
                        if not finished:  # after Finished the run is complete: its end is no failure
                            code = self.process.exitcode
                            yield Failed(f"the training process ended unexpectedly (exit code {code})")
                        return
                if isinstance(event, str) and event == _END:
                    return
                event = pickle.loads(event)
                finished = finished or isinstance(event, Finished)
                yield event
        finally:
            self.close()

    def close(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Stop the child, wait for it to end (its last checkpoint), then free the queues."""
        self.stop()
        deadline = time.monotonic() + timeout_s
        while self.process.is_alive() and time.monotonic() < deadline:
            try:  # drain, so that a child blocked on a full pipe can end
                self._events.get(timeout=_POLL_S)
            except (queue.Empty, EOFError, OSError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5.0)
        self._sent.clear()
        for q in (self._commands, self._events):
            q.close()
            q.cancel_join_thread()
