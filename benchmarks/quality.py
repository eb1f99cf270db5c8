"""The quality matrix: segstudio against the random-forest baseline, cell by cell.

A cell is ``family × dims × habit × mode``:

* families (``families.py``): nuclei, cells (elongated, touching), dim (low SNR, uneven
  background), vessels (thin curvilinear), tissue (textured regions);
* dims: 2D (384²) and 3D (32×96×96, spacing 2 × 0.5 × 0.5);
* habits (``users.py``, simulated users written apart from anything segstudio infers, their
  parameters drawn per seed): outline, casual, sloppy, corrections;
* modes: exclusive, and multilabel with the same content (each exclusive class turned into
  present/absent channels: object + boundary, vessel, granular + fibrous).

In every cell both methods see the same image and strokes:

* ``rf``: multiscale filters + random forest (``baseline_rf.py``); in multilabel mode one
  binary forest per channel (what ilastik/APOC users do for overlapping classes);
* ``segstudio``: a fresh model trained for the budget (default 60 s wall clock on this
  machine, or ``--steps`` iterations), then the whole image predicted.

The ``corrections`` habit is one continuous session, as in the app: train for half the budget,
predict, the simulated user adds strokes into the largest wrong regions (reaching the running
trainer through its snapshot source), train on, twice. The forest gets its own corrections of
its own mistakes.

Scores are Dice per target (``object`` = every non-background class, ``interior``,
``boundary``, ``vessel``, ``granular``, ``fibrous``, ``background``), the precision of the
first target (``object``/``vessel``/``granular``: a halo shows as low precision) and, on the
object families, instance F1 at IoU 0.5 of the objects made from the prediction (seeded by
the interior class where there is a boundary class, else by distance maxima). In multilabel
mode ``interior`` is object and not boundary, ``background`` is no channel present.

Usage::

    python benchmarks/quality.py --quick                    # 2D, a subset, short budget (< 5 min)
    python benchmarks/quality.py --seeds 0 1 --jobs 2       # the whole matrix
    python benchmarks/quality.py --families cells --dims 3 --habits casual --modes multilabel
    python benchmarks/quality.py --steps 600 150 --set lr=0.003 --out runs.jsonl   # fixed steps
    python benchmarks/quality.py --compare before.jsonl after.jsonl   # two runs, cell by cell

Each cell prints one JSON line (``--out`` also appends them to a file); the end prints the
table (``--table FILE`` prints the table of an earlier ``--out`` file).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families as fam  # noqa: E402
import users  # noqa: E402
from baseline_rf import rf_baseline  # noqa: E402
from bench_common import emit, parse_sets  # noqa: E402

MODES = ("exclusive", "multilabel")
#: Default training budget in seconds of wall clock (the issue's "60 s CPU training").
SECONDS = 60.0
QUICK = {"families": list(fam.FAMILIES), "dims": [2], "habits": ["outline", "casual"], "seconds": 8.0}


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def targets(painting: users.Painting, kind: str) -> list[tuple[str, tuple[int, ...]]]:
    """Reported targets: ``(name, exclusive classes)``; the first is the foreground."""
    names = painting.class_names
    if kind == fam.REGIONS:
        return [(names[k - 1], (k,)) for k in range(2, len(names) + 1)] + [("background", (1,))]
    out = [("object" if kind == fam.OBJECTS else names[1], tuple(range(2, len(names) + 1)))]
    if len(names) == 3:
        out += [("interior", (2,)), ("boundary", (3,))]
    return out + [("background", (1,))]


def dice(p: np.ndarray, t: np.ndarray) -> float:
    """Dice of two masks (1 when both are empty)."""
    s = int(p.sum()) + int(t.sum())
    return 1.0 if s == 0 else 2.0 * int((p & t).sum()) / s


def precision(p: np.ndarray, t: np.ndarray) -> float:
    """Precision of mask ``p`` against ``t`` (1 when ``p`` is empty)."""
    n = int(p.sum())
    return 1.0 if n == 0 else int((p & t).sum()) / n


def as_exclusive(pred: np.ndarray, mode: str, painting: users.Painting, kind: str) -> np.ndarray:
    """A multilabel prediction ``(C, *spatial)`` as exclusive classes of the painting's class set."""
    if mode == "exclusive":
        return pred
    names, present = users.multilabel_channels(painting, kind)
    out = np.ones(pred.shape[1:], np.uint8)
    if kind == fam.OBJECTS and len(present) == 2:  # object, boundary
        out[pred[0] > 0] = 2
        out[(pred[0] > 0) & (pred[1] > 0)] = 3
        return out
    for c, classes in enumerate(present):
        out[pred[c] > 0] = classes[0]
    return out


