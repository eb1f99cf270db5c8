"""Model export: TorchScript, torch.export, ONNX and bioimage.io, and loading them back.

One tiny 3D run, trained on a NIfTI volume, is exported once to every format (module fixture);
the tests then check each export against the run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from segstudio.core.config import TrainConfig
from segstudio.core.data import SnapshotSource, TrainingImage, image_stats, normalize
from segstudio.core.errors import UserInputError
from segstudio.core.export import (
    EXTENSIONS, FORMATS, ExportedNetwork, ExportFinished, ExportProgress, export_metadata,
    export_model, export_run, input_constraints, iter_export, load_exported, load_predictor,
    resolve_formats, scale_range,
)
from segstudio.core.io import read_image
from segstudio.core.predictor import Predictor
from segstudio.core.run import load_run, model_from_config, save_run
from segstudio.core.trainer import infer_config, train

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")

TINY = dict(features=(4, 8), patch_size=(4, 16, 16), batch_size=1, num_threads=1, warmup=1, seed=0,
            amp=False, device="cpu")
SHAPE = (6, 21, 26)  # not multiples of the network's step: the loaders must pad and crop
AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])
AFFINE[:3, 3] = (10.0, -5.0, 3.0)


def _volume() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vol = rng.normal(100.0, 10.0, SHAPE).astype(np.float32)
    vol[:, 6:14, 8:18] += 80.0
    lab = np.zeros(SHAPE, np.uint8)
    lab[:, 0:2, :] = 1
    lab[:, 9:11, 10:16] = 2
    lab[:, 18:20, 2:6] = 3
    return vol, lab


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run trained on a NIfTI volume, exported to every format into one folder."""
    tmp = tmp_path_factory.mktemp("export")
    vol, lab = _volume()
    # segstudio's (z, y, x) order is NIfTI's (k, j, i): write the volume transposed.
    nib.save(nib.Nifti1Image(vol.T.copy(), AFFINE), tmp / "vol.nii.gz")
    image, meta = read_image(tmp / "vol.nii.gz")
    assert image.shape == SHAPE and meta.spacing is not None
    cfg = infer_config(image.shape, lab, "exclusive", iterations=2, spacing=tuple(meta.spacing),
                       class_names=("background", "cell", "edge"), class_colors=("#000000", "#ff0000", "#00ff00"),
                       **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(np.asarray(image), lab)])
    list(train(cfg, src, tmp / "run"))
    events = list(iter_export(load_run(tmp / "run").model, load_run(tmp / "run").config, tmp / "out", "all",
                              image=np.asarray(image), authors=["Ada Lovelace"]))
    return {"dir": tmp, "run": tmp / "run", "image": np.asarray(image), "events": events,
            "paths": events[-1].paths}


def test_export_all_writes_every_format_with_progress(exported):
    events = exported["events"]
    assert isinstance(events[-1], ExportFinished)
    progress = [e for e in events if isinstance(e, ExportProgress)]
    assert progress[-1].done == progress[-1].total and progress[0].done == 0
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    paths = exported["paths"]
    assert set(paths) == set(FORMATS)
    mask = os.umask(0)
    os.umask(mask)
    for fmt, p in paths.items():
        assert p.suffix == EXTENSIONS[fmt] and p.stat().st_size > 0
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask  # not the private mode of a temp file


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_predicts_the_runs_labels(exported, fmt):
    image = exported["image"]
    ref = Predictor.from_run(exported["run"], device="cpu").predict(image, probabilities=True)
    pred = load_predictor(exported["paths"][fmt], device="cpu")
    got = pred.predict(image, probabilities=True)
    assert isinstance(pred.model, ExportedNetwork)
    assert got.labels.shape == SHAPE and got.labels.dtype == ref.labels.dtype
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-5)
    assert pred.config.names == ("background", "cell", "edge")


# --------------------------------------------------------------------------- exact on a grid of shapes
def _trained_export(tmp, image, lab, ch, spacing, patch, features, iterations=30, formats="all", **overrides):
    """A run trained ``iterations`` steps, exported to ``formats`` (every format)."""
    cfg = infer_config(image.shape, lab, "exclusive", channel_axis=ch, iterations=iterations, spacing=spacing,
                       **{**TINY, "patch_size": patch, "features": features, **overrides})
    src = SnapshotSource()
    src.put([TrainingImage(image, lab, ch)])
    events = list(train(cfg, src, tmp / "run"))
    assert events[-1].__class__.__name__ == "Finished", events[-1]
    loaded = load_run(tmp / "run")
    paths = export_model(loaded.model, loaded.config, tmp / "out", formats, image=image, channel_axis=ch)
    return tmp / "run", paths


