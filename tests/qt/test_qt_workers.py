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
