"""The README's "Using your model elsewhere" examples run as written, without segstudio.

The Python blocks of that section are executed in a fresh interpreter in which ``import
segstudio`` fails, next to a freshly exported tiny model and an ``image.tif``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats
from segstudio.core.export import export_model
from segstudio.core.predictor import Predictor
from segstudio.core.run import model_from_config

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using your model elsewhere"
BLOCK_TIMEOUT_S = 300


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README section :data:`SECTION`."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_a_five_line_onnxruntime_and_a_torchscript_example():
    blocks = readme_python_blocks()
    onnx_blocks = [b for b in blocks if "onnxruntime" in b]
    assert onnx_blocks and len(onnx_blocks[0].strip().splitlines()) <= 5
    assert any("torch.jit.load" in b for b in blocks)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny 2D model exported as model.pt/.pt2/.onnx, an image.tif, and the run's prediction."""
    pytest.importorskip("onnxruntime")
    tmp = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    image = rng.normal(200.0, 30.0, (64, 48)).astype(np.float32)
    image[16:40, 8:30] += 150.0
    tifffile.imwrite(tmp / "image.tif", image)
    import torch

    torch.manual_seed(0)
    cfg = TrainConfig(n_classes=3, spatial_dims=2, features=(4, 8, 16), patch_size=(64, 64),
                      class_names=("background", "cell", "edge"), normalization=image_stats(image))
    model = model_from_config(cfg).eval()
    for fmt in ("torchscript", "pt2", "onnx"):
        export_model(model, cfg, tmp / f"model{'.pt' if fmt == 'torchscript' else '.' + fmt}", fmt)
    expected = Predictor(model, cfg, device="cpu").predict(image).labels
    return tmp, expected


def _run_without_segstudio(code: str, cwd: Path) -> subprocess.CompletedProcess:
    guard = "import sys\nsys.modules['segstudio'] = None  # the examples must not need segstudio\n"
    return subprocess.run([sys.executable, "-c", guard + code], cwd=cwd, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)


def test_onnxruntime_example_runs_and_matches_segstudio(workdir):
    tmp, expected = workdir
    (block,) = [b for b in readme_python_blocks() if "onnxruntime" in b]
    proc = _run_without_segstudio(block + "\nnp.save('labels_onnx.npy', labels)\n", tmp)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp / "labels_onnx.npy"), expected)


def test_torchscript_example_runs(workdir):
    tmp, _ = workdir
    blocks = [b for b in readme_python_blocks() if "torch.jit.load" in b]
    assert blocks
    for block in blocks:
        proc = _run_without_segstudio(block + "\nimport numpy\nnumpy.save('labels_ts.npy', labels.numpy())\n", tmp)
        assert proc.returncode == 0, proc.stderr
        labels = np.load(tmp / "labels_ts.npy")
        assert labels.shape == (1, 64, 64) and set(np.unique(labels)) <= {1, 2, 3}
        assert "['background', 'cell', 'edge']" in proc.stdout


def test_pt2_alternative_in_the_comment_works(workdir):
    """The TorchScript example names ``torch.export.load("model.pt2").module()`` as the alternative."""
    tmp, _ = workdir
    (block,) = [b for b in readme_python_blocks() if "torch.jit.load" in b]
    alt = re.search(r"# or (torch\.export\.load\(\"model\.pt2\"\)\.module\(\))", block)
    assert alt, "the alternative is no longer named in the README"
    code = textwrap.dedent(f"""
        import torch
        model = {alt.group(1)}
        print(tuple((model(torch.rand(2, 1, 32, 16)).argmax(dim=1) + 1).shape))
    """)
    proc = _run_without_segstudio(code, tmp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("(2, 32, 16)")
