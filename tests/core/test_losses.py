"""Tests of segstudio.core.losses against slow, obvious per-pixel reference implementations."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.annotations import EXCLUSIVE, IGNORE_INDEX, MULTILABEL
from segstudio.core.losses import (
    LOSS_NAMES,
    SegmentationLoss,
    broadcast_pos_weight,
    make_loss,
)

NUM_CLASSES = 3
SHAPES = {2: (2, NUM_CLASSES, 4, 5), 3: (2, NUM_CLASSES, 3, 4, 5)}
WEIGHTS = (0.5, 2.0, 1.25)
TOL = 1e-5
SMOOTH = 1e-5
GAMMA = 2.0
PAINT_FRACTION = 0.6

ALL_LOSSES = [(mode, name) for mode, names in LOSS_NAMES.items() for name in names]


# ---------------------------------------------------------------------------------------------
# input builders
# ---------------------------------------------------------------------------------------------


def _logits(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32
            ) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (2.0 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)


def _exclusive_target(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """Random labels (N, *spatial) with ~40 % unpainted; every class painted at least once."""
    gen = torch.Generator().manual_seed(seed)
    n, c, *spatial = shape
    target = torch.randint(0, c, (n, *spatial), generator=gen)
    unpainted = torch.rand((n, *spatial), generator=gen) > PAINT_FRACTION
    target[unpainted] = IGNORE_INDEX
    flat = target.view(-1)
    flat[:c] = torch.arange(c)
    return target


def _multilabel_target(shape: tuple[int, ...], seed: int = 1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = (torch.rand(shape, generator=gen) > 0.5).float()
    mask = (torch.rand(shape, generator=gen) < PAINT_FRACTION).float()
    return target, mask


def _inputs(mode: str, ndim: int, seed: int = 0, dtype: torch.dtype = torch.float32
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    shape = SHAPES[ndim]
    logits = _logits(shape, seed, dtype)
    if mode == EXCLUSIVE:
        return logits, _exclusive_target(shape, seed + 1), None
    target, mask = _multilabel_target(shape, seed + 1)
    return logits, target, mask


# ---------------------------------------------------------------------------------------------
# references: python loops over painted pixels, float64 numpy
# ---------------------------------------------------------------------------------------------


def _log_softmax(v: np.ndarray) -> np.ndarray:
    v = v - v.max()
    return v - math.log(np.exp(v).sum())


def _painted_pixels(target: np.ndarray):
    """Yield (index, label) of painted pixels of an (N, *spatial) label map."""
    for idx in np.ndindex(*target.shape):
        if target[idx] != IGNORE_INDEX:
            yield idx, int(target[idx])


def _class_vector(logits: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    return logits[(idx[0], slice(None), *idx[1:])]


def ref_ce(logits: np.ndarray, target: np.ndarray, w: np.ndarray | None) -> float:
    num = den = 0.0
    for idx, t in _painted_pixels(target):
        wt = 1.0 if w is None else w[t]
        num += wt * -_log_softmax(_class_vector(logits, idx))[t]
        den += wt
    return num / den if den > 0 else 0.0


def ref_focal(logits: np.ndarray, target: np.ndarray, w: np.ndarray | None,
              gamma: float = GAMMA) -> float:
    total, count = 0.0, 0
    for idx, t in _painted_pixels(target):
        logp = _log_softmax(_class_vector(logits, idx))[t]
        alpha = 1.0 if w is None else w[t]
        total += alpha * (1.0 - math.exp(logp)) ** gamma * -logp
        count += 1
    return total / count if count else 0.0


def _exclusive_sums(logits: np.ndarray, target: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = logits.shape[1]
    inter, psum, tsum = np.zeros(c), np.zeros(c), np.zeros(c)
    for idx, t in _painted_pixels(target):
        p = np.exp(_log_softmax(_class_vector(logits, idx)))
        psum += p
        tsum[t] += 1
        inter[t] += p[t]
    return inter, psum, tsum


def ref_gdl(logits: np.ndarray, target: np.ndarray, smooth: float = SMOOTH,
            normalise: bool = True) -> float:
    inter, psum, tsum = _exclusive_sums(logits, target)
    w = np.array([1.0 / t**2 if t > 0 else 0.0 for t in tsum])
    if w.max() == 0:
        return 0.0
    if normalise:
        w = w / w.max()
    return 1.0 - (2 * (w * inter).sum() + smooth) / ((w * (psum + tsum)).sum() + smooth)


def ref_exclusive_dice(logits: np.ndarray, target: np.ndarray, smooth: float = SMOOTH) -> float:
    inter, psum, tsum = _exclusive_sums(logits, target)
    losses = [1.0 - (2 * inter[c] + smooth) / (psum[c] + tsum[c] + smooth)
              for c in range(len(tsum)) if tsum[c] > 0]
    return float(np.mean(losses)) if losses else 0.0


def ref_dice_ce(logits: np.ndarray, target: np.ndarray, w: np.ndarray | None) -> float:
    return ref_ce(logits, target, w) + ref_exclusive_dice(logits, target)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ref_bce(logits: np.ndarray, target: np.ndarray, mask: np.ndarray, pw: np.ndarray | None,
            gamma: float = 0.0) -> float:
    total = 0.0
    for idx in np.ndindex(*logits.shape):
        if mask[idx] == 0:
            continue
        p = _sigmoid(logits[idx])
        t = target[idx]
        pos_w = 1.0 if pw is None else pw[idx[1]]
        term = -(pos_w * t * (1 - p) ** gamma * math.log(p)
                 + (1 - t) * p**gamma * math.log(1 - p))
        total += term * mask[idx]
    return total / max(mask.sum(), 1.0)


def ref_ml_dice(logits: np.ndarray, target: np.ndarray, mask: np.ndarray,
                smooth: float = SMOOTH) -> float:
    c = logits.shape[1]
    inter, psum, tsum, msum = np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c)
    for idx in np.ndindex(*logits.shape):
        if mask[idx] == 0:
            continue
        k = idx[1]
        p = _sigmoid(logits[idx])
        inter[k] += p * target[idx]
        psum[k] += p
        tsum[k] += target[idx]
        msum[k] += 1
    losses = [1.0 - (2 * inter[k] + smooth) / (psum[k] + tsum[k] + smooth)
              for k in range(c) if msum[k] > 0]
    return float(np.mean(losses)) if losses else 0.0


def reference(mode: str, name: str, logits: torch.Tensor, target: torch.Tensor,
              mask: torch.Tensor | None, weights: tuple[float, ...] | None) -> float:
    x = logits.double().numpy()
    t = target.numpy() if mode == EXCLUSIVE else target.double().numpy()
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if mode == EXCLUSIVE:
        table: dict[str, Callable[[], float]] = {
            "ce": lambda: ref_ce(x, t, w),
            "focal": lambda: ref_focal(x, t, w),
            "gdl": lambda: ref_gdl(x, t),
            "dice_ce": lambda: ref_dice_ce(x, t, w),
        }
    else:
        m = mask.double().numpy()
        table = {
            "bce": lambda: ref_bce(x, t, m, w),
            "focal": lambda: ref_bce(x, t, m, w, gamma=GAMMA),
            "dice": lambda: ref_ml_dice(x, t, m),
            "dice_bce": lambda: ref_bce(x, t, m, w) + ref_ml_dice(x, t, m),
        }
    return table[name]()


# ---------------------------------------------------------------------------------------------
# value tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ndim", [2, 3], ids=["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), ALL_LOSSES)
def test_loss_matches_reference(mode: str, name: str, ndim: int, weighted: bool) -> None:
    weights = WEIGHTS if weighted else None
    logits, target, mask = _inputs(mode, ndim)
    loss = make_loss(mode, name, weights)(logits, target, mask)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    expected = reference(mode, name, logits, target, mask, weights)
    assert loss.item() == pytest.approx(expected, rel=TOL, abs=TOL)


def test_ce_equals_torch_semantics_with_weights() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    w = torch.tensor(WEIGHTS)
    ours = make_loss(EXCLUSIVE, "ce", w)(logits, target)
    torch_ref = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(ours, torch_ref)


def test_gdl_max_normalisation_does_not_change_unsmoothed_value() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 3)
    loss = make_loss(EXCLUSIVE, "gdl", smooth=0.0)(logits, target)
    raw = ref_gdl(logits.double().numpy(), target.numpy(), smooth=0.0, normalise=False)
    assert loss.item() == pytest.approx(raw, rel=TOL, abs=TOL)


def test_focal_gamma_zero_reduces_to_ce_and_bce() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    focal = make_loss(EXCLUSIVE, "focal", gamma=0.0)(logits, target)
    ce = make_loss(EXCLUSIVE, "ce")(logits, target)
    torch.testing.assert_close(focal, ce)
    logits, target, mask = _inputs(MULTILABEL, 2)
    focal = make_loss(MULTILABEL, "focal", WEIGHTS, gamma=0.0)(logits, target, mask)
    bce = make_loss(MULTILABEL, "bce", WEIGHTS)(logits, target, mask)
    torch.testing.assert_close(focal, bce)


@pytest.mark.parametrize(("mode", "name"), [(EXCLUSIVE, "gdl"), (EXCLUSIVE, "dice_ce"),
                                            (MULTILABEL, "dice"), (MULTILABEL, "dice_bce")])
def test_dice_losses_near_zero_for_confident_correct_prediction(mode: str, name: str) -> None:
    shape = SHAPES[2]
    big = 30.0
    if mode == EXCLUSIVE:
        target = _exclusive_target(shape)
        labels = target.clamp_min(0)
        logits = big * F.one_hot(labels, NUM_CLASSES).movedim(-1, 1).float() - big / 2
        loss = make_loss(mode, name)(logits, target)
    else:
        target, mask = _multilabel_target(shape)
        logits = big * (2 * target - 1)
        loss = make_loss(mode, name)(logits, target, mask)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# named pitfalls
# ---------------------------------------------------------------------------------------------


def test_pos_weight_shape_C_raises_in_plain_torch_and_works_via_factory() -> None:  # noqa: N802
    logits, target, mask = _inputs(MULTILABEL, 2)
    n, c, h, w = logits.shape
    assert c != w
    with pytest.raises(RuntimeError):
        nn.BCEWithLogitsLoss(pos_weight=torch.ones(c))(logits, target)
    pos_weight = torch.tensor(WEIGHTS)
    loss = make_loss(MULTILABEL, "bce", pos_weight)(logits, target, mask)
    expected = reference(MULTILABEL, "bce", logits, target, mask, WEIGHTS)
    assert loss.item() == pytest.approx(expected, rel=TOL, abs=TOL)
    # and the helper's shape broadcasts over the spatial dims as the class axis
    assert broadcast_pos_weight(pos_weight, 2).shape == (c, 1, 1)
    assert broadcast_pos_weight(pos_weight, 3).shape == (c, 1, 1, 1)
    manual = nn.BCEWithLogitsLoss(reduction="none",
                                  pos_weight=broadcast_pos_weight(pos_weight, 2))
    torch.testing.assert_close(loss, (manual(logits, target) * mask).sum() / mask.sum())


def test_broadcast_pos_weight_rejects_non_vector() -> None:
    with pytest.raises(ValueError, match="1-D"):
        broadcast_pos_weight(torch.ones(2, 2), 2)


def test_ce_takes_logits_not_softmax() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    ours = make_loss(EXCLUSIVE, "ce")(logits, target)
    on_logits = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    on_softmax = F.cross_entropy(logits.softmax(1), target, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(ours, on_logits)
    assert abs(ours.item() - on_softmax.item()) > 0.1


@pytest.mark.parametrize("name", LOSS_NAMES[EXCLUSIVE])
def test_ce_rejects_one_hot_target(name: str) -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    loss = make_loss(EXCLUSIVE, name)
    one_hot = F.one_hot(target.clamp_min(0), NUM_CLASSES).movedim(-1, 1)
    with pytest.raises(ValueError, match="one-hot"):
        loss(logits, one_hot.float())
    with pytest.raises(ValueError, match="one-hot"):
        loss(logits, one_hot)  # integer one-hot: wrong shape
    with pytest.raises(ValueError, match="integer label map"):
        loss(logits, target.float())


def test_exclusive_rejects_out_of_range_labels() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    target[0, 0, 0] = NUM_CLASSES
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        make_loss(EXCLUSIVE, "ce")(logits, target)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ndim", [2, 3], ids=["2d", "3d"])
@pytest.mark.parametrize(("mode", "name"), ALL_LOSSES)
def test_all_unpainted_gives_zero_loss_and_zero_grad(mode: str, name: str, ndim: int,
                                                     weighted: bool) -> None:
    logits, target, mask = _inputs(mode, ndim)
    if mode == EXCLUSIVE:
        target = torch.full_like(target, IGNORE_INDEX)
    else:
        mask = torch.zeros_like(mask)
    logits.requires_grad_(True)
    loss = make_loss(mode, name, WEIGHTS if weighted else None)(logits, target, mask)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad == 0).all()


def test_weight_zero_class_handled() -> None:
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    weights = (0.0, 1.0, 1.0)
    # all painted pixels in the weight-0 class: plain torch gives NaN, we give 0
    only_zero = torch.where(target >= 0, torch.zeros_like(target), target)
    assert torch.isnan(F.cross_entropy(logits, only_zero, weight=torch.tensor(weights),
                                       ignore_index=IGNORE_INDEX))
    for name in LOSS_NAMES[EXCLUSIVE]:
        x = logits.clone().requires_grad_(True)
        loss = make_loss(EXCLUSIVE, name, weights)(x, only_zero)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), name
    ce = make_loss(EXCLUSIVE, "ce", weights)(logits, only_zero)
    assert ce.item() == 0.0
    # mixed batch: the weight-0 class simply does not count
    for name in ("ce", "focal", "dice_ce"):
        loss = make_loss(EXCLUSIVE, name, weights)(logits, target)
        expected = reference(EXCLUSIVE, name, logits, target, None, weights)
        assert loss.item() == pytest.approx(expected, rel=TOL, abs=TOL), name


@pytest.mark.parametrize(("mode", "name"), ALL_LOSSES)
def test_gradcheck_float64(mode: str, name: str) -> None:
    shape = (1, NUM_CLASSES, 3, 3)
    logits = _logits(shape, seed=3, dtype=torch.float64).requires_grad_(True)
    if mode == EXCLUSIVE:
        target, mask = _exclusive_target(shape, seed=4), None
    else:
        target, mask = _multilabel_target(shape, seed=4)
        target, mask = target.double(), mask.double()
    loss_fn = make_loss(mode, name, WEIGHTS)
    assert loss_fn(logits, target, mask).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, target, mask), (logits,))


@pytest.mark.parametrize(("mode", "name"), ALL_LOSSES)
def test_bf16_logits_give_float32_loss(mode: str, name: str) -> None:
    logits, target, mask = _inputs(mode, 3)
    low = logits.to(torch.bfloat16).requires_grad_(True)
    loss = make_loss(mode, name, WEIGHTS)(low, target, mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    expected = reference(mode, name, low.detach().float(), target, mask, WEIGHTS)
    assert loss.item() == pytest.approx(expected, rel=TOL, abs=TOL)
    loss.backward()
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()


# ---------------------------------------------------------------------------------------------
# factory and module behaviour
# ---------------------------------------------------------------------------------------------


def test_loss_names_table() -> None:
    assert LOSS_NAMES == {EXCLUSIVE: ("ce", "focal", "gdl", "dice_ce"),
                          MULTILABEL: ("bce", "focal", "dice", "dice_bce")}


def test_factory_aliases_and_case() -> None:
    assert type(make_loss(MULTILABEL, "focal_bce")) is type(make_loss(MULTILABEL, "focal"))
    assert type(make_loss("Exclusive", " CE ")) is type(make_loss(EXCLUSIVE, "ce"))


@pytest.mark.parametrize(("mode", "name", "pattern"), [
    (EXCLUSIVE, "bce", "ce, focal, gdl, dice_ce"),
    (MULTILABEL, "ce", "bce, focal, dice, dice_bce"),
    ("semantic", "ce", "exclusive, multilabel"),
])
def test_factory_unknown_name_or_mode(mode: str, name: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        make_loss(mode, name)
    assert "\n" not in str(info.value)


def test_factory_options() -> None:
    assert make_loss(EXCLUSIVE, "focal", gamma=1.5).gamma == 1.5
    # an option the chosen loss does not use is ignored; an unknown option raises
    make_loss(EXCLUSIVE, "ce", gamma=1.5)
    with pytest.raises(ValueError, match="gama"):
        make_loss(EXCLUSIVE, "focal", gama=1.5)
    with pytest.raises(ValueError, match="gamma"):
        make_loss(EXCLUSIVE, "focal", gamma=-1.0)
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    only_ce = make_loss(EXCLUSIVE, "dice_ce", dice_weight=0.0)(logits, target)
    torch.testing.assert_close(only_ce, make_loss(EXCLUSIVE, "ce")(logits, target))


@pytest.mark.parametrize("bad", [[1.0, -1.0, 1.0], [1.0, math.inf, 1.0], [[1.0, 2.0]]])
def test_factory_rejects_bad_weights(bad: list) -> None:
    with pytest.raises(ValueError, match="weights"):
        make_loss(EXCLUSIVE, "ce", bad)


@pytest.mark.parametrize(("mode", "name"), ALL_LOSSES)
def test_weight_count_must_match_channels(mode: str, name: str) -> None:
    logits, target, mask = _inputs(mode, 2)
    with pytest.raises(ValueError, match="class weights"):
        make_loss(mode, name, (1.0, 1.0))(logits, target, mask)


@pytest.mark.parametrize("name", LOSS_NAMES[MULTILABEL])
def test_multilabel_requires_mask(name: str) -> None:
    logits, target, _ = _inputs(MULTILABEL, 2)
    with pytest.raises(ValueError, match="mask"):
        make_loss(MULTILABEL, name)(logits, target)


def test_multilabel_mask_broadcasts_per_pixel() -> None:
    logits, target, mask = _inputs(MULTILABEL, 2)
    pixel_mask = mask[:, :1]
    loss_fn = make_loss(MULTILABEL, "dice_bce", WEIGHTS)
    torch.testing.assert_close(loss_fn(logits, target, pixel_mask),
                               loss_fn(logits, target, pixel_mask.expand_as(logits)))


def test_weights_are_a_buffer_moved_by_to() -> None:
    loss_fn = make_loss(EXCLUSIVE, "ce", WEIGHTS)
    assert isinstance(loss_fn, SegmentationLoss)
    assert "weights" in dict(loss_fn.named_buffers())
    loss_fn = loss_fn.to(torch.float64)
    assert loss_fn.weights.dtype == torch.float64
    # a float64 buffer still serves float32 logits
    logits, target, _ = _inputs(EXCLUSIVE, 2)
    assert loss_fn(logits, target).dtype == torch.float32
    assert make_loss(EXCLUSIVE, "ce").weights is None


def test_one_module_serves_2d_and_3d() -> None:
    loss_fn = make_loss(MULTILABEL, "bce", WEIGHTS)
    for ndim in (2, 3):
        logits, target, mask = _inputs(MULTILABEL, ndim)
        expected = reference(MULTILABEL, "bce", logits, target, mask, WEIGHTS)
        assert loss_fn(logits, target, mask).item() == pytest.approx(expected, rel=TOL)
