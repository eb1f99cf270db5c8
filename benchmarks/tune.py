"""Fixed-iteration tuning harness: compare engine settings fairly on a shared, noisy CPU.

Wall-clock budgets are unreliable while other jobs share the two cores, so every setting is
trained for a fixed number of iterations (calibrate the count for a 60 s budget on a quiet
machine with ``--calibrate``) and scored with the same Dice as ``quality.py``. The correction
scenario is one continuous training session: the trainer keeps running while new strokes
arrive through the :class:`~segstudio.core.data.SnapshotSource`, exactly as in the GUI.

Usage::

    python benchmarks/tune.py --iters 300 --seeds 0 1 --set features=8,16,32 --set lr=0.003
    python benchmarks/tune.py --iters 150 --rounds 2 ...   # 150 its, then 2 x (corrections + 150 its)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_rf import scores  # noqa: E402
from bench_common import parse_sets  # noqa: E402

from segstudio.core.data import AugmentConfig, SnapshotSource, TrainingImage  # noqa: E402
from segstudio.core.predictor import Predictor  # noqa: E402
from segstudio.core.samples import Sample, correction_strokes, sample_2d, sample_3d  # noqa: E402
from segstudio.core.trainer import Failed, Progress, Trainer, infer_config  # noqa: E402


def session(
    sample: Sample,
    overrides: dict[str, Any],
    iterations: Sequence[int],
    *,
    seed: int = 0,
    threads: int = 2,
    tta: bool = False,
    save_prob: Path | None = None,
) -> list[tuple[dict[str, float], float, int, float]]:
    """One continuous training session with correction strokes between phases.

    ``iterations[0]`` iterations on the sample's strokes, then for each further entry: predict,
    add 10 correction strokes into the largest wrong regions, keep training that many more
    iterations. Returns per phase ``(scores, painted fraction, iteration, cpu seconds)``.
    """
    torch.set_num_threads(threads)
    total = int(sum(iterations))
    aug = overrides.pop("augment", None)
    cfg = infer_config(sample.image.shape, sample.paintings, "exclusive", n_classes=3,
                       iterations=total, minutes=None, spacing=sample.spacing, seed=seed,
                       num_threads=threads, device="cpu", **overrides)
    if aug is not None:
        cfg = cfg.replace(augment=AugmentConfig(**aug))
    src = SnapshotSource()
    paint = sample.paintings
    src.put([TrainingImage(sample.image, paint)])
    trainer = Trainer(cfg, src, None)
    gen = trainer.run()
    out = []
    milestones = list(np.cumsum(iterations))
    cpu0 = time.process_time()
    phase = 0
    for ev in gen:
        if isinstance(ev, Failed):
            raise RuntimeError(ev.message + ev.traceback)
        if isinstance(ev, Progress) and ev.iteration % 50 == 0:
            print(f"  it {ev.iteration} loss {ev.loss:.3f} cpu {time.process_time() - cpu0:.0f}s",
                  file=sys.stderr, flush=True)
        if isinstance(ev, Progress) and ev.iteration == milestones[phase]:
            cpu = time.process_time() - cpu0
            predictor = Predictor(trainer.model, trainer.config, device="cpu")
            result = predictor.predict(sample.image, probabilities=save_prob is not None)
            pred = result.labels
            sc = scores(pred, sample.truth)
            if save_prob is not None:
                save_prob.mkdir(parents=True, exist_ok=True)
                np.save(save_prob / f"{sample.name}_seed{seed}_phase{phase}.npy", result.probabilities)
            if tta:
                tta_sc = scores(predictor.predict(sample.image, tta=True).labels, sample.truth)
                sc.update({f"tta_{k}": v for k, v in tta_sc.items()})
            trainer.model.train()
            out.append((sc, float(np.mean(paint > 0)), ev.iteration, cpu))
            phase += 1
            if phase == len(milestones):
                gen.close()
                break
            paint = correction_strokes(sample.truth, pred, paint, seed=phase)
            src.put([TrainingImage(sample.image, paint)])
    return out


def rf_pseudo_sample(sample: Sample, confidence: float) -> Sample:
    """Probe: paintings densified with confident random-forest labels (painted pixels kept)."""
    from dataclasses import replace

    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    feats = multiscale_basic_features(sample.image.astype(np.float32), sigma_min=1, sigma_max=16)
    flat = feats.reshape(-1, feats.shape[-1])
    lab = sample.paintings.reshape(-1)
    clf = RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=1, random_state=0)
    clf.fit(flat[lab > 0], lab[lab > 0])
    prob = clf.predict_proba(flat)
    pred = clf.classes_[prob.argmax(1)]
    dense = np.where((lab == 0) & (prob.max(1) >= confidence), pred, lab).astype(np.uint8)
    return replace(sample, paintings=dense.reshape(sample.paintings.shape))


def shift_outlines(sample: Sample, shift: int) -> Sample:
    """Probe: a less careful user, whose traced outlines (label 3) sit ``shift`` pixels outward
    (positive) or inward (negative) of where the simulation put them."""
    from dataclasses import replace

    from scipy import ndimage as ndi

    cross = ndi.generate_binary_structure(2, 1)
    paint = sample.paintings.copy()
    p3 = paint if paint.ndim == 3 else paint[None]
    for z in range(p3.shape[0]):
        ring = p3[z] == 3
        if not ring.any():
            continue
        obj = ndi.binary_fill_holes(ring)
        if shift > 0:
            grown = ndi.binary_dilation(obj, cross, iterations=shift)
            new = grown & ~ndi.binary_erosion(grown, cross)
        else:
            inner = ndi.binary_erosion(obj, cross, iterations=-shift)
            new = inner & ~ndi.binary_erosion(inner, cross)
        p3[z][ring] = 0
        p3[z][new] = 3
    return replace(sample, paintings=paint)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: one JSON line per (seed, phase) plus a mean line per phase."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, nargs="+", default=[300], help="iterations per phase")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="TrainConfig field=value")
    p.add_argument("--aug", action="append", default=[], help="AugmentConfig field=value")
    p.add_argument("--tta", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tag", default="")
    p.add_argument("--save-prob", type=Path, default=None,
                   help="folder: save the predicted probabilities of every (seed, phase) as .npy")
    p.add_argument("--rf-pseudo", type=float, default=None,
                   help="probe: add random-forest labels on unpainted pixels with confidence >= this")
    p.add_argument("--outline-shift", type=int, default=0,
                   help="probe: move the traced outlines this many pixels outward (>0) or inward (<0)")
    args = p.parse_args(argv)
    overrides = parse_sets(args.set)
    if args.aug:
        overrides["augment"] = parse_sets(args.aug)
    per_phase: list[list[dict[str, float]]] = [[] for _ in args.iters]
    t0 = time.perf_counter()
    for s in args.seeds:
        sample = sample_2d(s) if args.dim == 2 else sample_3d(s)
        if args.rf_pseudo is not None:
            sample = rf_pseudo_sample(sample, args.rf_pseudo)
        if args.outline_shift:
            sample = shift_outlines(sample, args.outline_shift)
        res = session(sample, dict(overrides), args.iters, seed=s, threads=args.threads, tta=args.tta,
                      save_prob=args.save_prob)
        for i, (sc, painted, it, cpu) in enumerate(res):
            per_phase[i].append(sc)
            print(json.dumps({"tag": args.tag, "seed": s, "phase": i, "it": it, "cpu": round(cpu, 1),
                              "painted": round(100 * painted, 2), **{k: round(v, 3) for k, v in sc.items()}}),
                  flush=True)
    for i, rows in enumerate(per_phase):
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"MEAN {args.tag} {args.dim}d phase {i} it {sum(args.iters[: i + 1])}: "
              + " ".join(f"{k} {v:.3f}" for k, v in mean.items())
              + f"  [{args.set} {args.aug}{' tta' if args.tta else ''}] {time.perf_counter() - t0:.0f}s wall",
              flush=True)


if __name__ == "__main__":
    main()
