"""Thin adapters that run core generators/functions off the GUI thread, and the set of workers
of one session (:class:`WorkerSet`).

Threaded mode uses superqt's ``create_worker`` (the function behind
:func:`napari.qt.threading.create_worker`): a QRunnable in the global thread pool whose
``yielded``/``returned``/``errored`` signals arrive on the GUI thread.

With ``SEGSTUDIO_NO_THREADS=1`` the same generator runs *inline* on the GUI thread, one step per
event-loop turn (a zero-interval ``QTimer``), behind the same signal interface. This is for
debugging (breakpoints, tracebacks) and for tests that want determinism.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Generator
from typing import Any

from qtpy.QtCore import QObject, QThreadPool, QTimer, Signal
from superqt.utils import FunctionWorker, GeneratorWorker, create_worker

NO_THREADS_ENV = "SEGSTUDIO_NO_THREADS"
#: How long the process waits at exit for work the session left running in the background.
EXIT_WAIT_S = 30.0

_background: list[threading.Thread] = []


def threads_disabled() -> bool:
    """``True`` when ``SEGSTUDIO_NO_THREADS`` asks for inline execution."""
    return os.environ.get(NO_THREADS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class InlineWorker(QObject):
    """Runs a generator (or a plain function) on the GUI thread, one step per event-loop turn.

    Mirrors the parts of napari's ``GeneratorWorker``/``FunctionWorker`` API segstudio uses:
    ``started``, ``yielded``, ``returned``, ``errored``, ``finished``, ``aborted``, ``paused``,
    ``resumed`` signals and ``start``/``pause``/``resume``/``quit``/``is_running``.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()
    aborted = Signal()
    paused = Signal()
    resumed = Signal()

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._func, self._args, self._kwargs = func, args, kwargs
        self._gen: Generator[Any, Any, Any] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)
        self._running = False
        self._paused = False

    @property
    def is_running(self) -> bool:
        return self._running

    @property
    def is_paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        self._running = True
        self.started.emit()
        if inspect.isgeneratorfunction(self._func):
            self._gen = self._func(*self._args, **self._kwargs)
            self._timer.start()
        else:
            QTimer.singleShot(0, self._call)

    def _call(self) -> None:
        try:
            result = self._func(*self._args, **self._kwargs)
        except Exception as e:  # noqa: BLE001 - forwarded like a thread worker does
            self.errored.emit(e)
        else:
            self.returned.emit(result)
        self._finish()

    def _step(self) -> None:
        assert self._gen is not None
        try:
            value = next(self._gen)
        except StopIteration as stop:
            self.returned.emit(stop.value)
            self._finish()
        except Exception as e:  # noqa: BLE001
            self.errored.emit(e)
            self._finish()
        else:
            self.yielded.emit(value)

    def _finish(self) -> None:
        self._timer.stop()
        self._running = False
        self.finished.emit()

    def pause(self) -> None:
        if self._running and not self._paused:
            self._paused = True
            self._timer.stop()
            self.paused.emit()

    def resume(self) -> None:
        if self._running and self._paused:
            self._paused = False
            self._timer.start()
            self.resumed.emit()

    def quit(self) -> None:
        if not self._running:
            return
        self._timer.stop()
        if self._gen is not None:
            self._gen.close()
        self.aborted.emit()
        self._finish()


class _NoGlobalWarnings:
    """superqt's ``WorkerBase.run`` without its swap of the process-wide ``warnings.showwarning``.

    superqt routes a worker's warnings to its ``warned`` signal by setting
    ``warnings.showwarning`` to a lambda holding the worker, inside ``warnings.catch_warnings()``,
    which restores the previous value on exit. That is not thread-safe: when two workers (or any
    other thread using ``catch_warnings``, such as an import) overlap, one of them restores the
    other's lambda, and it stays installed for good: a finished worker, with the paintings or
    image it was given, is held for the rest of the session, and every later warning of the
    process goes to that dead worker's signal. Nothing here listens to ``warned``; warnings
    from a worker take Python's usual route instead.
    """

    def run(self) -> None:  # same order of signals as superqt's run()
        self.started.emit()  # type: ignore[attr-defined]
        self._running = True
        try:
            result = self.work()  # type: ignore[attr-defined]
            if isinstance(result, Exception):
                if isinstance(result, RuntimeError):  # superqt: the worker was likely deleted
                    warnings.warn(f"RuntimeError in aborted thread: {result}", RuntimeWarning, stacklevel=2)
                    return
                raise result
            if not self.abort_requested:  # type: ignore[attr-defined]
                self.returned.emit(result)  # type: ignore[attr-defined]
        except Exception as exc:
            self.errored.emit(exc)  # type: ignore[attr-defined]
        self._running = False
        self.finished.emit()  # type: ignore[attr-defined]
        self._finished.emit(self)  # type: ignore[attr-defined]


class _FunctionWorker(_NoGlobalWarnings, FunctionWorker):
    """superqt's function worker without the warnings swap (:class:`_NoGlobalWarnings`)."""