@pytest.fixture(scope="module")
def grid_exports(tmp_path_factory):
    """An anisotropic 3D run (z not pooled) and a two-channel 2D run, each trained 30 steps and
    exported to every format: the issue's case was a 30-step run on a 31x61x57 NIfTI volume.

    The 3D run also has the Hessian-anisotropy channels (mixed derivatives, a square root) and
    the region statistics (cumulative sums, a clamp, a quotient), standardised as *textures*
    has them, so that they are shown to survive each kind of graph export (bioimage.io packages
    these) on every shape of the grid; one input filter scale keeps the graph half the size
    with the same operations. It smooths its logits in prediction (``output_smoothing``, as
    *textures* does): each export carries the smoothing, and tiles reach far enough for it. And
    it works on the volume shrunk in-plane (*downsample* 2: blocks of 1 × 2 × 2), which each
    export carries too (a block mean in, a linear enlargement out)."""
    tmp = tmp_path_factory.mktemp("grid")
    rng = np.random.default_rng(5)
    vol = rng.normal(100.0, 10.0, (9, 41, 37)).astype(np.float32)
    vol[:, 10:30, 8:25] += 60.0
    lab3 = np.zeros(vol.shape, np.uint8)
    lab3[:, 0:3, :] = 1
    lab3[:, 18:22, 12:20] = 2
    lab3[:, 12:13, 8:25] = 3
    (tmp / "3d").mkdir()
    vol[:, 32:35, :] += 80.0  # a sheet: a ridge across y
    run3, paths3 = _trained_export(tmp / "3d", vol, lab3, None, (2.5, 0.8, 0.8), (8, 32, 32), (4, 8, 16),
                                   filter_texture=True, filter_context=(4.0,), input_norm=True, input_filters=(1.0,),
                                   output_smoothing=3.0, downsample=2)
    img = rng.random((48, 45, 2)).astype(np.float32)
    img[10:30, 10:30, 0] += 1.0
    img[20:40, 5:25, 1] += 1.0
    lab2 = np.zeros((48, 45), np.uint8)
    lab2[0:3] = 1
    lab2[15:20, 15:20] = 2
    (tmp / "2d").mkdir()
    run2, paths2 = _trained_export(tmp / "2d", img, lab2, 2, None, (32, 32), (4, 8, 16))
    return {3: (run3, paths3), 2: (run2, paths2)}


GRID = {
    3: [(9, 41, 37), (31, 61, 57), (5, 17, 33), (13, 64, 64), (2, 9, 11), (1, 1, 1)],
    2: [(48, 45), (130, 61), (64, 64), (5, 7), (1, 1)],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dims", [3, 2])
def test_exports_predict_exactly_the_runs_labels_on_a_grid_of_shapes(grid_exports, dims, fmt):
    """Odd shapes, an anisotropic volume, two channels, sizes that are not multiples of the
    network's step (and smaller than one step): identical labels, probabilities within 1e-5."""
    run, paths = grid_exports[dims]
    ref_pred = Predictor.from_run(run, device="cpu")
    pred = load_predictor(paths[fmt], device="cpu")
    assert isinstance(pred.model, ExportedNetwork)
    rng = np.random.default_rng(dims)
    for shape in GRID[dims]:
        if dims == 2:
            image = (rng.random((*shape, 2)) * 2).astype(np.float32)
            ch = 2
        else:
            image = rng.normal(120.0, 30.0, shape).astype(np.float32)
            ch = None
        ref = ref_pred.predict(image, ch, probabilities=True)
        got = pred.predict(image, ch, probabilities=True)
        np.testing.assert_array_equal(got.labels, ref.labels, err_msg=f"{fmt} {shape}")
        np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-5, err_msg=f"{fmt} {shape}")


