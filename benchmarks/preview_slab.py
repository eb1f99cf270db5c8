"""The app's 3-D live preview on a CPU: the slab on screen (the current slice ± 1, with the
network's margins) and the whole volume, a lone tile predicted alone or in a batch with a copy
of itself (:func:`segstudio.core.predictor.pair_single_tiles`).

Why it exists: PyTorch sends a convolution with a batch of one to its slow native kernel when
``N·C·D·H <= 20480``; the built-in 3-D sample's preview slab (19×96×96 with its margins) took
three times as long as the whole 32×96×96 volume, while the trainer waited for its turn. ::

    python benchmarks/preview_slab.py            # median of 5 per row, fast preset, untrained weights

The last line is one JSON object with every median (ms).
"""

from __future__ import annotations

import json
import time
from unittest import mock

import numpy as np
import torch

from segstudio.core import predictor as P
from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats
from segstudio.core.run import model_from_config
from segstudio.core.samples import sample_3d

REPEATS = 5


def median_ms(fn, repeats: int = REPEATS) -> float:
    """Median wall time of ``fn()`` in ms (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 1)


def main() -> dict[str, float]:
    sample = sample_3d()
    image = sample.image
    config = TrainConfig(n_classes=3, spatial_dims=3, spacing=sample.spacing)  # the app's fast preset
    torch.manual_seed(0)
    predictor = P.Predictor(model_from_config(config), config, device="cpu")
    stats = image_stats(image, None, config.percentiles)
    z = image.shape[0] // 2
    slab = (slice(z - 1, z + 2), slice(None), slice(None))
    out: dict[str, float] = {"threads": torch.get_num_threads()}
    for name, region in (("slab", slab), ("whole", None)):
        for paired in (True, False):
            rule = P.pair_single_tiles if paired else (lambda *a, **k: False)
            with mock.patch.object(P, "pair_single_tiles", rule):
                ms = median_ms(lambda: predictor.predict(image, None, region=region, stats=stats))
            out[f"{name}_{'paired' if paired else 'alone'}_ms"] = ms
            print(f"{name:5s} {'paired where the rule says' if paired else 'always alone':27s} {ms:7.1f} ms")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
