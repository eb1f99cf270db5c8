"""The npe2 manifest is valid and its commands import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import npe2


def test_npe2_validate_with_imports():
    npe2_exe = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2_exe), "validate", "segstudio", "--imports"] if npe2_exe.exists() else [
        sys.executable, "-m", "npe2", "validate", "segstudio", "--imports"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_manifest_contributions():
    pm = npe2.PluginManifest.from_distribution("segstudio")
    pm.validate_imports()
    ids = {c.id for c in pm.contributions.commands}
    assert ids == {f"segstudio.{n}" for n in ("make_widget", "get_reader", "write_labels", "sample_2d", "sample_3d")}
    assert {s.key for s in pm.contributions.sample_data} == {"nuclei2d", "nuclei3d"}
    patterns = set(pm.contributions.readers[0].filename_patterns)
    assert {"*.tif", "*.tiff", "*.nii", "*.nii.gz", "*.npy", "*.zarr"} <= patterns
    assert pm.contributions.writers[0].layer_types == ["labels"]