def _onnx_session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_is_valid_dynamic_and_matches_torch(exported):
    onnx = pytest.importorskip("onnx")
    path = exported["paths"]["onnx"]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[1] == 1
    model = load_run(exported["run"]).model
    step = model.divisor
    assert step[0] == 1 and step[1] > 1  # z (spacing 2 vs 0.8) is never pooled, y and x are
    assert dims[2:] == ["z", *[f"{d}*{a}_blocks" for d, a in zip(step[1:], "yx")]]
    session = _onnx_session(path)
    rng = np.random.default_rng(1)
    # random input: two sizes, batch 1 and 3
    for batch, blocks in ((1, (2, 3, 4)), (3, (3, 5, 2))):
        x = rng.normal(size=(batch, 1, *[d * b for d, b in zip(step, blocks)])).astype(np.float32)
        y = session.run(None, {"input": x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, atol=1e-4)
    # real input: the normalised training volume, cropped to a valid size
    image = exported["image"]
    x = normalize(image, image_stats(image))[None]
    x = np.ascontiguousarray(x[(..., *[slice(0, (n // d) * d) for n, d in zip(SHAPE, step)])])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], ref, atol=1e-4)


def test_onnx_refuses_sizes_that_are_not_multiples_of_the_step(exported):
    session = _onnx_session(exported["paths"]["onnx"])
    step = load_run(exported["run"]).model.divisor
    bad = np.zeros((1, 1, step[0] * 2, step[1] * 2 + 1, step[2] * 2), np.float32)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime raises its own error types
        session.run(None, {"input": bad})


def _metadata_of(fmt: str, path) -> dict:
    if fmt == "torchscript":
        extra = {"segstudio.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        return json.loads(extra["segstudio.json"])
    if fmt == "pt2":
        extra = {"segstudio.json": ""}
        torch.export.load(str(path), extra_files=extra)
        return json.loads(extra["segstudio.json"])
    if fmt == "onnx":
        onnx = pytest.importorskip("onnx")
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return json.loads(props["segstudio"])
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("segstudio.json"))
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    assert rdf["config"]["segstudio"] == meta
    return meta


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_export_is_self_describing(exported, fmt):
    meta = _metadata_of(fmt, exported["paths"][fmt])
    cfg = load_run(exported["run"]).config
    assert [c["name"] for c in meta["classes"]] == ["background", "cell", "edge"]
    assert [c["color"] for c in meta["classes"]] == ["#000000", "#ff0000", "#00ff00"]
    assert meta["mode"] == "exclusive"
    assert meta["normalization"]["percentiles"] == list(cfg.percentiles)
    assert meta["normalization"]["training_image_low"] == list(cfg.normalization.lo)
    assert meta["input"]["step"] == list(load_run(exported["run"]).model.divisor)
    assert TrainConfig.from_dict(meta["config"]) == cfg


# --------------------------------------------------------------------------- bioimage.io
REQUIRED_TOP = ("type", "format_version", "name", "description", "authors", "license", "inputs", "outputs",
                "weights", "documentation", "covers", "cite")


def _zip(path):
    zf = zipfile.ZipFile(path)
    return zf, yaml.safe_load(zf.read("rdf.yaml"))


def test_bioimageio_rdf_has_the_required_fields(exported):
    """Our own schema check of model spec 0.5 (always runs; bioimageio.spec is optional)."""
    zf, rdf = _zip(exported["paths"]["bioimageio"])
    names = set(zf.namelist())
    for key in REQUIRED_TOP:
        assert rdf.get(key), key
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5.")
    assert rdf["authors"] == [{"name": "Ada Lovelace"}]
    assert set(rdf["name"]) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    for entry in [rdf["documentation"], *rdf["covers"], *[a["source"] for a in rdf["attachments"]]]:
        assert entry in names
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space", "space"]
    assert [a.get("id") for a in inp["axes"][2:]] == ["z", "y", "x"]
    step = load_run(exported["run"]).model.divisor
    mins, steps = input_constraints(step)
    assert [a["size"] for a in inp["axes"][2:]] == [{"min": m, "step": s} for m, s in zip(mins, steps)]
    assert [a["scale"] for a in inp["axes"][2:]] == pytest.approx(read_image(exported["dir"] / "vol.nii.gz")[1].spacing)
    assert inp["data"]["type"] == "float32" and out["data"]["type"] == "float32"
    (scale,) = [p for p in inp["preprocessing"] if p["id"] == "scale_range"]
    cfg = load_run(exported["run"]).config
    assert (scale["kwargs"]["min_percentile"], scale["kwargs"]["max_percentile"]) == cfg.percentiles
    assert scale["kwargs"]["axes"] == ["z", "y", "x"]  # per sample and channel
    assert out["postprocessing"] == [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    assert out["axes"][1]["channel_names"] == ["background", "cell", "edge"]
    assert [a["size"] for a in out["axes"][2:]] == [{"tensor_id": "raw", "axis_id": a} for a in "zyx"]
    assert set(rdf["weights"]) == {"torchscript", "onnx"}
    assert rdf["weights"]["torchscript"]["pytorch_version"] and rdf["weights"]["onnx"]["opset_version"] >= 17
    # every referenced file is in the zip with the right checksum
    for entry in [*rdf["weights"].values(), inp["test_tensor"], out["test_tensor"], inp["sample_tensor"],
                  out["sample_tensor"], *rdf["attachments"]]:
        assert hashlib.sha256(zf.read(entry["source"])).hexdigest() == entry["sha256"]
    # the test tensors: a valid crop of the training image, and what the weights make of it
    x = np.load(io.BytesIO(zf.read(inp["test_tensor"]["source"])))
    y = np.load(io.BytesIO(zf.read(out["test_tensor"]["source"])))
    assert x.dtype == np.float32 and x.shape[:2] == (1, 1)
    assert all(n >= m and (n - m) % s == 0 for n, m, s in zip(x.shape[2:], mins, steps))
    assert np.isin(x, exported["image"]).all()  # cut from the training image, not synthetic
    ts = torch.jit.load(io.BytesIO(zf.read(rdf["weights"]["torchscript"]["source"])))
    with torch.no_grad():
        logits = ts(torch.from_numpy(scale_range(x, cfg.percentiles)))
    np.testing.assert_allclose(y, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert zf.read("cover.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_bioimageio_spec_validates_the_package(exported, monkeypatch):
    spec = pytest.importorskip("bioimageio.spec")
    from packaging.version import Version

    if Version(spec.__version__) < Version("0.5.14"):
        pytest.skip("bioimageio.spec < 0.5.14 cannot serialise with pydantic >= 2.12")
    descr = spec.load_description(str(exported["paths"]["bioimageio"]), perform_io_checks=True)
    summary = descr.validation_summary
    assert summary.status == "valid-format", summary.format()


@pytest.mark.slow
def test_bioimageio_core_reproduces_the_test_outputs(exported):
    pytest.importorskip("bioimageio.spec")
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(str(exported["paths"]["bioimageio"]))
    assert summary.status == "passed", summary.format()


# --------------------------------------------------------------------------- smaller cases
def _tiny_2d(mode="exclusive", n=2, channels=1):
    torch.manual_seed(0)
    img = np.random.default_rng(0).random((channels, 30, 19)).astype(np.float32) if channels > 1 else \
        np.random.default_rng(0).random((30, 19)).astype(np.float32)
    ch = 0 if channels > 1 else None
    cfg = TrainConfig(mode=mode, n_classes=n, spatial_dims=2, in_channels=channels, features=(4, 8, 16),
                      patch_size=(16, 16), normalization=image_stats(img, ch))
    return model_from_config(cfg).eval(), cfg, img, ch


def test_multilabel_multichannel_torchscript_round_trip(tmp_path):
    model, cfg, img, ch = _tiny_2d("multilabel", n=3, channels=2)
    paths = export_model(model, cfg, tmp_path / "ml.pt", "torchscript")
    assert paths == {"torchscript": tmp_path / "ml.pt"}
    ref = Predictor(model, cfg, device="cpu").predict(img, ch, probabilities=True)
    got = load_predictor(tmp_path / "ml.pt", device="cpu").predict(img, ch, probabilities=True)
    assert got.labels.shape == (3, 30, 19)
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-5)
    assert export_metadata(cfg, model.divisor)["output"]["activation"] == "sigmoid"


def test_state_dict_next_to_config_loads_as_its_run(tmp_path):
    model, cfg, img, _ = _tiny_2d()
    save_run(tmp_path / "run", cfg, model)
    pred = load_predictor(tmp_path / "run" / "model.pt", device="cpu")
    assert not isinstance(pred.model, ExportedNetwork)
    np.testing.assert_array_equal(pred.predict(img).labels, Predictor(model, cfg, device="cpu").predict(img).labels)


def test_export_run_to_a_file_without_extension_adds_it(tmp_path):
    model, cfg, _, _ = _tiny_2d()
    save_run(tmp_path / "run", cfg, model)
    assert export_run(tmp_path / "run", tmp_path / "out", "torchscript") == {"torchscript": tmp_path / "out.pt"}
    (tmp_path / "folder").mkdir()
    assert export_run(tmp_path / "run", tmp_path / "folder", "torchscript") == {
        "torchscript": tmp_path / "folder" / "model.pt"}


def test_synthetic_test_input_is_valid_and_in_the_training_range():
    from segstudio.core.export import _synthetic_test_image

    model, cfg, _, _ = _tiny_2d(channels=2)
    x = _synthetic_test_image(cfg, model.divisor)
    mins, steps = input_constraints(model.divisor)
    assert x.shape[0] == 2 and all(n >= m and n % s == 0 for n, m, s in zip(x.shape[1:], mins, steps))
    for c in range(2):
        assert cfg.normalization.lo[c] <= x[c].min() and x[c].max() <= cfg.normalization.hi[c]


@pytest.mark.parametrize(("formats", "out", "message"), [
    ("keras", "m.h5", "unknown export format"),
    ("onnx", "m.pt", "does not fit --format onnx"),
])
def test_export_errors_are_one_line(tmp_path, formats, out, message):
    model, cfg, _, _ = _tiny_2d()
    with pytest.raises(UserInputError, match=message):
        export_model(model, cfg, tmp_path / out, formats)


def test_resolve_formats():
    assert resolve_formats("all") == FORMATS
    assert resolve_formats(["onnx", "onnx", "pt2"]) == ("onnx", "pt2")


@pytest.mark.parametrize("name", ["bad.pt", "bad.onnx", "bad.zip", "bad.pt2", "bad.h5"])
def test_loading_garbage_is_a_user_error(tmp_path, name):
    (tmp_path / name).write_bytes(b"not a model at all")
    with pytest.raises(UserInputError, match="cannot load model"):
        load_exported(tmp_path / name)


def test_loading_a_foreign_torchscript_says_it_lacks_metadata(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(torch.nn.Conv2d(1, 2, 1), torch.zeros(1, 1, 4, 4)), str(tmp_path / "x.pt"))
    with pytest.raises(UserInputError, match="without segstudio metadata"):
        load_exported(tmp_path / "x.pt")


def test_a_levelled_run_exports_its_levelling(tmp_path, monkeypatch):
    """*Level slices*: segstudio's loaders level as the run does (same labels); the metadata
    states the rule and the training offsets; the bioimage.io package takes the levelled volume
    (its test input is a levelled crop, and its README says so)."""
    import segstudio.core.export as export

    monkeypatch.setattr(export, "onnx_export_available", lambda: False)  # the package without ONNX weights: faster
    rng = np.random.default_rng(4)
    vol = rng.normal(100.0, 5.0, (8, 24, 24)).astype(np.float32)
    vol += np.linspace(0, 60, 8, dtype=np.float32)[:, None, None]  # the background runs along z
    vol[:, 8:16, 8:16] += 30.0
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, :] = 1
    lab[:, 10:14, 10:14] = 2
    run, paths = _trained_export(tmp_path, vol, lab, None, (2.0, 1.0, 1.0), (4, 16, 16), (4, 8), iterations=3,
                                 formats=("torchscript", "bioimageio"), level_slices=True)
    ref = Predictor.from_run(run, device="cpu").predict(vol, None)
    assert Predictor.from_run(run, device="cpu").config.level_slices
    got = load_predictor(paths["torchscript"], device="cpu")
    assert got.config.level_slices
    np.testing.assert_array_equal(got.predict(vol, None).labels, ref.labels)
    with zipfile.ZipFile(paths["bioimageio"]) as zf:
        meta = json.loads(zf.read("segstudio.json"))
        test_input = np.load(io.BytesIO(zf.read("test_input.npy")))
        readme = zf.read("README.md").decode()
    norm = meta["normalization"]
    assert norm["level_slices"] and norm["rule"].startswith("levelled per z slice")
    assert len(norm["training_image_slice_offsets"][0]) == vol.shape[0]
    assert "must be levelled first" in readme
    # the test input's slices share one background level (the raw crop's rose by ~8 per slice)
    background = np.median(test_input[0, 0, :, :2, :], axis=(1, 2))
    assert np.ptp(background) < 10.0
