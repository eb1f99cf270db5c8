"""Strokes that run on past an object's edge: the background rule's statistics without the spill,
and the spilled object paint left out of what is learnt (never relabelled)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from segstudio.core import background
from segstudio.core.background import infer_background, infer_background_multilabel, spilled_paint
from segstudio.core.implied import SPILLED, implied_labels, learnt_paint, merged


def _trusted(paint, g):
    """:func:`background._trusted` of an exclusive painting (background 1, objects 2 and 3)."""
    bg, obj = paint == 1, paint > 1
    med = background._per_stroke(bg, g, ndi.median)
    return background._trusted(bg, obj, g, med, np.median(g[bg]), np.median(g[obj]))


def _sloppy_scene(bright_background: bool = False):
    """Six bright disks (radius 9) blurred into a dark, noisy background (σ 1.5 px). Paint: a
    long background stroke in the open, and a background stroke that runs 3 px into the first
    disk; one object stroke per disk, through its middle and 4 px on past its right edge onto the
    background. Returns ``(image, paint, disks)``."""
    yy, xx = np.mgrid[:96, :96]
    centres = [(16, 16), (16, 48), (16, 78), (48, 16), (48, 48), (48, 78)]
    disks = np.zeros((96, 96), bool)
    for cy, cx in centres:
        disks |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 9 ** 2
    rng = np.random.default_rng(3)
    img = (ndi.gaussian_filter(disks * 60.0, 1.5) + 10.0 + rng.normal(0, 1.0, disks.shape)).astype(np.float32)
    if bright_background:
        img = 100.0 - img
    paint = np.zeros(disks.shape, np.uint8)
    paint[80:83, 4:92] = 1
    paint[4:7, 24:37] = 1  # the open background above the first row
    paint[14:17, 2:10] = 1  # runs from the background into the first disk (its edge at x = 7)
    for cy, cx in centres:
        paint[cy - 1:cy + 2, cx - 2:cx + 14] = 2  # through the middle, 4 px past the edge (x = cx + 9)
    return img, paint, disks


@pytest.mark.parametrize("bright", [False, True])
def test_spilled_object_paint_on_the_background_is_found_and_only_there(bright):
    img, paint, disks = _sloppy_scene(bright)
    spilled = spilled_paint(paint, img)
    assert spilled.shape == paint.shape and spilled.dtype == bool
    assert not spilled[paint != 2].any(), "only object paint"
    spill = (paint == 2) & ~disks
    far = spill & (ndi.distance_transform_edt(~disks) >= 2)
    assert spilled[far].mean() > 0.9, "the paint 2 px and more past the edges"
    assert not spilled[(paint == 2) & disks].any(), "none of the paint on the disks"


def test_the_threshold_reads_the_strokes_without_their_spilled_parts():
    """The spill pulls the objects' low quantile down to the background and the background
    stroke into a disk pushes the background's up: read with them, the tails overlap and the
    threshold sits at the background's upper quartile; read without them, the tails separate
    and the blurred rims up to a fifth of the way to the objects are background too."""
    img, paint, disks = _sloppy_scene()
    g = background.smoothed_intensity(img, None, 2)
    _, t, level, _ = background._threshold(paint, g, 1, background.DEFAULT_QUANTILES, 0.2)
    obj = np.quantile(g[(paint == 2) & disks], 0.05)
    bg = np.quantile(g[(paint == 1) & ~disks], 0.9)
    assert level > bg and level >= 0.9 * obj, "the objects' low quantile is read on the disks"
    np.testing.assert_allclose(t, bg + 0.2 * (level - bg), rtol=0.05)
    inferred = infer_background(paint, img) == 1
    open_bg = (paint == 0) & (ndi.distance_transform_edt(~disks) >= 3)
    assert inferred[open_bg].mean() > 0.95 and not inferred[disks].any()
    # the strokes whole: the tails overlap and the threshold stays at the background's quartile
    flat = np.where(disks, paint, np.where(paint > 0, 1, 0)).astype(np.uint8)
    assert _trusted(paint, g)[0].sum() < (paint == 2).sum()
    assert (infer_background(flat, img) == 1)[open_bg].mean() > 0.95


def test_a_stroke_on_a_dim_object_keeps_its_pixels_in_the_statistics():
    """A correction laid wholly on a dim object (hardly brighter than the background) is not
    spill: most of its pixels stay in the objects' statistics (the rule stays as careful as
    before; only its noise below its own median's midpoint to the background goes), and none of
    it is left out of what is learnt, though parts of it pass the threshold."""
    img, paint, disks = _sloppy_scene()
    img[88:93, 30:70] += 0.6  # 30 px below the nearest disk
    paint[90, 34:66] = 2
    g = background.smoothed_intensity(img, None, 2)
    obj, _ = _trusted(paint, g)
    assert obj[90, 34:66].mean() > 0.7
    _, t, _, _ = background._threshold(paint, g, 1, background.DEFAULT_QUANTILES, 0.2)
    assert (g[90, 34:66] <= t).any()
    spilled = spilled_paint(paint, img)
    assert not spilled[90, 34:66].any() and spilled.any()


def test_nothing_spills_where_the_rule_infers_nothing_or_with_clean_strokes():
    img, paint, disks = _sloppy_scene()
    clean = np.where((paint == 2) & ~ndi.binary_erosion(disks, iterations=1), 0, paint).astype(np.uint8)
    assert not spilled_paint(clean, img).any(), "strokes inside the objects do not spill"
    flat = np.random.default_rng(0).normal(10, 1, img.shape).astype(np.float32)
    assert not spilled_paint(paint, flat).any(), "no intensity rule: nothing spills"
    assert not spilled_paint(np.where(paint == 1, 0, paint).astype(np.uint8), img).any(), "no background paint"


def test_multilabel_paint_spills_where_exclusive_paint_does():
    img, paint, disks = _sloppy_scene()
    one = np.where(paint == 1, 2, np.where(paint == 2, 1, 0)).astype(np.uint8)[None]  # one class: present/absent
    expected = spilled_paint(paint, img)
    np.testing.assert_array_equal(spilled_paint(one, img, mode="multilabel"), expected)
    two = np.concatenate([one, np.where(paint > 0, 2, 0).astype(np.uint8)[None]])  # a second class, absent
    np.testing.assert_array_equal(spilled_paint(two, img, mode="multilabel"), expected)
    assert (infer_background_multilabel(two, img)[0] == 2).sum() == (infer_background(paint, img) == 1).sum()


def test_with_textures_only_the_threshold_part_spills(monkeypatch):
    """With *textures* on the rim part is off (a texture's dark grains lie next to its bright
    ones): what spills is the paint that passes the threshold alone, a part of the rest."""
    img, paint, _ = _sloppy_scene()
    on, off = spilled_paint(paint, img), spilled_paint(paint, img, textures=True)
    assert off.sum() < on.sum() and not (off & ~on).any()


def test_implied_labels_report_the_spill_and_learnt_paint_leaves_it_out():
    img, paint, _ = _sloppy_scene()
    implied = implied_labels(paint, img, "exclusive", outlines=True, background=True)
    spilled = implied[SPILLED]
    np.testing.assert_array_equal(spilled, spilled_paint(paint, img))
    np.testing.assert_array_equal(merged(implied), implied["background"])  # the overlay: the rules only
    before = paint.copy()
    learnt = learnt_paint(paint, "exclusive", spilled)
    np.testing.assert_array_equal(paint, before)  # the user's paintings are never changed
    np.testing.assert_array_equal(learnt, np.where(spilled, 0, paint))
    assert learnt_paint(paint, "exclusive", None) is paint
    assert SPILLED not in implied_labels(paint, img, "exclusive", outlines=True, background=False)
    # multi-label, as a list of class layers: every channel unpainted there
    layers = [np.where(paint == 2, 1, np.where(paint == 1, 2, 0)).astype(np.uint8),
              np.where(paint > 0, 2, 0).astype(np.uint8)]
    ml = learnt_paint(layers, "multilabel", spilled)
    assert ml.shape == (2, *paint.shape) and not ml[:, spilled].any()
    np.testing.assert_array_equal(ml[:, ~spilled], np.stack(layers)[:, ~spilled])


@pytest.mark.parametrize("on", [True, False])
def test_the_trainer_learns_the_paint_without_the_spill_and_leaves_the_paintings_alone(on):
    from segstudio.core.data import SnapshotSource, TrainingImage, exclusive_target
    from segstudio.core.trainer import Trainer, infer_config

    img, paint, _ = _sloppy_scene()
    before = paint.copy()
    cfg = infer_config(img.shape, paint, "exclusive", iterations=1, infer_outlines=False, infer_background=on,
                       patch_size=(32, 32), batch_size=1, features=(4, 8), device="cpu")
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    src = SnapshotSource()
    src.put([TrainingImage(img, paint)])
    trainer.swap_snapshot(src.latest())
    np.testing.assert_array_equal(paint, before)
    spilled = spilled_paint(paint, img)
    assert spilled.any()
    expected = exclusive_target(np.where(spilled, 0, paint) if on else paint)
    np.testing.assert_array_equal(trainer.prepared[0].target, expected)
    assert trainer.step() > 0


def test_the_trainer_leaves_the_spill_out_of_every_multilabel_channel():
    from segstudio.core.data import SnapshotSource, TrainingImage, multilabel_target
    from segstudio.core.trainer import Trainer, infer_config

    img, paint, _ = _sloppy_scene()
    ml = np.stack([np.where(paint == 2, 1, np.where(paint == 1, 2, 0)),
                   np.where(paint > 0, 2, 0)]).astype(np.uint8)
    cfg = infer_config(img.shape, ml, "multilabel", iterations=1, loss="bce", infer_outlines=False,
                       infer_background=True, patch_size=(32, 32), batch_size=1, features=(4, 8), device="cpu")
    trainer = Trainer(cfg, SnapshotSource(), None)
    trainer.setup()
    src = SnapshotSource()
    src.put([TrainingImage(img, ml)])
    trainer.swap_snapshot(src.latest())
    spilled = spilled_paint(ml, img, mode="multilabel")
    assert spilled.any()
    target, mask = multilabel_target(np.where(spilled, 0, ml))
    np.testing.assert_array_equal(trainer.prepared[0].mask, mask)
    np.testing.assert_array_equal(trainer.prepared[0].target, target)


def test_an_outline_traced_just_outside_an_object_reaches_it(monkeypatch):
    """A boundary stroke traced 1.5–3 px outside a disk: none of its pixels is bright, but the
    disk is next to it, so it counts as a stroke that reaches a bright object, and the part of it
    on what looks like background is left out, as much as if every stroke counted."""
    img, paint, disks = _sloppy_scene()
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    arc = (r > 10.5) & (r <= 12.0) & (yy > 48)  # the lower half, past the edge (radius 9)
    paint[arc & (paint == 0)] = 3
    g = background.smoothed_intensity(img, None, 2)
    assert g[arc & (paint == 3)].max() < 30.0, "no bright pixel in the stroke (disks are 70)"
    spilled = spilled_paint(paint, img)
    monkeypatch.setattr(background, "_reaching", lambda obj_paint, peak, mid: obj_paint)  # every stroke
    np.testing.assert_array_equal(spilled, spilled_paint(paint, img))
    assert spilled[arc & (paint == 3)].mean() > 0.3