def score(pred_excl: np.ndarray, painting: users.Painting, sample: fam.FamilySample) -> dict[str, float]:
    """Dice per target, the foreground precision and, for objects, instance F1 at IoU 0.5
    (objects from the prediction by :mod:`segstudio.core.instances`, as the app makes them)."""
    from segstudio.core.instances import InstanceOptions, instances_from_labels
    from segstudio.core.metrics import instance_scores

    out: dict[str, float] = {}
    truth = painting.truth
    for i, (name, classes) in enumerate(targets(painting, sample.kind)):
        p, t = np.isin(pred_excl, classes), np.isin(truth, classes)
        out[name] = dice(p, t)
        if i == 0:
            out["precision"] = precision(p, t)
    if sample.kind == fam.OBJECTS:
        options = InstanceOptions(object_classes=(2,), boundary_class=3 if len(painting.class_names) == 3 else None)
        objects = instances_from_labels(pred_excl, options, sample.spacing).labels
        out["F1"] = instance_scores(objects, sample.instances).f1
    return out


# --------------------------------------------------------------------------------------------
# the two methods
# --------------------------------------------------------------------------------------------


def rf_predict(image: np.ndarray, paint: np.ndarray, mode: str) -> np.ndarray:
    """Random forest: one multiclass forest (exclusive) or one binary forest per channel."""
    if mode == "exclusive":
        return rf_baseline(image, paint, n_jobs=1)[0]
    out = np.zeros(paint.shape, np.uint8)
    for c in range(paint.shape[0]):
        if len(np.unique(paint[c][paint[c] > 0])) < 2:
            continue  # one-sided paint: the forest cannot learn this channel
        pred = rf_baseline(image, paint[c], n_jobs=1)[0]
        out[c] = pred == 1
    return out


