"""Workers: what happens to a generator when the application quits under it."""

from __future__ import annotations

import threading

import pytest
from superqt.utils import WorkerBase

from segstudio._qt.workers import start_worker

pytestmark = pytest.mark.gui


def test_a_generator_asked_to_quit_runs_its_finally_in_its_own_thread(qtbot):
    """napari connects ``app.aboutToQuit`` to superqt's ``await_workers``, which quits every
    worker: the trainer must still write its checkpoint and set its ``done`` event (its
    ``finally``), in the worker's thread, before the pool is done."""
    stepping, done = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def steps():
        try:
            while True:
                stepping.set()
                yield 1
        finally:
            seen["thread"] = threading.current_thread()
            done.set()

    worker = start_worker(steps)
    assert stepping.wait(10)
    WorkerBase.await_workers(10_000)  # what napari's aboutToQuit handler calls
    assert done.is_set()
    assert seen["thread"] is not threading.main_thread()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)


def test_a_generator_that_ends_by_itself_is_not_closed_twice(qtbot):
    ends = []

    def steps():
        try:
            yield 1
            yield 2
        finally:
            ends.append(threading.current_thread())

    worker = start_worker(steps)
    qtbot.waitUntil(lambda: bool(ends) and not worker.is_running, timeout=10_000)
    qtbot.wait(50)
    assert len(ends) == 1 and ends[0] is not threading.main_thread()


def test_overlapping_workers_leave_warnings_alone_and_let_go_of_their_arguments(qtbot):
    """superqt's workers swap the process-wide ``warnings.showwarning`` for a lambda that holds
    the worker, which is not thread-safe: overlapping workers left one such lambda installed,
    so a finished worker and the arrays it was given stayed alive for the session (the cause of
    a flaky leak test). Workers here never touch it."""
    import gc
    import time
    import warnings
    import weakref

    import numpy as np

    before = warnings.showwarning
    refs, results, ended = [], [], []

    def job(a):
        time.sleep(0.002)
        return a.shape

    for _ in range(40):
        given = np.zeros(16, np.uint8)
        refs.append(weakref.ref(given))
        start_worker(job, given, returned=results.append, finished=lambda: ended.append(1))
        del given
    # these 40 workers, not WorkerBase._worker_set (an earlier test's worker may still be in it)
    qtbot.waitUntil(lambda: len(results) == 40 and len(ended) == 40, timeout=20_000)
    assert warnings.showwarning is before

    def released() -> bool:
        gc.collect()
        return all(r() is None for r in refs)

    qtbot.waitUntil(released, timeout=20_000)


def test_background_work_is_dropped_once_the_interpreter_shuts_down(monkeypatch):
    """Python 3.12+ starts no thread once the main thread ended (a widget destroyed then):
    no traceback, the work dropped as before; any other refusal stays an error."""
    from segstudio._qt import workers

    message = ["can't create new thread at interpreter shutdown"]

    def refuse(self):
        raise RuntimeError(message[0])

    monkeypatch.setattr(threading.Thread, "start", refuse)
    ran = []
    thread = workers.run_in_background("segstudio-test", lambda: ran.append(1))
    assert ran == [] and thread not in workers._background and thread.name == "segstudio-test"
    message[0] = "some other refusal"
    with pytest.raises(RuntimeError, match="other refusal"):
        workers.run_in_background("segstudio-test", lambda: ran.append(1))
    assert ran == [] and thread not in workers._background
