"""The trainer owns its ending (``run(stop=...)``) and the class weights (pins travel with
the paintings in the snapshot)."""

from __future__ import annotations

import threading

from segstudio.core.config import TrainConfig
from segstudio.core.run import load_run
from segstudio.core.trainer import Checkpoint, Finished, Preview, Progress, Trainer, WeightsUpdated


def _config(**kw):
    return TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16), batch_size=2, amp=False, device="cpu",
                       seed=0, iterations=None, checkpoint_every_s=3600.0, preview_every_s=3600.0, **kw)


def test_stop_ends_like_a_planned_end(two_strokes, tmp_path):
    _, _, source = two_strokes()
    stop = threading.Event()
    events = []
    for event in Trainer(_config(), source, tmp_path / "run").run(stop=stop):
        events.append(event)
        if isinstance(event, Progress) and event.iteration == 3:
            stop.set()
    tail = [type(e) for e in events[-3:]]
    assert tail == [Checkpoint, Preview, Finished]
    assert events[-1].reason == "stopped" and events[-1].iteration == 3
    assert load_run(tmp_path / "run").iteration == 3


def test_pins_travel_with_the_paintings(two_strokes, tmp_path):
    image, paint, source = two_strokes()
    stop = threading.Event()
    reported = []
    for event in Trainer(_config(pinned_weights=((0, 0.5),)), source, tmp_path / "run").run(stop=stop):
        if isinstance(event, WeightsUpdated):
            reported.append(event.weights.weights)
            if len(reported) == 1:
                source.put(source.latest().images, pins={1: 3.0})
        if isinstance(event, Progress) and len(reported) == 2:
            stop.set()
    assert reported[0][0] == 0.5  # the config's pins, before any pins were sent
    assert reported[1][1] == 3.0 and reported[1][0] != 0.5  # the snapshot's pins replace them
    assert load_run(tmp_path / "run").config.pinned_weights == ((1, 3.0),)