class Session:
    """A segstudio training session on one image (a trainer plus its snapshot source)."""

    def __init__(self, sample: fam.FamilySample, paint: np.ndarray, mode: str, n_classes: int,
                 seed: int, overrides: dict[str, Any], *, steps: int | None = None,
                 seconds: float | None = None, device: str = "cpu") -> None:
        """The learning-rate schedule is planned over ``steps`` iterations or ``seconds``."""
        from segstudio.core.background import background_unevenness, slice_unevenness
        from segstudio.core.config import has_wide_context, use_level_slices, use_textures, use_wide_context
        from segstudio.core.textures import texture_gain
        from segstudio.core.data import SnapshotSource, TrainingImage
        from segstudio.core.trainer import Trainer, infer_config

        self.sample, self.mode, self.device = sample, mode, device
        self._image_cls = TrainingImage
        # wide context as the app decides it (auto: by the first paintings' background), unless set
        overrides = dict(overrides)
        # augmentation fields: --set augment.FIELD=VALUE
        augment = {k.split(".", 1)[1]: overrides.pop(k) for k in list(overrides) if k.startswith("augment.")}
        if augment:
            from segstudio.core.data import AugmentConfig

            overrides["augment"] = dataclasses.replace(AugmentConfig(), **augment)
        choice = overrides.pop("wide_context", "auto")
        uneven = background_unevenness(sample.image, paint, mode) if sample.image.ndim == 2 else None
        # textures likewise (auto: by the first paintings' texture gain), unless set
        textures = overrides.pop("textures", "auto")
        gain = texture_gain(sample.image, paint, mode, None, sample.spacing) if textures == "auto" else None
        # level slices likewise (auto: by the first paintings' background along z), unless set
        level = overrides.pop("level_slices", "auto")
        z_uneven = slice_unevenness(sample.image, paint, mode) if level == "auto" else None
        cfg = infer_config(sample.image.shape, paint, mode, n_classes=n_classes, iterations=steps,
                           wide_context=use_wide_context(choice, sample.image.ndim, uneven),
                           textures=use_textures(textures, gain),
                           level_slices=use_level_slices(level, sample.image.ndim, z_uneven),
                           minutes=None if seconds is None else seconds / 60.0, spacing=sample.spacing,
                           seed=seed, device=device, **overrides)
        #: Whether this session trains with wide context's filters (recorded in every row).
        self.wide = has_wide_context(cfg.input_filters, sample.image.ndim)
        #: Whether it adds the region statistics of *textures* (recorded in every row).
        self.textures = bool(cfg.filter_context)
        #: Whether it levels the volume per slice (recorded in every row).
        self.level = cfg.level_slices
        self.source = SnapshotSource()
        self.source.put([TrainingImage(sample.image, paint)])
        self.trainer = Trainer(cfg, self.source, None)
        self.events = self.trainer.run()
        self.iteration = 0
        self.seconds = 0.0
        #: The last step's learnt share per class (``Progress.learnt``; recorded in every row).
        self.learnt: tuple[float | None, ...] = ()

    def paint(self, paint: np.ndarray) -> None:
        """New strokes reach the running trainer."""
        self.source.put([self._image_cls(self.sample.image, paint)])

    def train(self, *, seconds: float | None = None, steps: int | None = None) -> None:
        """Train on until ``seconds`` more wall clock or ``steps`` more iterations have passed."""
        from segstudio.core.trainer import Failed, Progress

        t0 = time.perf_counter()
        stop_at = self.iteration + steps if steps is not None else None
        for ev in self.events:
            if isinstance(ev, Failed):
                raise RuntimeError(ev.message + "\n" + ev.traceback)
            if isinstance(ev, Progress):
                self.iteration = ev.iteration
                self.learnt = ev.learnt
                if stop_at is not None and ev.iteration >= stop_at:
                    break
                if seconds is not None and time.perf_counter() - t0 >= seconds:
                    break
        self.seconds += time.perf_counter() - t0

    def predict(self) -> np.ndarray:
        """Predict the whole image with the current weights."""
        from segstudio.core.predictor import Predictor

        model = self.trainer.preview_model() if hasattr(self.trainer, "preview_model") else self.trainer.model
        labels = Predictor(model, self.trainer.config, device=self.device).predict(self.sample.image).labels
        self.trainer.model.train()
        return labels

    def learnt_row(self) -> list[float | None]:
        """:attr:`learnt`, rounded for a result row."""
        return [None if v is None else round(v, 3) for v in self.learnt]

    def close(self) -> None:
        self.events.close()


def prediction_name(row: dict[str, Any]) -> str:
    """The file name ``--predictions`` gives a row's prediction (exclusive classes, ``.npy``)."""
    return f"{row['family']}_{row['dims']}d_{row['habit']}_{row['mode']}_s{row['seed']}_{row['method']}_{row['phase']}.npy"


