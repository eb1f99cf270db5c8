"""ComputeTurns: a fair lock so that training steps and previews take turns on a CPU."""

from __future__ import annotations

import contextlib
import threading
import time

import torch

from segstudio.core.device import ComputeTurns
from segstudio.core.trainer import Trainer, infer_config


def test_turns_are_first_come_first_served_and_reentrant():
    turns = ComputeTurns()
    order: list[str] = []
    stop = threading.Event()

    def greedy() -> None:  # the trainer's loop: takes a turn again right after releasing it
        while not stop.is_set():
            with turns:
                with turns:  # re-entrant in the same thread
                    order.append("step")
                    time.sleep(0.002)

    thread = threading.Thread(target=greedy)
    thread.start()
    time.sleep(0.02)
    asked = len(order)
    with turns:  # a preview asks for a turn: it gets the next one, however greedy the trainer
        got = len(order)
        order.append("preview")
    stop.set()
    thread.join()
    assert got - asked <= 1, f"{got - asked} steps went first"
    assert order.count("step") > got  # and the trainer goes on afterwards


def test_no_turns_off_the_cpu():
    assert isinstance(ComputeTurns.for_device("cpu"), ComputeTurns)
    if torch.cuda.is_available():
        assert isinstance(ComputeTurns.for_device("cuda"), contextlib.nullcontext)


def test_the_trainer_holds_a_turn_for_each_step(two_strokes):
    image, paint, source = two_strokes(32)
    held: list[bool] = []

    class Spy(ComputeTurns):
        def __enter__(self):
            held.append(True)
            return super().__enter__()

    cfg = infer_config(image.shape, paint, "exclusive", iterations=3, features=(4, 8), patch_size=(32, 32),
                       batch_size=2, device="cpu", seed=0, checkpoint_every_s=1e9)
    list(Trainer(cfg, source, None, turns=Spy()).run())
    assert len(held) == 3
