"""The GUI process keeps triton out (:func:`segstudio._qt.training.keep_triton_out`).

With a CUDA build of PyTorch, ``import torch._dynamo`` imports triton, and triton loaded after
an OpenGL driver that links LLVM (Mesa's llvmpipe under Xvfb, in VMs and remote desktops)
crashed ``segstudio open`` with a segmentation fault. CI's CPU PyTorch has no triton, so a
stand-in package whose import ends the process with a code of its own shows what would load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio._qt import training

ROOT = Path(__file__).resolve().parents[2]
CRASH = 86

# what the app does before it builds an optimizer or exports: warm up torch._dynamo
SCRIPT = """
import sys
if sys.argv[1] == "kept-out":
    from segstudio._qt.training import keep_triton_out
    assert keep_triton_out()
import torch
import torch._dynamo
torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
print("no triton")
"""


def _run(tmp_path: Path, how: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "site"
    (fake / "triton").mkdir(parents=True, exist_ok=True)
    (fake / "triton" / "__init__.py").write_text(f"import os\nos._exit({CRASH})\n")
    path = os.pathsep.join([str(fake), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path})


def test_torch_dynamo_loads_without_triton_once_it_is_kept_out(tmp_path):
    bare = _run(tmp_path, "bare")
    if bare.returncode != CRASH:
        pytest.skip(f"this PyTorch does not import triton with torch._dynamo (exit {bare.returncode})")
    kept = _run(tmp_path, "kept-out")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert "no triton" in kept.stdout


def test_it_can_be_allowed_and_an_imported_triton_stays(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", object())  # imported before: nothing to keep out
    assert training.keep_triton_out() is False
    monkeypatch.delitem(sys.modules, "triton")
    monkeypatch.setenv(training.ALLOW_TRITON_ENV, "1")
    assert training.keep_triton_out() is False and "triton" not in sys.modules


def test_the_widget_keeps_it_out(make_napari_viewer, monkeypatch):
    """The app and the plugin both make the widget (and its controller) first: triton is kept
    out before the controller's torch warm-up starts."""
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.delenv(training.ALLOW_TRITON_ENV, raising=False)
    from segstudio._qt.widget import SegStudioWidget

    SegStudioWidget(make_napari_viewer())
    assert "triton" in sys.modules and sys.modules["triton"] is None
