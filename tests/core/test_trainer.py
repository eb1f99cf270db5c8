"""The trainer generator: events, checkpoints, resume, snapshot swaps, failures, OOM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.run import load_run
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
    infer_config,
    lr_at,
    train,
)

TINY = dict(features=(4, 8), patch_size=(32, 32), batch_size=2, num_threads=1, warmup=2, seed=0)


def blobs(shape=(48, 48)):
    """An image with a bright square and paintings for background (1) and square (2)."""
    img = np.zeros(shape, np.float32)
    img[16:32, 16:32] = 1.0
    img += np.random.default_rng(0).normal(0, 0.05, shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:40] = 1
    lab[20:26, 20:26] = 2
    truth = np.ones(shape, np.uint8)
    truth[16:32, 16:32] = 2
    return img, lab, truth


def run_all(gen):
    return list(gen)


def test_events_checkpoint_and_reload(tmp_path):
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=6, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    events = run_all(train(cfg, src, tmp_path / "run"))
    kinds = [type(e) for e in events]
    assert kinds[0] is Started and kinds[-1] is Finished
    assert WeightsUpdated in kinds and Checkpoint in kinds and Preview in kinds
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.iteration for p in progress] == list(range(1, 7))
    assert all(np.isfinite(p.loss) for p in progress)
    assert events[-1].reason == "iterations"
    loaded = load_run(tmp_path / "run")
    assert loaded.iteration == 6 and len(loaded.history) == 6
    assert loaded.config.normalization is not None
    assert {"config.json", "model.pt", "history.csv", "classes.json"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_seed_makes_cpu_training_deterministic(tmp_path):
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=4, **TINY)
    losses = []
    for i in range(2):
        src = SnapshotSource()
        src.put([TrainingImage(img, lab)])
        losses.append([e.loss for e in train(cfg, src) if isinstance(e, Progress)])
    assert losses[0] == losses[1]


def test_new_paintings_are_swapped_in_without_restart():
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=6, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    gen = train(cfg, src)
    updates = []
    for ev in gen:
        if isinstance(ev, WeightsUpdated):
            updates.append(ev)
        if isinstance(ev, Progress) and ev.iteration == 2:
            more = lab.copy()
            more[40:44, 2:40] = 1
            src.put([TrainingImage(img, more)])
    assert len(updates) == 2
    assert updates[1].iteration == 2 and updates[1].weights.counts[0] > updates[0].weights.counts[0]


def test_dense_labels_weigh_classes_alike_and_strokes_as_painted():
    """Weights are tempered by how densely the paintings cover their extent
    (:mod:`segstudio.core.weights`, *Dense paintings*): a fully annotated image trains with equal
    weights, strokes with the method's (``compute_weights`` on the same paintings, as the app
    shows them)."""
    from segstudio.core.weights import compute_weights

    img, lab, truth = blobs()
    got = {}
    for name, paint in (("dense", truth), ("strokes", lab)):
        cfg = infer_config(img.shape, paint, "exclusive", iterations=2, **TINY)
        src = SnapshotSource()
        src.put([TrainingImage(img, paint)])
        got[name] = next(e for e in train(cfg, src) if isinstance(e, WeightsUpdated)).weights
    assert got["dense"].coverage == 1.0 and got["dense"].weights == (1.0, 1.0)
    shown = compute_weights(lab, "exclusive")
    assert got["strokes"].coverage == pytest.approx(shown.coverage) and got["strokes"].coverage < 0.5
    np.testing.assert_allclose(got["strokes"].weights, shown.weights)
    assert got["strokes"].weights[1] > got["strokes"].weights[0]


def test_new_paintings_prepared_in_background_while_the_steps_go_on(monkeypatch):
    """With ``swap_in_background`` the steps go on with the old paintings while a newer
    snapshot is prepared (a slow preparation here), and it comes in as the synchronous swap
    would have made it; the thread ends with the run."""
    import threading

    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=None, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    more = lab.copy()
    more[40:44, 2:40] = 1
    release = threading.Event()
    prepare = Trainer._prepare

    def slow(self, item, work):
        if item.paintings is more:
            assert threading.current_thread() is not threading.main_thread()
            release.wait(10)
        return prepare(self, item, work)

    monkeypatch.setattr(Trainer, "_prepare", slow)
    monkeypatch.setattr("segstudio.core.trainer.BACKGROUND_SWAP_S", 0.0)  # the blobs prepare in no time
    trainer = Trainer(cfg, src, swap_in_background=True)
    updates, put_at = [], None
    gen = trainer.run()
    for ev in gen:
        if isinstance(ev, WeightsUpdated):
            updates.append(ev)
            if len(updates) == 2:
                break
        if isinstance(ev, Progress):
            if ev.iteration == 2:
                src.put([TrainingImage(img, more)])
                put_at = ev.iteration
            if ev.iteration == 6:  # four steps on the old paintings while it was prepared
                release.set()
    gen.close()
    assert put_at == 2 and updates[0].iteration == 0 and updates[1].iteration >= 6
    assert trainer._swapper is None
    monkeypatch.undo()
    sync = Trainer(cfg, SnapshotSource())
    sync.setup()
    sync.source.put([TrainingImage(img, more)])
    assert sync.maybe_swap().weights == updates[1].weights


def test_quick_preparations_stay_between_two_steps(monkeypatch):
    """Below BACKGROUND_SWAP_S a thread would cost more than it saves: the swap comes at the
    next step, as without ``swap_in_background``."""
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=5, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    trainer = Trainer(cfg, src, swap_in_background=True)
    swaps = []
    for ev in trainer.run():
        if isinstance(ev, WeightsUpdated):
            swaps.append(ev.iteration)
        if isinstance(ev, Progress) and ev.iteration == 2:
            assert trainer.gather_s < 0.3 and trainer._swapper is None
            more = lab.copy()
            more[40:44, 2:40] = 1
            src.put([TrainingImage(img, more)])
    assert swaps == [0, 2] and trainer._swapper is None


def test_a_background_preparation_error_ends_the_run_with_its_message(monkeypatch):
    monkeypatch.setattr("segstudio.core.trainer.BACKGROUND_SWAP_S", 0.0)
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=None, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    events = []
    for ev in Trainer(cfg, src, swap_in_background=True).run():
        events.append(ev)
        if isinstance(ev, Progress) and ev.iteration == 2:
            src.put([TrainingImage(img, np.zeros_like(lab), holdout=True)])  # nothing left to train on
        if isinstance(ev, Finished) or len(events) > 10_000:
            break
    failed = [e for e in events if isinstance(e, Failed)]
    assert len(failed) == 1 and failed[0].user_error and "nothing is painted" in failed[0].message


def test_closing_the_generator_saves_a_checkpoint(tmp_path):
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=None, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    gen = train(cfg, src, tmp_path / "run")
    for ev in gen:
        if isinstance(ev, Progress) and ev.iteration == 3:
            break
    gen.close()
    assert load_run(tmp_path / "run").iteration == 3


def _first_run(run_dir, iterations=2):
    """A run of the blobs trained ``iterations`` steps: its image, paint, config and source."""
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=iterations, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    run_all(train(cfg, src, run_dir))
    return img, lab, cfg, src


def test_resume_continues_history(tmp_path):
    img, lab, cfg, src = _first_run(tmp_path / "run", iterations=3)
    events = run_all(train(cfg, src, tmp_path / "run", resume=tmp_path / "run"))
    assert [e.iteration for e in events if isinstance(e, Progress)] == [4, 5, 6]
    assert len(load_run(tmp_path / "run").history) == 6


def test_resume_with_other_classes_fails_clearly(tmp_path):
    img, lab, _, src = _first_run(tmp_path / "run")
    lab3 = lab.copy()
    lab3[45, :] = 3
    src.put([TrainingImage(img, lab3)])
    cfg3 = infer_config(img.shape, lab3, "exclusive", iterations=2, **TINY)
    events = run_all(train(cfg3, src, tmp_path / "b", resume=tmp_path / "run"))
    assert isinstance(events[-1], Failed) and "2 classes" in events[-1].message and events[-1].user_error


def test_resume_with_another_network_says_what_differs(tmp_path):
    img, lab, _, src = _first_run(tmp_path / "run")
    ridge = infer_config(img.shape, lab, "exclusive", iterations=2, filter_texture=True, **TINY)
    events = run_all(train(ridge, src, tmp_path / "b", resume=tmp_path / "run"))
    assert isinstance(events[-1], Failed) and events[-1].user_error
    assert "(ridge filters off there, on here)" in events[-1].message
    region = infer_config(img.shape, lab, "exclusive", iterations=2, filter_context=(8.0,), **TINY)
    events = run_all(train(region, src, tmp_path / "c", resume=tmp_path / "run"))
    assert isinstance(events[-1], Failed) and events[-1].user_error
    assert "(region scales none there, 8 here)" in events[-1].message


def test_empty_paintings_fail_with_a_message():
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=2, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, np.zeros_like(lab))])
    events = run_all(train(cfg, src))
    assert isinstance(events[-1], Failed) and "nothing is painted" in events[-1].message


def test_crash_mid_training_keeps_last_checkpoint(tmp_path, monkeypatch):
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=3, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    run_all(train(cfg, src, tmp_path / "run"))
    before = (tmp_path / "run" / "model.pt").read_bytes()

    def boom(self):
        raise ValueError("simulated crash")

    monkeypatch.setattr(Trainer, "step", boom)
    events = run_all(train(cfg, src, tmp_path / "run", resume=tmp_path / "run"))
    assert isinstance(events[-1], Failed) and "simulated crash" in events[-1].message
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    load_run(tmp_path / "run")


def test_out_of_memory_halves_the_batch_and_goes_on(monkeypatch):
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=3, **{**TINY, "batch_size": 4})
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    real_step = Trainer.step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", flaky)
    events = run_all(train(cfg, src))
    notices = [e for e in events if isinstance(e, Notice)]
    assert notices and "batch size 2" in notices[0].message
    assert isinstance(events[-1], Finished) and events[-1].iteration == 3


@pytest.mark.parametrize("loss", ["bce", "dice_bce"])
def test_multilabel_3d_trains(loss):
    rng = np.random.default_rng(0)
    img = rng.random((6, 24, 24)).astype(np.float32)
    lab = np.zeros((2, 6, 24, 24), np.uint8)
    lab[0, 2, 2:6, 2:6] = 1
    lab[0, 3, 10:14, 10:14] = 2
    lab[1, 2, 12:16, 2:6] = 1
    lab[1, 4, 20:22, 2:6] = 2
    tiny = {**TINY, "patch_size": (4, 16, 16), "spacing": (3.0, 1.0, 1.0)}
    cfg = infer_config(img.shape, lab, "multilabel", iterations=3, loss=loss, **tiny)
    assert cfg.n_classes == 2 and cfg.spatial_dims == 3
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    events = run_all(train(cfg, src))
    assert isinstance(events[-1], Finished), events[-1]


def test_validation_reports_dice():
    img, lab, truth = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=4, val_every=2, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    vals = [e for e in train(cfg, src, validation=(0, truth)) if isinstance(e, Validation)]
    assert [v.iteration for v in vals] == [2, 4]
    assert all(0.0 <= d <= 1.0 for v in vals for d in v.dice)


def test_lr_schedule_warms_up_and_decays():
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert lr_at(cfg, 0, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 10, 0) > lr_at(cfg, 50, 0) > lr_at(cfg, 99, 0) >= 0.1
    timed = cfg.replace(iterations=None, minutes=1.0)
    assert lr_at(timed, 20, 59.9) == pytest.approx(0.1, rel=1e-2)
    forever = cfg.replace(iterations=None)
    assert lr_at(forever, 500, 1e6) == 1.0


@pytest.mark.parametrize("warmup", [3.0, 10.0])
def test_averaged_weights_follow_the_documented_recursion(monkeypatch, warmup):
    """The averaged weights after n steps equal an explicit recursion over the weights each
    step left, d_n = min(ema_decay, (1 + n) / (ema_warmup + n)), from the initial weights."""
    img, lab, _ = blobs()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=6, ema_decay=0.6, ema_warmup=warmup, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    trainer = Trainer(cfg, src, None)
    seen: list[dict[str, torch.Tensor]] = []
    hook = Trainer.after_optimizer_step

    def record(self):
        hook(self)
        seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    monkeypatch.setattr(Trainer, "after_optimizer_step", record)
    trainer.setup()
    trainer.maybe_swap()  # the paintings in: what run() does before the first step
    reference = {k: v.detach().clone().double() for k, v in trainer.model.state_dict().items()}
    for _ in range(6):
        trainer.step()
    assert len(seen) == 6
    for n, weights in enumerate(seen, start=1):
        d = min(0.6, (1 + n) / (warmup + n))
        for k, v in weights.items():
            if v.dtype.is_floating_point:
                reference[k] = d * reference[k] + (1 - d) * v.double()
    name = next(k for k, v in reference.items() if v.ndim == 4)  # a convolution's weights
    averaged = trainer.averaged_state()
    for k, ref in reference.items():
        if averaged[k].dtype.is_floating_point:
            torch.testing.assert_close(averaged[k].double(), ref, rtol=1e-5, atol=1e-6)
    # the average is not the current weights (it would pass for ema off)
    assert not torch.allclose(averaged[name], trainer.model.state_dict()[name])
    # counters (BatchNorm's num_batches_tracked) are the model's, not averaged
    counters = {k: v for k, v in trainer.model.state_dict().items() if not v.dtype.is_floating_point}
    assert counters and all(int(v) == 6 for v in counters.values())
    assert all(torch.equal(averaged[k], v) for k, v in counters.items())


def test_ema_warmup_must_leave_the_average_moving():
    from segstudio.core.errors import UserInputError

    img, lab, _ = blobs()
    with pytest.raises(UserInputError, match="ema_warmup"):
        infer_config(img.shape, lab, "exclusive", ema_warmup=1.0, **TINY)


@pytest.mark.parametrize("infer", [True, False])
def test_closed_outlines_add_a_second_target_and_leave_the_paintings_alone(infer):
    img, _, _ = blobs()
    lab = np.zeros(img.shape, np.uint8)
    lab[2:5, 2:40] = 1
    lab[15, 15:33] = lab[32, 15:33] = lab[15:33, 15] = lab[15:33, 32] = 3  # traced outline
    lab[23, 20:28] = 2  # a stroke inside it
    painted = lab.copy()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=3, infer_outlines=infer,
                       infer_background=False, **TINY)  # the outline rule alone
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    weights = trainer.swap_snapshot(_snapshot(img, lab))
    np.testing.assert_array_equal(lab, painted)  # the user's paintings are never changed
    assert weights.counts == tuple(np.bincount(lab.ravel(), minlength=4)[1:])  # weights: the paint
    if infer:
        (inferred,) = trainer.prepared[0].inferred
        assert (inferred[16:32, 16:32][lab[16:32, 16:32] == 0] == 2).all()  # the whole inside
        assert (inferred == 1).any()  # and a background band outside
        assert trainer.inferred_loss_fns[0] is not None
        assert trainer.step() > 0
    else:
        assert trainer.prepared[0].inferred == [] and trainer.inferred_loss_fns == []


def _snapshot(img, lab):
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    return src.latest()


def test_multilabel_outlines_add_a_second_target_too():
    """The same content in multi-label form: object and boundary channels, a traced outline."""
    img, _, _ = blobs()
    excl = np.zeros(img.shape, np.uint8)
    excl[2:5, 2:40] = 1
    excl[15, 15:33] = excl[32, 15:33] = excl[15:33, 15] = excl[15:33, 32] = 3
    excl[23, 20:28] = 2
    lab = np.zeros((2, *img.shape), np.uint8)
    lab[0][excl == 1] = 2
    lab[0][excl >= 2] = 1  # object: the outline and the inside stroke
    lab[1][excl != 3] = np.where(excl[excl != 3] > 0, 2, 0)  # boundary: absent where not the outline
    lab[1][excl == 3] = 1
    painted = lab.copy()
    cfg = infer_config(img.shape, lab, "multilabel", iterations=3, loss="bce", infer_background=False, **TINY)
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(img, lab))
    np.testing.assert_array_equal(lab, painted)
    (inferred,) = trainer.prepared[0].inferred
    inside = (slice(16, 32), slice(16, 32))
    assert (inferred[0][inside][lab[0][inside] == 0] == 1).all()  # the object's whole inside
    assert (inferred[1][inside][lab[1][inside] == 0] == 2).all()  # is not boundary
    assert (inferred[0] == 2).any()  # a band outside is not object
    x, y, m = trainer.sampler.batch(2)
    assert y.shape[1] == m.shape[1] == 4  # paint channels, then inferred channels
    assert trainer.inferred_loss_fns[0] is not None and trainer.step() > 0


def test_each_implied_rule_is_its_own_loss_term():
    """Outline fills and background-like pixels: two terms, each weighted by its own counts."""
    img, _, _ = blobs()
    lab = np.zeros(img.shape, np.uint8)
    lab[2:5, 2:40] = 1
    lab[15, 15:33] = lab[32, 15:33] = lab[15:33, 15] = lab[15:33, 32] = 3
    lab[23, 20:28] = 2
    cfg = infer_config(img.shape, lab, "exclusive", iterations=3, infer_background=True, **TINY)
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(img, lab))
    assert trainer.rules == ("outlines", "background")
    outline, background = trainer.prepared[0].inferred
    assert background is None or not ((outline > 0) & (background > 0)).any(), "the outline rule wins"
    x, y, _ = trainer.sampler.batch(2)
    assert y.shape[1] == 3
    assert len(trainer.inferred_loss_fns) == 2 and trainer.step() > 0


@pytest.mark.parametrize("textures", [False, True])
def test_the_background_rule_learnt_follows_the_runs_textures(monkeypatch, blurred_disk, textures):
    """What the trainer learns of the background rule is :func:`implied_labels` with the run's
    *textures* (``filter_texture``): the threshold stays at the background with textures on."""
    from segstudio.core import background
    from segstudio.core.implied import implied_labels

    monkeypatch.setattr(background, "TOWARDS_OBJECTS", 0.2)
    monkeypatch.setattr(background, "TOWARDS_OBJECTS_TEXTURES", 0.0)
    img, lab, _ = blurred_disk
    cfg = infer_config(img.shape, lab, "exclusive", iterations=1, infer_outlines=False, infer_background=True,
                       filter_texture=textures, **TINY)
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(img, lab))
    (learnt,) = trainer.prepared[0].inferred
    expected = {t: implied_labels(lab, img, "exclusive", outlines=False, background=True, textures=t)["background"]
                for t in (False, True)}
    assert (expected[False] == 1).sum() > (expected[True] == 1).sum()
    np.testing.assert_array_equal(learnt == 1, expected[textures] == 1)


@pytest.mark.parametrize("wide", [False, True])
def test_the_background_rule_learnt_follows_the_runs_wide_context(spots_on_a_ramp, wide):
    """With *wide context* (an uneven background) the trainer learns the background rule read
    against the local background (:func:`implied_labels` with ``uneven``)."""
    from segstudio.core.implied import implied_labels

    img, lab, _ = spots_on_a_ramp()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=1, infer_outlines=False, infer_background=True,
                       wide_context=wide, **TINY)
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(img, lab))
    (learnt,) = trainer.prepared[0].inferred
    expected = {u: implied_labels(lab, img, "exclusive", outlines=False, background=True, uneven=u)["background"]
                for u in (False, True)}
    assert (expected[True] == 1).sum() > (expected[False] == 1).sum()
    np.testing.assert_array_equal(learnt == 1, expected[wide] == 1)


@pytest.mark.parametrize("level", [False, True])
def test_the_background_rule_learnt_on_a_volume_follows_the_runs_level_slices(spots_on_a_ramp, level):
    """On a volume, *level slices* is what takes the background for uneven: the trainer learns
    the background rule read against the local background in each plane, on the levelled
    volume (:func:`implied_labels` with ``uneven`` and the offsets)."""
    from segstudio.core.data import image_stats
    from segstudio.core.implied import implied_labels

    img, paint, _ = spots_on_a_ramp()
    vol = np.stack([img + 2.0 * z for z in range(4)]).astype(np.float32)  # a background that rises along z
    lab = np.zeros(vol.shape, np.uint8)
    lab[1] = paint
    cfg = infer_config(vol.shape, lab, "exclusive", iterations=1, infer_outlines=False, infer_background=True,
                       level_slices=level, **{**TINY, "patch_size": (4, 32, 32)})
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(vol, lab))
    (learnt,) = trainer.prepared[0].inferred
    offsets = image_stats(vol, level_slices=True).offsets if level else ()
    expected = implied_labels(lab, vol, "exclusive", outlines=False, background=True, offsets=offsets,
                              uneven=level)["background"]
    np.testing.assert_array_equal(learnt == 1, expected == 1)
    plain = implied_labels(lab, vol, "exclusive", outlines=False, background=True, offsets=offsets)["background"]
    assert (expected == 1).sum() > (plain == 1).sum() if level else np.array_equal(expected, plain)


def test_region_channels_come_from_the_whole_image_once():
    """With region scales the trainer computes the image's region channels once (kept across
    paint changes) and its patches carry them; without, patches are the image alone."""
    img, lab, _ = blobs((48, 48))
    cfg = infer_config(img.shape, lab, "exclusive", iterations=2, filter_context=(4.0,), **TINY)
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    trainer.swap_snapshot(_snapshot(img, lab))
    (prepared,) = trainer.prepared
    assert prepared.regions is not None and prepared.regions.shape == (3, 48, 48)
    x, _, _ = trainer.sampler.batch(2)
    assert x.shape == (2, 4, 32, 32)
    assert np.isfinite(trainer.step())
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    first = src.latest()
    src.put([TrainingImage(first.images[0].image, lab.copy())])  # a stroke later, same image
    trainer.swap_snapshot(first)
    regions = trainer.prepared[0].regions
    trainer.swap_snapshot(src.latest())
    assert trainer.prepared[0].regions is regions
    plain = Trainer(infer_config(img.shape, lab, "exclusive", iterations=2, **TINY), SnapshotSource(), None)
    plain.setup()
    plain.swap_snapshot(_snapshot(img, lab))
    assert plain.prepared[0].regions is None and plain.sampler.batch(2)[0].shape == (2, 1, 32, 32)


def test_infer_config_picks_the_modes_first_loss_unless_named():
    img, lab, _ = blobs()
    multi = np.stack([(lab == 2) * 1 + (lab == 1) * 2, (lab == 1) * 1 + (lab == 2) * 2]).astype(np.uint8)
    assert infer_config(img.shape, lab, "exclusive").loss == "ce"
    assert infer_config(img.shape, multi, "multilabel").loss == "bce"
    assert infer_config(img.shape, multi, "multilabel", loss="dice").loss == "dice"
    assert infer_config(img.shape, multi, "multilabel", loss=None).loss == "bce"  # the CLI's unnamed --loss
    # a multi-label config made without naming a loss trains
    cfg = infer_config(img.shape, multi, "multilabel", iterations=2, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, multi)])
    assert isinstance(list(train(cfg, src))[-1], Finished)
