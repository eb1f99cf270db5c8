"""The ``segstudio`` app entry points start and close cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

SEGSTUDIO = str(Path(sys.executable).with_name("segstudio"))


def _run(args, quit_after_ms, timeout=180):
    env = {**os.environ, "SEGSTUDIO_QUIT_AFTER_MS": str(quit_after_ms)}
    return subprocess.run([SEGSTUDIO, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_app_opens_an_image_and_quits(tmp_path):
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    proc = _run([str(tmp_path / "img.npy")], 500)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_demo_trains_and_closes_cleanly():
    """The demo starts training; closing the window mid-training exits without hanging."""
    proc = _run(["demo"], 6000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_bad_image_is_one_clear_error(tmp_path):
    proc = _run([str(tmp_path / "missing.tif")], 500, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("segstudio: error:") and "missing.tif" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_build_viewer_with_sample(make_napari_viewer, monkeypatch):
    import napari

    from segstudio._qt.app import build_viewer

    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer(**kw))
    viewer, widget = build_viewer([], "nuclei2d", show=False)
    try:
        assert viewer.title == "segstudio"
        assert widget.controller.image_layer.name == "nuclei2d"
        assert [c.name for c in widget.controller.classes] == ["background", "nucleus", "boundary"]
    finally:
        viewer.close()
    assert widget.controller.closed