class ClosingGeneratorWorker(_NoGlobalWarnings, GeneratorWorker):
    """superqt's generator worker, but one that closes its generator, in its own thread, when
    it is asked to quit.

    superqt only stops stepping an aborted generator, so its ``finally`` blocks run whenever it
    is garbage-collected, if ever. napari asks every worker to quit when the application is
    about to quit (``app.aboutToQuit``): the trainer then never wrote its last checkpoint nor
    set its ``done`` event, and the app waited two minutes before exiting (``controller.STOP_TIMEOUT_S``).
    Like every worker here, it leaves ``warnings.showwarning`` alone (:class:`_NoGlobalWarnings`).
    """

    def work(self) -> Any:
        try:
            return super().work()
        finally:
            self._gen.close()  # no-op unless it was aborted: GeneratorExit at its yield


def start_worker(
    func: Callable[..., Any],
    *args: Any,
    yielded: Callable[[Any], None] | None = None,
    returned: Callable[[Any], None] | None = None,
    errored: Callable[[BaseException], None] | None = None,
    finished: Callable[[], None] | None = None,
    **kwargs: Any,
) -> Any:
    """Start ``func(*args, **kwargs)`` in a worker and connect the given callbacks.

    Returns the worker (napari ``GeneratorWorker``/``FunctionWorker``, or an
    :class:`InlineWorker` when threads are disabled).
    """
    if threads_disabled():
        worker: Any = InlineWorker(func, *args, **kwargs)
    else:
        # superqt's create_worker (what napari.qt.threading wraps): napari 0.9's wrapper adds a
        # task-status hook whose ``errored`` handler raises TypeError (it drops the exception
        # argument), which would hide our own error report.
        kind = ClosingGeneratorWorker if inspect.isgeneratorfunction(func) else _FunctionWorker
        worker = create_worker(
            func, *args, _start_thread=False, _ignore_errors=errored is not None, _worker_class=kind, **kwargs
        )
    if yielded is not None and hasattr(worker, "yielded"):
        worker.yielded.connect(yielded)
    if returned is not None:
        worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    if finished is not None:
        worker.finished.connect(finished)
    worker.start()
    return worker


class WorkerSet:
    """The running workers of one session, each under a job name (``"train"``, ``"preview"``…).

    Parts start their work here, so the controller can tell whether anything runs
    (:meth:`busy`) and, when the session ends, :meth:`close` quits the workers and drops every
    result, error and ``finished`` still to come (nobody is there to show them).
    """

    def __init__(self) -> None:
        self._running: list[tuple[str, Any]] = []
        self.closed = False

    def start(
        self,
        job: str,
        func: Callable[..., Any],
        *args: Any,
        yielded: Callable[[Any], None] | None = None,
        returned: Callable[[Any], None] | None = None,
        errored: Callable[[BaseException], None] | None = None,
        finished: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """:func:`start_worker` under ``job``; returns the worker (``None`` once closed)."""
        if self.closed:
            return None
        holder: list[Any] = []

        def live(callback: Callable[..., None] | None) -> Callable[..., None] | None:
            if callback is None:
                return None

            def call(*a: Any) -> None:
                if not self.closed:
                    callback(*a)

            return call

        def done() -> None:
            self._running = [(j, w) for j, w in self._running if w is not holder[0]]
            if finished is not None and not self.closed:
                finished()
            # The worker's signals hold this function, which held the worker: without this the
            # worker, its arguments and results (paintings, images) would never be freed.
            QTimer.singleShot(0, holder.clear)

        worker = start_worker(func, *args, yielded=live(yielded), returned=live(returned),
                              errored=live(errored), finished=done, **kwargs)
        holder.append(worker)
        self._running.append((job, worker))
        return worker

    def busy(self, job: str | None = None) -> bool:
        """Whether a worker of ``job`` (any job: ``None``) runs."""
        return any(job is None or j == job for j, _ in self._running)

    def quit(self, job: str) -> None:
        """Ask the workers of ``job`` to stop (generators stop at their next yield)."""
        for j, worker in list(self._running):
            if j == job and getattr(worker, "is_running", False):
                worker.quit()

    def close(self, keep: tuple[str, ...] = ()) -> None:
        """End the session: quit every worker but those of ``keep``; drop what comes back."""
        self.closed = True
        for job, worker in list(self._running):
            if job not in keep and getattr(worker, "is_running", False):
                worker.quit()


def run_in_background(name: str, func: Callable[[], None], *, daemon: bool = False) -> threading.Thread:
    """Run ``func`` in a plain thread that :func:`wait_for_background_work` waits for (a
    non-daemon one also keeps the process alive until it is done: a checkpoint or an autosave
    being written when the window closed).

    Once the interpreter shuts down (a widget destroyed after the main thread ended), Python
    3.12+ starts no thread: ``func`` is then dropped, as earlier Pythons dropped the thread
    they started (nothing joins it any more), and the thread returned is never started.
    Running it here instead could wait minutes for a trainer whose thread no longer runs."""
    thread = threading.Thread(target=func, name=name, daemon=daemon)
    _background.append(thread)
    try:
        thread.start()
    except RuntimeError as e:
        _background.remove(thread)
        if not (sys.is_finalizing() or "interpreter shutdown" in str(e)):
            raise
    return thread


def wait_for_background_work(timeout_s: float = EXIT_WAIT_S) -> None:
    """Before the process exits (after the event loop ended): let background threads and pool
    workers finish, so none meets Qt objects Python is tearing down ("Signal source has been
    deleted" on stderr)."""
    for thread in list(_background):
        thread.join(timeout_s)
    QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))
