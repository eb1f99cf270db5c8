"""The app's 3-D live preview on a CPU: the slab on screen (the current slice ± 1, with the
network's margins) and the whole volume, a lone tile predicted alone or in a batch with a copy
of itself (:func:`segstudio.core.predictor.pair_single_tiles`).

Why it exists: PyTorch sends a convolution with a batch of one to its slow native kernel when
``N·C·D·H <= 20480``; the built-in 3-D sample's preview slab (19×96×96 with its margins) took
longer alone than the whole 32×96×96 volume, while the trainer waited for its turn. The app
now previews such a volume whole (:func:`segstudio.core.predictor.predict_work` is less), and
its preview model keeps the fixed filters' responses between previews
(:class:`segstudio.core.features.FilterCache`; *filters kept*). ::

    python benchmarks/preview_slab.py   # best of 5, alone and paired in turn; fast preset, untrained weights

The last line is one JSON object with every time (ms).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import torch

from segstudio.core import predictor as P
from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats
from segstudio.core.run import model_from_config
from segstudio.core.samples import sample_3d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import interleaved_best  # noqa: E402

REPEATS = 5


def main() -> dict[str, float]:
    sample = sample_3d()
    image = sample.image
    config = TrainConfig(n_classes=3, spatial_dims=3, spacing=sample.spacing)  # the app's fast preset
    torch.manual_seed(0)
    predictor = P.Predictor(model_from_config(config), config, device="cpu")
    cached_predictor = P.Predictor(model_from_config(config), config, device="cpu")
    cached_predictor.load_state(predictor.model.state_dict())
    cached_predictor.model.cache_filters()
    stats = image_stats(image, None, config.percentiles)
    z = image.shape[0] // 2
    slab = (slice(z - 1, z + 2), slice(None), slice(None))
    out: dict[str, float] = {"threads": torch.get_num_threads()}
    for name, region in (("slab", slab), ("whole", None)):
        def paired(region=region):
            return predictor.predict(image, None, region=region, stats=stats)

        def alone(region=region):
            with mock.patch.object(P, "pair_single_tiles", lambda *a, **k: False):
                return predictor.predict(image, None, region=region, stats=stats)

        def cached(region=region):  # the app's preview: filter responses kept between previews
            return cached_predictor.predict(image, None, region=region, stats=stats)

        best, _ = interleaved_best([paired, alone, cached], REPEATS)
        for label, how, seconds in (("paired", "paired where the rule says", best[0]),
                                    ("alone", "always alone", best[1]),
                                    ("cached", "paired, filters kept", best[2])):
            out[f"{name}_{label}_ms"] = round(1e3 * seconds, 1)
            print(f"{name:5s} {how:27s} {1e3 * seconds:7.1f} ms")
    cpu = torch.device("cpu")
    out["slab_work"], out["whole_work"] = P.predict_work(config, image.shape, slab, cpu), P.predict_work(config, image.shape, None, cpu)
    print(f"voxels the network computes (predict_work): slab {out['slab_work']}, whole {out['whole_work']}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
