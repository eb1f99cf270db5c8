"""Training in a child process (core.trainer_process): the same events as in a thread, new
paintings reach the child, stop and pause work, a dead child is one clear failure, and the CPU
turns are shared with it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch

from segstudio.core.data import TrainingImage
from segstudio.core.device import ComputeTurns
from segstudio.core.trainer import Checkpoint, Failed, Finished, Preview, Progress, Started, WeightsUpdated, infer_config
from segstudio.core.trainer_process import PROCESS_MAX_BYTES, TrainerProcess, process_refusal


def _config(image, paint, **kw):
    base = dict(features=(4, 8), patch_size=(32, 32), batch_size=2, device="cpu", seed=0,
                checkpoint_every_s=1e9, preview_every_s=0.0)
    return infer_config(image.shape, paint, "exclusive", **{**base, **kw})


def _image():
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    paint = np.zeros((48, 48), np.uint8)
    paint[4, 4:12] = 1
    paint[20, 10:20] = 2
    return image, paint


def test_a_run_in_a_child_gives_the_trainers_events_and_its_checkpoint(tmp_path):
    image, paint = _image()
    proc = TrainerProcess().start(_config(image, paint, iterations=5), tmp_path / "run")
    proc.put([TrainingImage(image, paint)])
    events = list(proc.events())
    kinds = [type(e) for e in events]
    assert kinds[0] is Started and kinds[-1] is Finished
    assert [e.iteration for e in events if isinstance(e, Progress)] == [1, 2, 3, 4, 5]
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and set(previews[-1].state_dict) and all(
        isinstance(v, torch.Tensor) for v in previews[-1].state_dict.values())
    assert any(isinstance(e, Checkpoint) for e in events)
    assert (tmp_path / "run" / "model.pt").exists()  # written by the child
    assert events[-1].reason == "iterations"
    assert not proc.process.is_alive()


def test_new_paintings_reach_the_child_and_stop_ends_it_like_the_trainers_stop(tmp_path):
    image, paint = _image()
    proc = TrainerProcess().start(_config(image, paint, iterations=None, minutes=5), tmp_path / "run")
    proc.put([TrainingImage(image, paint)])
    stop = threading.Event()
    weights: list = []
    more = paint.copy()
    more[30, 5:40] = 1  # many more class-1 pixels: its weight falls
    iterations = 0
    finished = None
    for event in proc.events(stop):
        if isinstance(event, Progress):
            iterations = event.iteration
            if iterations == 3:
                proc.put([TrainingImage(image, more)])  # the same image array: not sent again
        elif isinstance(event, WeightsUpdated):
            weights.append(event.weights.weights)
            if len(weights) == 2:
                stop.set()
        elif isinstance(event, Finished):
            finished = event
    assert len(weights) == 2 and weights[1][0] < weights[0][0]
    assert finished is not None and finished.reason == "stopped" and finished.iteration >= 3
    assert len(proc._sent) == 0  # closed: the arrays are let go


def test_pause_holds_the_child_until_resumed(tmp_path):
    image, paint = _image()
    proc = TrainerProcess().start(_config(image, paint, iterations=None, minutes=5), tmp_path / "run")
    proc.put([TrainingImage(image, paint)])
    events = proc.events()
    while not isinstance(next(events), Progress):
        pass
    proc.pause()
    time.sleep(0.5)  # the step under way ends, then the child waits
    seen = []
    while True:  # drain what came before the pause took hold
        try:
            seen.append(proc._events.get(timeout=0.5))
        except Exception:  # noqa: BLE001 - queue.Empty
            break
    assert proc._events.empty()
    time.sleep(0.5)
    assert proc._events.empty()  # nothing while paused
    proc.resume()
    assert proc._events.get(timeout=30) is not None
    events.close()  # closing the generator stops the child and waits for it
    assert not proc.process.is_alive()


def test_a_child_that_dies_is_one_failure_with_its_exit_code(tmp_path):
    image, paint = _image()
    proc = TrainerProcess().start(_config(image, paint, iterations=None, minutes=5), tmp_path / "run")
    proc.put([TrainingImage(image, paint)])
    out, killed = [], False
    for event in proc.events():
        out.append(event)
        if isinstance(event, Progress) and not killed:
            os.kill(proc.process.pid, signal.SIGKILL)  # as the system's out-of-memory killer would
            killed = True
    failed = [e for e in out if isinstance(e, Failed)]
    assert len(failed) == 1 and "ended unexpectedly" in failed[0].message and "-9" in failed[0].message


def test_the_child_takes_the_shared_turns(tmp_path):
    image, paint = _image()
    turns = ComputeTurns(shared=True)
    proc = TrainerProcess(turns=turns).start(_config(image, paint, iterations=None, minutes=5), tmp_path / "run")
    proc.put([TrainingImage(image, paint)])
    events = proc.events()
    while not isinstance(next(events), Progress):
        pass
    before = turns._tickets[0]
    with turns:  # while this process holds the turn the child takes none
        held = turns._tickets[1]
        time.sleep(0.5)
        assert turns._tickets[1] == held
    time.sleep(0.5)
    assert turns._tickets[1] > held + 1 and turns._tickets[0] > before
    events.close()


def test_what_trains_in_a_thread(tmp_path):
    image, paint = _image()
    cfg = _config(image, paint, iterations=1)
    assert process_refusal(cfg, [TrainingImage(image, paint)], "cpu") is None
    assert process_refusal(cfg, [TrainingImage(image, paint)], "cuda") == "training on cuda"
    mapped = np.memmap(tmp_path / "image.raw", dtype=np.float32, mode="w+", shape=image.shape)
    assert process_refusal(cfg, [TrainingImage(mapped, paint)], "cpu") == "an image is not in memory"
    big = np.broadcast_to(image[:1], (PROCESS_MAX_BYTES // image[:1].nbytes + 1, 48))
    assert process_refusal(cfg, [TrainingImage(big, paint)], "cpu").endswith("MiB of images and paintings")


def test_turns_that_are_not_shared_do_not_go_to_a_process():
    import pickle

    with pytest.raises(TypeError, match="shared=True"):
        pickle.dumps(ComputeTurns())


ORPHAN = """
import sys, time
import numpy as np
from segstudio.core.data import TrainingImage
from segstudio.core.trainer import infer_config
from segstudio.core.trainer_process import TrainerProcess