def run_cell(family: str, dims: int, habit: str, mode: str, seed: int, budget: dict[str, Any],
             overrides: dict[str, Any], threads: int, device: str = "cpu",
             predictions: Path | None = None) -> list[dict[str, Any]]:
    """Both methods on one cell; one result row per method and phase (and, with
    ``predictions``, each row's prediction as exclusive classes in that folder, for
    rescoring a post-processing change without training again: ``rescore_instances.py``)."""
    import torch

    torch.set_num_threads(threads)
    sample = fam.make(family, dims, seed)
    painting = users.paint(sample, habit, seed)
    kind = sample.kind
    key = {"family": family, "dims": dims, "habit": habit, "mode": mode, "seed": seed}

    def paint_of(p: users.Painting) -> np.ndarray:
        return p.paintings if mode == "exclusive" else users.to_multilabel(p, kind)[0]

    n_classes = len(painting.class_names) if mode == "exclusive" else len(users.multilabel_channels(painting, kind)[0])
    rows: list[dict[str, Any]] = []

    def row(method: str, phase: str, pred: np.ndarray, p: users.Painting, **extra: Any) -> None:
        excl = as_exclusive(pred, mode, p, kind)
        rows.append({**key, "method": method, "phase": phase,
                     "painted": round(100 * float(np.mean(p.paintings > 0)), 3),
                     **{k: round(v, 4) for k, v in score(excl, p, sample).items()},
                     **extra})
        if predictions is not None:
            np.save(predictions / prediction_name(rows[-1]), excl.astype(np.uint8))

    steps = budget.get("steps")
    seconds = budget.get("seconds")
    # the random forest, with its own corrections
    p = painting
    for r in range(3 if habit == "corrections" else 1):
        t0 = time.perf_counter()
        pred = rf_predict(sample.image, paint_of(p), mode)
        row("rf", ["first", "round1", "round2"][r] if habit == "corrections" else "final", pred, p,
            seconds=round(time.perf_counter() - t0, 2))
        if habit == "corrections" and r < 2:
            p = users.correct(p, as_exclusive(pred, mode, p, kind), seed, r + 1)
    # segstudio, with the learning-rate schedule planned over the whole session (as the app does)
    # (corrections: three phases of half the budget each)
    scale = 1.5 if habit == "corrections" else 1.0
    session = Session(sample, paint_of(painting), mode, n_classes, seed, overrides,
                      steps=None if steps is None else 3 * (steps // 2) if scale > 1 else steps,
                      seconds=None if seconds is None else scale * seconds, device=device)
    try:
        if habit != "corrections":
            session.train(seconds=seconds, steps=steps)
            row("segstudio", "final", session.predict(), painting, iterations=session.iteration,
                seconds=round(session.seconds, 1), wide_context=session.wide, textures=session.textures,
                level_slices=session.level, learnt=session.learnt_row())
        else:
            half = {"seconds": None if seconds is None else seconds / 2, "steps": None if steps is None else steps // 2}
            p = painting
            for r in range(3):
                session.train(**half)
                pred = session.predict()
                row("segstudio", ["first", "round1", "round2"][r], pred, p, iterations=session.iteration,
                    seconds=round(session.seconds, 1), wide_context=session.wide, textures=session.textures,
                    level_slices=session.level, learnt=session.learnt_row())
                if r < 2:
                    p = users.correct(p, as_exclusive(pred, mode, p, kind), seed, r + 1)
                    session.paint(paint_of(p))
    finally:
        session.close()
    return rows


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


#: Row fields that are not scores.
META = ("seed", "method", "phase", "painted", "iterations", "seconds", "set", "run", "wide_context", "textures",
        "level_slices", "learnt", "constant", "rescored")


def _mean(rows: Iterable[dict[str, Any]], k: str) -> float | None:
    v = [r[k] for r in rows if k in r]
    return float(np.mean(v)) if v else None


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table: one line per cell (seeds averaged), segstudio beside the forest.

    A segstudio figure is bold where it beats the forest's on the same cell; the last column
    lists the targets where it does not (``=`` within 0.005).
    """
    keyf = ("family", "dims", "habit", "mode")
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in keyf), []).append(r)
    order = {f: i for i, f in enumerate(fam.FAMILIES)}
    horder = {h: i for i, h in enumerate(users.HABITS)}
    lines = ["| family | dims | habit | mode | phase | segstudio: object-level Dice (precision) · other targets | "
             "random forest | not better than RF |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted(cells, key=lambda k: (order.get(k[0], 99), k[1], horder.get(k[2], 99), k[3])):
        group = cells[key]
        phases = ["final"] if key[2] != "corrections" else ["first", "round2"]
        for ph in phases:
            ss = [r for r in group if r["method"] == "segstudio" and r["phase"] == ph]
            rf = [r for r in group if r["method"] == "rf" and r["phase"] == ph]
            if not ss:
                continue
            names = [k for k in ss[0] if k not in (*keyf, *META, "precision")]
            worse = []
            parts_s, parts_r = [], []
            for i, n in enumerate(names):
                a, b = _mean(ss, n), _mean(rf, n)
                if b is not None and a is not None and a < b + 0.005:
                    worse.append(n if a < b - 0.005 else f"{n}=")
                txt = f"{a:.2f}"
                if b is not None and a is not None and a >= b + 0.005:
                    txt = f"**{txt}**"
                parts_s.append(f"{n} {txt}" if i else f"{txt}")
                parts_r.append(f"{n} {b:.2f}" if i and b is not None else f"{b:.2f}" if b is not None else "–")
            pa, pb = _mean(ss, "precision"), _mean(rf, "precision")
            if pa is not None and pb is not None and pa < pb - 0.005:
                worse.append("precision")
            parts_s[0] += f" ({pa:.2f})"
            if pb is not None:
                parts_r[0] += f" ({pb:.2f})"
            its = _mean(ss, "iterations")
            wide = ", wide context" if any(r.get("wide_context") for r in ss) else ""
            wide += ", textures" if any(r.get("textures") for r in ss) else ""
            wide += ", level slices" if any(r.get("level_slices") for r in ss) else ""
            lines.append(f"| {key[0]} | {key[1]}D | {key[2]} | {key[3]} | {ph} ({its:.0f} it{wide}) | "
                         f"{' · '.join(parts_s)} | {' · '.join(parts_r)} | {', '.join(worse) or '—'} |")
    return "\n".join(lines)


def compare(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> str:
    """segstudio's figures of two runs, cell by cell (``before → after``), with the forest's.

    One line per cell, seed and phase present in both (seeds are not averaged: each is its own
    image and painting); the last line counts the lines where ``after`` is better, equal
    (within 0.005) or worse on the foreground target.
    """
    keyf = ("family", "dims", "habit", "mode", "seed", "phase")

    def index(rows):
        out: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(tuple(r[k] for k in keyf) + (r["method"],), []).append(r)
        return out

    a, b = index(before), index(after)
    lines = ["| family | dims | habit | mode | seed | phase | foreground Dice (precision) | other targets | forest |",
             "|---|---|---|---|---|---|---|---|---|"]
    better = same = worse = 0
    deltas: list[float] = []
    for key in sorted(k for k in a if k[-1] == "segstudio" and k in b):
        ra, rb = a[key], b[key]
        names = [k for k in rb[0] if k not in (*keyf, *META, "precision")]
        first = names[0]
        fa, fb = _mean(ra, first), _mean(rb, first)
        d = fb - fa
        deltas.append(d)
        better, same, worse = better + (d > 0.005), same + (abs(d) <= 0.005), worse + (d < -0.005)
        rf = a.get(key[:-1] + ("rf",)) or b.get(key[:-1] + ("rf",)) or []
        others = " · ".join(f"{n} {_mean(ra, n):.2f}→{_mean(rb, n):.2f}" for n in names[1:] if _mean(ra, n) is not None)
        forest = f"{_mean(rf, first):.2f} ({_mean(rf, 'precision'):.2f})" if rf else "–"
        lines.append(f"| {key[0]} | {key[1]}D | {key[2]} | {key[3]} | {key[4]} | {key[5]} | {fa:.2f}→**{fb:.2f}** "
                     f"({_mean(ra, 'precision'):.2f}→{_mean(rb, 'precision'):.2f}) | {others} | {forest} |")
    mean = f"; mean change {sum(deltas) / len(deltas):+.3f}" if deltas else ""
    lines.append(f"foreground Dice: better in {better}, within 0.005 in {same}, worse in {worse} (cell, seed, phase)"
                 + mean)
    return "\n".join(lines)


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """Counts of cells where segstudio beats the forest on every target, and mean object Dice."""
    keyf = ("family", "dims", "habit", "mode")
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["phase"] in ("final", "first"):
            cells.setdefault(tuple(r[k] for k in keyf), []).append(r)
    wins = 0
    first_s, first_r = [], []
    for group in cells.values():
        ss = [r for r in group if r["method"] == "segstudio"]
        rf = [r for r in group if r["method"] == "rf"]
        names = [k for k in ss[0] if k not in (*keyf, *META)]
        wins += all(_mean(ss, n) >= _mean(rf, n) - 0.005 for n in names)
        first_name = names[0]
        first_s.append(_mean(ss, first_name))
        first_r.append(_mean(rf, first_name))
    return (f"{wins} of {len(cells)} cells: segstudio at least the forest on every target; "
            f"mean foreground Dice segstudio {np.mean(first_s):.3f}, forest {np.mean(first_r):.3f}")


#: Families whose objects are blob-like (the issue's "no halo" floor on precision applies).
BLOB_LIKE = ("nuclei", "dim")
#: Target floors and tolerances of issue 14.
PRECISION_FLOOR, MULTILABEL_TOLERANCE, CORRECTED_FLOOR, CORRECTABLE = 0.85, 0.03, 0.95, 0.85


def verdicts(rows: Sequence[dict[str, Any]]) -> str:
    """Each target of the matrix, checked cell by cell: how many cells meet it, and every cell
    that does not, with its figures (seeds averaged).

    * better than the forest on every class (the ``final`` phase, or ``first`` and ``round2``
      of the corrections habit, each a cell);
    * foreground precision at least the forest's, and at least ``PRECISION_FLOOR`` on the
      blob-like families;
    * multilabel within ``MULTILABEL_TOLERANCE`` of exclusive mode on every class's Dice (same
      family, dims, habit and phase);
    * corrections: round 2 foreground at least ``CORRECTED_FLOOR`` where the first prediction
      was at least ``CORRECTABLE``;
    * on the object families, instance F1 at least the forest's.
    """
    keyf = ("family", "dims", "habit", "mode", "phase")
    cells: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in keyf), {}).setdefault(r["method"], []).append(r)

    def name(key: tuple) -> str:
        return f"{key[0]} {key[1]}D {key[2]} {key[3]}" + ("" if key[4] == "final" else f" ({key[4]})")

    def scores(group: list[dict[str, Any]]) -> dict[str, float]:
        return {k: _mean(group, k) for k in group[0] if k not in (*keyf, *META)}

    beat, prec, floor, ml, corr, f1 = [], [], [], [], [], []
    n_beat = n_prec = n_floor = n_ml = n_corr = n_f1 = 0
    for key, by in sorted(cells.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        if "segstudio" not in by or key[4] == "round1":  # the table's phases: final, first, round2
            continue
        ss = scores(by["segstudio"])
        rf = scores(by["rf"]) if "rf" in by else None
        if rf is not None:
            n_beat += 1
            lost = [f"{n} {ss[n]:.2f} < {rf[n]:.2f}" for n in ss if n not in ("precision", "F1") and n in rf
                    and ss[n] < rf[n] - 0.005]
            if lost:
                beat.append(f"{name(key)}: {', '.join(lost)}")
            if "F1" in ss and "F1" in rf:
                n_f1 += 1
                if ss["F1"] < rf["F1"] - 0.005:
                    f1.append(f"{name(key)}: {ss['F1']:.2f} < {rf['F1']:.2f}")
            n_prec += 1
            if ss["precision"] < rf["precision"] - 0.005:
                prec.append(f"{name(key)}: {ss['precision']:.2f} < {rf['precision']:.2f}")
        if key[0] in BLOB_LIKE:
            n_floor += 1
            if ss["precision"] < PRECISION_FLOOR:
                floor.append(f"{name(key)}: {ss['precision']:.2f}")
        if key[3] == "multilabel":
            ex = cells.get((*key[:3], "exclusive", key[4]), {}).get("segstudio")
            if ex:
                n_ml += 1
                es = scores(ex)
                low = [f"{n} {ss[n]:.2f} vs {es[n]:.2f}" for n in ss if n not in ("precision", "F1") and n in es
                       and ss[n] < es[n] - MULTILABEL_TOLERANCE]
                if low:
                    ml.append(f"{name(key)}: {', '.join(low)}")
        if key[2] == "corrections" and key[4] == "round2":
            first = cells.get((*key[:4], "first"), {}).get("segstudio")
            fg = next(iter(ss))
            if first and _mean(first, fg) >= CORRECTABLE:
                n_corr += 1
                if ss[fg] < CORRECTED_FLOOR:
                    corr.append(f"{name(key)}: {_mean(first, fg):.2f} → {ss[fg]:.2f}")

    def block(title: str, n: int, misses: list[str]) -> list[str]:
        return [f"- {title}: {n - len(misses)} of {n} cells"] + [f"  - not met: {m}" for m in misses]

    lines = ["Targets, cell by cell:"]
    lines += block("at least the forest on every class (within 0.005)", n_beat, beat)
    lines += block("foreground precision at least the forest's", n_prec, prec)
    lines += block(f"foreground precision ≥ {PRECISION_FLOOR} on blob-like objects ({', '.join(BLOB_LIKE)})",
                   n_floor, floor)
    lines += block(f"multi-label Dice within {MULTILABEL_TOLERANCE} of exclusive on every class", n_ml, ml)
    lines += block(f"corrections: ≥ {CORRECTED_FLOOR} after two rounds where the first was ≥ {CORRECTABLE}",
                   n_corr, corr)
    lines += block("instance F1 (objects from the prediction) at least the forest's", n_f1, f1)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def parse_constants(constants: Sequence[str]) -> list[tuple[Any, str, Any]]:
    """``(module, name, value)`` of each ``package.module.NAME=VALUE`` (a Python literal) naming
    a constant of segstudio; exits with a message on one that names none."""
    import ast
    import importlib

    out = []
    for item in constants:
        target, _, value = item.partition("=")
        module, _, name = target.strip().rpartition(".")
        mod = importlib.import_module(module)
        if not module.startswith("segstudio.") or not hasattr(mod, name):
            raise SystemExit(f"--constant {item}: no constant {name} in {module}")
        out.append((mod, name, ast.literal_eval(value.strip())))
    return out


def set_constants(constants: Sequence[str]) -> None:
    """Set module constants of segstudio, each ``package.module.NAME=VALUE`` (a Python literal),
    in this process: for rules tuned by a constant rather than a TrainConfig field (e.g.
    ``segstudio.core.background.TOWARDS_OBJECTS=0.2``)."""
    for mod, name, value in parse_constants(constants):
        setattr(mod, name, value)


def _task(args: tuple) -> list[dict[str, Any]]:
    constants, cell = args
    set_constants(constants)
    return run_cell(*cell)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2D, every family, outline and casual habits, both modes, 8 s each")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--families", nargs="+", default=None, choices=list(fam.FAMILIES))
    p.add_argument("--dims", type=int, nargs="+", default=None, choices=[2, 3])
    p.add_argument("--habits", nargs="+", default=None, choices=list(users.HABITS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--seconds", type=float, default=None, help=f"training budget per cell (default {SECONDS:.0f})")
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("STEPS_2D", "STEPS_3D"),
                   help="fixed iterations per cell instead of seconds (robust on a shared machine)")
    p.add_argument("--device", default="cpu", help="where segstudio trains: cpu, cuda, auto")
    p.add_argument("--jobs", type=int, default=1, help="cells run in parallel, each with --threads")
    p.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: cores / jobs)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig default (e.g. --set lr=0.003; augmentation: --set augment.gamma=0.5)")
    p.add_argument("--constant", action="append", default=[], metavar="MODULE.NAME=VALUE",
                   help="set a segstudio module constant in every cell "
                        "(e.g. --constant segstudio.core.background.TOWARDS_OBJECTS=0.2)")
    p.add_argument("--out", type=Path, default=None, help="append every row as a JSON line to this file")
    p.add_argument("--table", type=Path, default=None, help="print the table of an earlier --out file and exit")
    p.add_argument("--compare", type=Path, nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="compare segstudio's figures of two --out files cell by cell and exit")
    p.add_argument("--predictions", type=Path, default=None, metavar="DIR",
                   help="save every row's prediction (exclusive classes, .npy) in this folder")
    args = p.parse_args(argv)
    if args.predictions is not None:
        args.predictions.mkdir(parents=True, exist_ok=True)
    if args.compare is not None:
        before, after = ([json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()] for f in args.compare)
        print(compare(before, after))
        return
    if args.table is not None:
        rows = [json.loads(ln) for ln in args.table.read_text().splitlines() if ln.strip()]
        print(table(rows))
        print(summary(rows))
        print(verdicts(rows))
        return
    overrides = parse_sets(args.set)
    fams = args.families or (QUICK["families"] if args.quick else list(fam.FAMILIES))
    dims = args.dims or (QUICK["dims"] if args.quick else [2, 3])
    habits = args.habits or (QUICK["habits"] if args.quick else list(users.HABITS))
    seconds = args.seconds or (QUICK["seconds"] if args.quick else SECONDS)
    threads = args.threads or max(1, (os.cpu_count() or 2) // args.jobs)
    tasks = []
    for f, d, h, m, s in itertools.product(fams, dims, habits, args.modes, args.seeds):
        budget = {"steps": args.steps[0 if d == 2 else 1]} if args.steps else {"seconds": seconds}
        tasks.append((args.constant, (f, d, h, m, s, budget, overrides, threads, args.device, args.predictions)))
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(_task, tasks):
            for r in result:
                if overrides:
                    r["set"] = args.set
                if args.constant:
                    r["constant"] = args.constant
                emit(r, args.out)
            rows += result
    print(table(rows))
    print(summary(rows))
    print(verdicts(rows))
    print(f"[{len(tasks)} cells in {time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