if __name__ == "__main__":
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    paint = np.zeros((48, 48), np.uint8)
    paint[4, 4:12] = 1
    paint[20, 10:20] = 2
    cfg = infer_config(image.shape, paint, "exclusive", features=(4, 8), patch_size=(32, 32), batch_size=2,
                       device="cpu", seed=0, iterations=None, minutes=5, checkpoint_every_s=1e9)
    proc = TrainerProcess().start(cfg, None)
    proc.put([TrainingImage(image, paint)])
    events = proc.events()
    next(events)
    print(proc.process.pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_child_whose_app_was_killed_stops(tmp_path):
    import subprocess

    script = tmp_path / "app.py"
    script.write_text(ORPHAN)
    app = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(app.stdout.readline())
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":  # ended; its reaper (init) is slow
                    break
            time.sleep(0.2)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the training process outlived its app by a minute")
    finally:
        app.kill()


def test_a_spare_that_never_ran_ends_when_closed():
    proc = TrainerProcess()
    assert proc.alive and not proc.started
    proc.close()
    assert not proc.process.is_alive() and not proc.alive
    assert proc.process.exitcode == 0


def test_a_child_that_ends_after_finished_is_no_failure():
    import pickle

    proc = TrainerProcess()
    proc._events.put(pickle.dumps(Finished(3, 1.0, "iterations", None)))  # as if its run ended...
    time.sleep(0.5)
    os.kill(proc.process.pid, signal.SIGKILL)  # ...and it died before its last word
    assert [type(e) for e in proc.events()] == [Finished]
