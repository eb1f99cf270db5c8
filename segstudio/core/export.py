"""Export a run to files other tools load, and load such files back for prediction.

Formats (``FORMATS``):

``torchscript`` (``.pt``)
    A traced TorchScript module: loads with ``torch.jit.load`` (Python or C++/libtorch) and in
    Fiji/deepImageJ, no segstudio needed. ``torch.jit`` is deprecated in the installed torch
    (2.9+ warns) but it is what deepImageJ and the bioimage.io ``torchscript`` weights entry
    load, so it stays the default torch format.
``pt2`` (``.pt2``)
    A ``torch.export`` program (what torch recommends now): ``torch.export.load(f).module()``.
``onnx`` (``.onnx``)
    ONNX (opset :data:`ONNX_OPSET`, exported through ``torch.export``, checked with
    ``onnx.checker``), for onnxruntime and C++ services without PyTorch.
``bioimageio`` (``.zip``)
    A bioimage.io model package: ``rdf.yaml`` (model spec 0.5), TorchScript and ONNX weights,
    test input/output ``.npy``, a cover image and a ``README.md``.

Every exported network takes the *normalised* image ``(N, C, *spatial)`` float32 and returns
logits ``(N, K, *spatial)``. Spatial sizes must be multiples of the network's down-sampling
factor (:func:`input_constraints`); batch and spatial sizes are dynamic. The normalisation is
not baked in because it is a per-image rule (percentiles of the whole image, per channel), which
a network that only sees one tile cannot apply. It is written into every export, together with
the class names, colours and mode, as the JSON document :func:`export_metadata` (``segstudio.json``
inside the ``.pt``/``.pt2``/``.zip``, the ``segstudio`` metadata property of the ``.onnx``).
A run trained with *level slices* normalises each volume per z slice first (:data:`LEVEL_RULE`);
bioimage.io preprocessing has no such step, so its package takes the levelled volume (its test
input is a levelled crop, its README says so), while segstudio's own loaders level as in training.

:func:`load_predictor` reads any of these files back into a
:class:`~segstudio.core.predictor.Predictor`: the same padding and tiling run (one policy,
decided from the config the export carries), only the network call goes through TorchScript,
``torch.export`` or onnxruntime, so an export predicts exactly the run's labels.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import importlib.util
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import tifffile
import torch
from torch import nn
from torch.export import Dim

import segstudio
from segstudio.core.annotations import MULTILABEL
from segstudio.core.atomic import atomic_write_bytes
from segstudio.core.config import TrainConfig
from segstudio.core.data import LEVEL_QUANTILE, LEVEL_SIGMA, image_stats, levelled, to_channels_first
from segstudio.core.device import resolve_device
from segstudio.core.errors import UserInputError
from segstudio.core.predictor import Predictor, input_constraints, read_tile
from segstudio.core.run import load_run

#: Export formats, in the order ``all`` writes them.
FORMATS: tuple[str, ...] = ("torchscript", "pt2", "onnx", "bioimageio")
#: File extension per format.
EXTENSIONS: dict[str, str] = {"torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx", "bioimageio": ".zip"}
#: File stem used when exporting several formats into a folder.
DEFAULT_STEM = "model"
#: Version of the ``segstudio.json`` document.
EXPORT_VERSION = 1
#: Name of the metadata document inside archives (and the ONNX metadata key, minus ``.json``).
METADATA_FILE = "segstudio.json"
ONNX_METADATA_KEY = "segstudio"
#: ONNX opset written (>= 17 is required by the issue; 18 is torch's current default).
ONNX_OPSET = 18
#: bioimage.io model spec version written into ``rdf.yaml``.
BIOIMAGEIO_FORMAT_VERSION = "0.5.4"
DEFAULT_LICENSE = "CC-BY-4.0"
DEFAULT_AUTHOR = "segstudio user"
#: ``eps`` of the bioimage.io ``scale_range`` preprocessing (``(x - lo) / (hi - lo + eps)``).
SCALE_RANGE_EPS = 1e-6
#: Side of each of the two square panels of the bioimage.io cover image (pixels).
COVER_PANEL = 256
#: Seed of the synthetic test image used when no training image is given.
SYNTHETIC_SEED = 0
#: Example size (in steps) of the first spatial axis when tracing (odd, see _example_input).
EXAMPLE_BLOCKS = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_AXIS_NAMES = {2: "yx", 3: "zyx"}


# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class ExportProgress:
    """Step ``done`` of ``total`` finished; ``message`` says what comes next."""

    done: int
    total: int
    message: str


@dataclass(frozen=True)
class ExportFinished:
    """All requested formats are written: ``paths[format] = file``."""

    paths: dict[str, Path]


# --------------------------------------------------------------------------- metadata
def network_divisor(model: nn.Module, spatial_dims: int) -> tuple[int, ...]:
    """Per-axis factor that the network's input sizes must be multiples of."""
    divisor = getattr(model, "divisor", None)
    if divisor is None:
        return (1,) * spatial_dims
    return tuple(int(d) for d in divisor)


#: The *level slices* step of the normalisation, in words (exports of levelled runs).
LEVEL_RULE = (f"levelled per z slice: each slice, per channel, less its background level (the slice's "
              f"{LEVEL_QUANTILE:g} % quantile, smoothed along z by a Gaussian of sigma {LEVEL_SIGMA:g} slice, less "
              "the mean of those levels over the slices)")


def export_metadata(config: TrainConfig, divisor: Sequence[int]) -> dict[str, Any]:
    """The self-description shipped with every export (JSON-ready).

    Holds the classes (names, colours), the mode, the input normalisation rule and the
    training image's statistics, the input constraints, how to turn logits into labels, and
    the full training config (so segstudio can rebuild a predictor from it).
    """
    mins, step = input_constraints(divisor)
    axes = _AXIS_NAMES[config.spatial_dims]
    norm = config.normalization
    multilabel = config.mode == MULTILABEL
    return {
        "format": "segstudio-model",
        "version": EXPORT_VERSION,
        "segstudio_version": segstudio.__version__,
        "mode": config.mode,
        "classes": [{"name": n, "color": c} for n, c in zip(config.names, config.colors)],
        "input": {
            "name": INPUT_NAME,
            "axes": "bc" + axes,
            "channels": config.in_channels,
            "dtype": "float32",
            "min_shape": list(mins),
            "step": list(step),
            "spacing": None if config.spacing is None else list(config.spacing),
        },
        "normalization": {
            "rule": (LEVEL_RULE + ", then " if config.level_slices else "")
            + "per image and per channel: (x - p_low) / (p_high - p_low), where p_low and "
              "p_high are the percentiles of that channel over the whole image; NaN/inf -> 0",
            "percentiles": list(config.percentiles),
            "level_slices": bool(config.level_slices),
            "training_image_low": None if norm is None else list(norm.lo),
            "training_image_high": None if norm is None else list(norm.hi),
            "training_image_slice_offsets": None if norm is None or not norm.offsets
            else [list(o) for o in norm.offsets],
        },
        "output": {
            "name": OUTPUT_NAME,
            "axes": "bc" + axes,
            "kind": "logits",
            "activation": "sigmoid" if multilabel else "softmax",
            "labels": "channel k is class k+1: present where logit > 0" if multilabel
                      else "label = argmax over channels + 1 (classes are 1..K)",
        },
        "patch": list(config.sample_patch),
        "config": config.to_dict(),
    }


def _metadata_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2)


def _config_from_metadata(meta: dict[str, Any], where: str) -> TrainConfig:
    if not isinstance(meta, dict) or meta.get("format") != "segstudio-model":
        raise UserInputError(f"cannot load model '{where}': it carries no segstudio metadata")
    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UserInputError(f"cannot load model '{where}': its metadata has version {version!r}; "
                             "expected a whole number")
    if version > EXPORT_VERSION:
        raise UserInputError(
            f"cannot load model '{where}': written by a newer segstudio (export version {version})"
        )
    try:
        return TrainConfig.from_dict(meta["config"])
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise UserInputError(f"cannot load model '{where}': its segstudio metadata is not valid ({e})") from e


# --------------------------------------------------------------------------- tracing
def _example_input(config: TrainConfig, divisor: Sequence[int], batch: int = 2) -> torch.Tensor:
    """A valid input whose sizes differ per axis and from any channel count.

    Sizes are odd multiples of the step (never powers of two like the feature counts), so
    that the tracer cannot mistake a spatial size for a constant it also sees elsewhere.
    """
    _, step = input_constraints(divisor)
    shape = [d * (EXAMPLE_BLOCKS + 2 * i) for i, d in enumerate(step)]
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    return torch.randn(batch, config.in_channels, *shape, generator=g)


def _dynamic_shapes(config: TrainConfig, divisor: Sequence[int]) -> dict[int, Any]:
    mins, step = input_constraints(divisor)
    dims: dict[int, Any] = {0: Dim("batch", min=1)}
    for i, (name, m, d) in enumerate(zip(_AXIS_NAMES[config.spatial_dims], mins, step)):
        dims[i + 2] = d * Dim(f"{name}_blocks", min=m // d) if d > 1 else Dim(name, min=m)
    return dims


def _torch_export(model: nn.Module, config: TrainConfig, divisor: Sequence[int]) -> Any:
    """``torch.export`` program of ``model`` with dynamic batch and spatial sizes."""
    x = _example_input(config, divisor)
    with torch.no_grad():
        return torch.export.export(model, (x,), dynamic_shapes=(_dynamic_shapes(config, divisor),))


def _trace(model: nn.Module, config: TrainConfig, divisor: Sequence[int]) -> torch.jit.ScriptModule:
    x = _example_input(config, divisor)
    with warnings.catch_warnings(), torch.no_grad():
        # torch.jit is deprecated in torch >= 2.9 (see the module docstring); tracer warnings
        # about python booleans concern the model's padding branch, which a valid size skips.
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, x, check_trace=False)


def _torchscript_bytes(model: nn.Module, config: TrainConfig, divisor: Sequence[int], meta_json: str) -> bytes:
    traced = _trace(model, config, divisor)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, buf, _extra_files={METADATA_FILE: meta_json})
    return buf.getvalue()


def _pt2_bytes(program: Any, meta_json: str) -> bytes:
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={METADATA_FILE: meta_json})
    return buf.getvalue()


def onnx_export_available() -> bool:
    """``True`` when the ONNX exporter's packages (``onnx``, ``onnxscript``) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def _onnx_bytes(program: Any, config: TrainConfig, divisor: Sequence[int], meta_json: str) -> bytes:
    try:
        import onnx
    except ImportError as e:
        raise UserInputError(
            "ONNX export needs the 'onnx' and 'onnxscript' packages: pip install 'segstudio[onnx]'"
        ) from e
    x = _example_input(config, divisor)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # exporter progress prints
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(
                program, (x,), dynamo=True, external_data=False, opset_version=ONNX_OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )
        except ImportError as e:  # onnxscript missing
            raise UserInputError(
                f"ONNX export needs the 'onnxscript' package ({e}): pip install 'segstudio[onnx]'"
            ) from e
    proto = prog.model_proto
    _name_onnx_dims(proto, config)
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta_json
    proto.doc_string = "segstudio U-Net: normalised image -> logits; see the 'segstudio' metadata property"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _name_onnx_dims(proto: Any, config: TrainConfig) -> None:
    """Give the symbolic sizes readable names (``batch``, ``y_blocks``, ...) everywhere."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = ["batch", None, *[f"{a}_blocks" for a in _AXIS_NAMES[config.spatial_dims]]]
    mapping: dict[str, str] = {}
    for dim, name in zip(dims, names):
        symbols = re.findall(r"[A-Za-z_]\w*", dim.dim_param) if name else []
        if len(symbols) == 1:
            mapping[symbols[0]] = name if "*" in dim.dim_param or name == "batch" else name[: -len("_blocks")]
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in mapping) + r")\b")
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: mapping[m.group(1)], dim.dim_param)


# --------------------------------------------------------------------------- bioimage.io
def _test_crop(
    image: np.ndarray, channel_axis: int | None, config: TrainConfig, divisor: Sequence[int]
) -> np.ndarray:
    """``(1, C, *spatial)`` float32 crop of the image with a valid size (centre of the image;
    an axis shorter than that size is padded as the predictor pads, :func:`read_tile`)."""
    chw = np.asarray(to_channels_first(np.asarray(image), channel_axis), dtype=np.float32)
    mins, step = input_constraints(divisor)
    sizes = [max((min(n, p) // d) * d, m) for n, p, m, d in zip(chw.shape[1:], config.sample_patch, mins, step)]
    starts = [max((n - size) // 2, 0) for n, size in zip(chw.shape[1:], sizes)]
    return np.ascontiguousarray(read_tile(chw, starts, sizes)[None])


def _synthetic_test_image(config: TrainConfig, divisor: Sequence[int]) -> np.ndarray:
    """A random ``(C, *spatial)`` image in the training image's value range."""
    mins, step = input_constraints(divisor)
    shape = [max((p // d) * d, m) for p, m, d in zip(config.sample_patch, mins, step)]
    rng = np.random.default_rng(SYNTHETIC_SEED)
    norm = config.normalization
    lo = np.asarray(norm.lo if norm else [0.0] * config.in_channels, dtype=np.float32)
    hi = np.asarray(norm.hi if norm else [1.0] * config.in_channels, dtype=np.float32)
    x = rng.random((config.in_channels, *shape), dtype=np.float32)
    return lo.reshape(-1, *[1] * len(shape)) + x * (hi - lo).reshape(-1, *[1] * len(shape))


def scale_range(x: np.ndarray, percentiles: Sequence[float], eps: float = SCALE_RANGE_EPS) -> np.ndarray:
    """bioimage.io ``scale_range`` per sample and channel of a ``(N, C, *spatial)`` array."""
    axes = tuple(range(2, x.ndim))
    lo = np.percentile(x, percentiles[0], axis=axes, keepdims=True)
    hi = np.percentile(x, percentiles[1], axis=axes, keepdims=True)
    return ((x - lo) / (hi - lo + eps)).astype(np.float32)


def _activate(logits: np.ndarray, mode: str) -> np.ndarray:
    if mode == MULTILABEL:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _tiff_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="minisblack")
    return buf.getvalue()


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    if len(c) != 6:
        return (128, 128, 128)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _cover_png(test_input: np.ndarray, labels: np.ndarray, config: TrainConfig) -> bytes:
    """2:1 PNG: the test input (first channel, middle slice) and the predicted classes.

    ``labels``: exclusive ``(*spatial)`` 1..K; multilabel ``(K, *spatial)`` 0/1.
    """
    img = test_input[0, 0]
    lab = labels if config.mode == MULTILABEL else labels[None]
    if img.ndim == 3:  # middle z slice
        img, lab = img[img.shape[0] // 2], lab[:, lab.shape[1] // 2]
    lo, hi = np.percentile(img, config.percentiles)
    gray = (np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
    colors = np.array([_hex_to_rgb(c) for c in config.colors], dtype=np.uint8)
    if config.mode == MULTILABEL:  # colour of the last present class
        rgb = np.zeros((*gray.shape, 3), np.uint8)
        for k in range(lab.shape[0]):
            rgb[lab[k] > 0] = colors[k]
    else:
        rgb = colors[lab[0].astype(np.int64) - 1]
    ys = np.arange(COVER_PANEL) * gray.shape[0] // COVER_PANEL
    xs = np.arange(COVER_PANEL) * gray.shape[1] // COVER_PANEL
    left = np.repeat(gray[np.ix_(ys, xs)][..., None], 3, axis=2)
    right = rgb[np.ix_(ys, xs)]
    return iio.imwrite("<bytes>", np.concatenate([left, right], axis=1), extension=".png")


def _bioimageio_name(name: str) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    cleaned = "".join(ch if ch in allowed else "-" for ch in name).strip() or "segstudio model"
    return cleaned[:128]


def _readme(name: str, description: str, meta: dict[str, Any], formats: Sequence[str]) -> str:
    classes = "\n".join(f"- {i}: **{c['name']}** (`{c['color']}`)" for i, c in enumerate(meta["classes"], 1))
    norm = meta["normalization"]
    inp = meta["input"]
    return f"""# {name}

{description}

Trained with [segstudio](https://github.com/segstudio/segstudio) ({meta['mode']} mode).

## Classes

{classes}

## Input

`{inp['axes']}` float32 with {inp['channels']} channel(s). Spatial sizes must be multiples of
{inp['step']} (at least {inp['min_shape']}); batch and spatial sizes are otherwise free.

Normalisation (applied by bioimage.io consumers as the `scale_range` preprocessing):
{norm['rule']}, percentiles {norm['percentiles']}.{_level_note(meta)}

## Output

`{meta['output']['axes']}` logits, one channel per class; the `{meta['output']['activation']}`
postprocessing turns them into probabilities. {meta['output']['labels']}.

## Validation

`test_input.npy` → `test_output.npy` is reproduced by both weight formats (bioimage.io's
`test_model`; segstudio's own tests check TorchScript, ONNX and the run agree). The model was
trained from a few painted strokes on one image: check its predictions on your own images
(segstudio computes Dice and the 95 % Hausdorff distance against a ground-truth layer) before
relying on it.

## Files

Weights: {', '.join(formats)}. `segstudio.json` holds the full segstudio metadata;
`segstudio predict --model this.zip --image IMG --out OUT` predicts with it.
"""


def _level_note(meta: dict[str, Any]) -> str:
    """README's paragraph for a levelled run (``""`` for others)."""
    if not meta["normalization"].get("level_slices"):
        return ""
    return ("\n\n**The input must be levelled first.** This model was trained on volumes levelled per z "
            "slice (segstudio's *level slices*), a step bioimage.io preprocessing cannot express: "
            "`test_input.npy` is such a levelled crop. Level a volume as the rule above says before "
            "giving it to another tool, or predict with `segstudio predict --model`, which levels it.")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bioimageio_rdf(
    meta: dict[str, Any],
    *,
    name: str,
    description: str,
    authors: Sequence[str],
    license: str,
    files: dict[str, bytes],
) -> dict[str, Any]:
    """The ``rdf.yaml`` document (bioimage.io model spec 0.5) for an export's metadata.

    ``files`` maps the package's file names (``weights.pt``, ``model.onnx``, ``test_input.npy``,
    ``test_output.npy``, ``cover.png``, ``README.md``, ``segstudio.json``) to their bytes; the
    weights entries list those present.
    """
    axes_names = meta["input"]["axes"][2:]
    n_in = int(meta["input"]["channels"])
    in_axes: list[dict[str, Any]] = [
        {"type": "batch"},
        {"type": "channel", "channel_names": [f"channel{c}" for c in range(n_in)]},
    ]
    spacing = meta["input"].get("spacing")
    for i, (a, m, s) in enumerate(zip(axes_names, meta["input"]["min_shape"], meta["input"]["step"])):
        axis: dict[str, Any] = {"type": "space", "id": a, "size": {"min": int(m), "step": int(s)}}
        if spacing is not None and len(spacing) == len(axes_names):
            axis["scale"] = float(spacing[i])
        in_axes.append(axis)
    out_axes: list[dict[str, Any]] = [
        {"type": "batch"},
        {"type": "channel", "channel_names": [_channel_id(c["name"], k) for k, c in enumerate(meta["classes"])]},
    ]
    for i, a in enumerate(axes_names):
        axis = {"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}}
        if spacing is not None and len(spacing) == len(axes_names):
            axis["scale"] = float(spacing[i])
        out_axes.append(axis)
    p_lo, p_hi = meta["normalization"]["percentiles"]
    weights: dict[str, Any] = {}
    if "weights.pt" in files:
        weights["torchscript"] = {
            "source": "weights.pt",
            "sha256": _sha256(files["weights.pt"]),
            "pytorch_version": torch.__version__.split("+")[0],
        }
    if "model.onnx" in files:
        weights["onnx"] = {
            "source": "model.onnx",
            "sha256": _sha256(files["model.onnx"]),
            "opset_version": ONNX_OPSET,
        }
        if "torchscript" in weights:
            weights["onnx"]["parent"] = "torchscript"
    activation = meta["output"]["activation"]
    postprocessing: list[dict[str, Any]] = (
        [{"id": "sigmoid"}] if activation == "sigmoid" else [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    )
    return {
        "type": "model",
        "format_version": BIOIMAGEIO_FORMAT_VERSION,
        "name": _bioimageio_name(name),
        "description": description,
        "authors": [{"name": a} for a in authors],
        "cite": [{"text": "segstudio: paint a few strokes, train a U-Net",
                  "url": "https://github.com/segstudio/segstudio"}],
        "license": license,
        "tags": ["segstudio", "unet", "semantic-segmentation", f"{len(axes_names)}d", meta["mode"]],
        "documentation": "README.md",
        "covers": ["cover.png"],
        "attachments": [{"source": METADATA_FILE, "sha256": _sha256(files[METADATA_FILE])}],
        "inputs": [{
            "id": "raw",
            "description": ("image levelled per z slice (see README.md); " if meta["normalization"].get("level_slices")
                            else "image; ") + "scaled per sample and channel between the given percentiles",
            "axes": in_axes,
            "test_tensor": {"source": "test_input.npy", "sha256": _sha256(files["test_input.npy"])},
            "sample_tensor": {"source": "sample_input.tif", "sha256": _sha256(files["sample_input.tif"])},
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {
                    "axes": list(axes_names), "min_percentile": float(p_lo), "max_percentile": float(p_hi),
                    "eps": SCALE_RANGE_EPS,
                }},
            ],
        }],
        "outputs": [{
            "id": "probabilities",
            "description": f"class probabilities ({activation} of the network's logits); {meta['output']['labels']}",
            "axes": out_axes,
            "test_tensor": {"source": "test_output.npy", "sha256": _sha256(files["test_output.npy"])},
            "sample_tensor": {"source": "sample_output.tif", "sha256": _sha256(files["sample_output.tif"])},
            "data": {"type": "float32"},
            "postprocessing": postprocessing,
        }],
        "weights": weights,
        "config": {"segstudio": meta},
        "timestamp": _timestamp(),
    }


def _timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _channel_id(name: str, k: int) -> str:
    ident = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name).strip("_")
    return ident or f"class{k + 1}"


def _dump_yaml(doc: dict[str, Any]) -> str:
    try:
        import yaml
    except ImportError:  # JSON is valid YAML
        return json.dumps(doc, indent=2)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _bioimageio_zip(
    model: nn.Module,
    config: TrainConfig,
    divisor: Sequence[int],
    meta: dict[str, Any],
    weights: dict[str, bytes],
    *,
    image: np.ndarray | None,
    channel_axis: int | None,
    name: str,
    description: str,
    authors: Sequence[str],
    license: str,
) -> bytes:
    if image is None:
        raw = _synthetic_test_image(config, divisor)[None]
    else:
        if config.level_slices:  # the package's input is the levelled volume (LEVEL_RULE)
            stats = image_stats(image, channel_axis, config.percentiles, level_slices=True)
            image = levelled(image, stats, channel_axis)
            channel_axis = 0
        raw = _test_crop(image, channel_axis, config, divisor)
    with torch.no_grad():
        logits = model(torch.from_numpy(scale_range(raw, config.percentiles))).float().numpy()
    probs = _activate(logits, config.mode)
    if config.mode == MULTILABEL:
        labels = (logits[0] > 0).astype(np.uint8)
    else:
        labels = (logits[0].argmax(axis=0) + 1).astype(np.uint8)
    meta_json = _metadata_json(meta)
    files: dict[str, bytes] = {
        **weights,
        "test_input.npy": _npy_bytes(raw.astype(np.float32)),
        "test_output.npy": _npy_bytes(probs),
        "cover.png": _cover_png(raw, labels, config),
        "sample_input.tif": _tiff_bytes(raw.astype(np.float32)),
        "sample_output.tif": _tiff_bytes(probs),
        METADATA_FILE: meta_json.encode("utf-8"),
    }
    present = [fmt for fmt, fname in (("torchscript", "weights.pt"), ("onnx", "model.onnx")) if fname in weights]
    files["README.md"] = _readme(name, description, meta, present).encode("utf-8")
    rdf = bioimageio_rdf(meta, name=name, description=description, authors=authors, license=license, files=files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rdf.yaml", _dump_yaml(rdf))
        for fname, data in files.items():
            zf.writestr(fname, data)
    return buf.getvalue()


# --------------------------------------------------------------------------- export
def _out_paths(out: str | os.PathLike[str], formats: Sequence[str]) -> dict[str, Path]:
    out_p = Path(out)
    if len(formats) == 1 and not out_p.is_dir() and not str(out).endswith(os.sep):
        fmt = formats[0]
        if not out_p.suffix:
            out_p = out_p.with_suffix(EXTENSIONS[fmt])
        elif out_p.suffix.lower() != EXTENSIONS[fmt]:
            raise UserInputError(
                f"--out '{out}' does not fit --format {fmt}: expected a '{EXTENSIONS[fmt]}' file"
            )
        return {fmt: out_p}
    if out_p.exists() and not out_p.is_dir():
        raise UserInputError(f"--out '{out}' must be a folder when exporting several formats")
    return {fmt: out_p / f"{DEFAULT_STEM}{EXTENSIONS[fmt]}" for fmt in formats}


def resolve_formats(fmt: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` → :data:`FORMATS`; validates names."""
    names = list(FORMATS) if fmt == "all" else ([fmt] if isinstance(fmt, str) else list(fmt))
    for f in names:
        if f not in FORMATS:
            raise UserInputError(f"unknown export format '{f}': expected one of {', '.join(FORMATS)} or all")
    return tuple(dict.fromkeys(names))


def iter_export(
    model: nn.Module,
    config: TrainConfig,
    out: str | os.PathLike[str],
    formats: str | Sequence[str] = "all",
    *,
    image: np.ndarray | None = None,
    channel_axis: int | None = None,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
) -> Iterator[ExportProgress | ExportFinished]:
    """Export ``model`` (with ``config``) to ``formats``, yielding progress.

    Parameters
    ----------
    model, config
        The trained network and its run config (as from :func:`segstudio.core.run.load_run`).
    out
        A file (one format; the extension must fit or is added) or a folder (several formats:
        ``model.pt``, ``model.pt2``, ``model.onnx``, ``model.zip`` inside it).
    formats
        ``"all"``, one name of :data:`FORMATS` or a list of them.
    image, channel_axis
        The training image (raw); the bioimage.io test input and cover are cut from it. Without
        it a random image in the training value range is used.
    name, description, authors, license
        bioimage.io fields (defaults: the config's class names, :data:`DEFAULT_AUTHOR`,
        :data:`DEFAULT_LICENSE`).

    Raises
    ------
    UserInputError
        Unknown format, an output path that does not fit, or missing ONNX packages.
    """
    fmts = resolve_formats(formats)
    paths = _out_paths(out, fmts)
    model = copy.deepcopy(model).cpu().eval()  # the caller's model stays where it is
    divisor = network_divisor(model, config.spatial_dims)
    meta = export_metadata(config, divisor)
    meta_json = _metadata_json(meta)
    need_ts = "torchscript" in fmts or "bioimageio" in fmts
    # The bioimage.io zip carries ONNX weights too when the ONNX exporter is installed.
    need_onnx = "onnx" in fmts or ("bioimageio" in fmts and onnx_export_available())
    need_program = "pt2" in fmts or need_onnx
    total = int(need_ts) + int(need_program) + int(need_onnx) + int("bioimageio" in fmts)
    done = 0
    blobs: dict[str, bytes] = {}
    if need_ts:
        yield ExportProgress(done, total, "tracing TorchScript")
        blobs["torchscript"] = _torchscript_bytes(model, config, divisor, meta_json)
        done += 1
    program = None
    if need_program:
        yield ExportProgress(done, total, "torch.export")
        program = _torch_export(model, config, divisor)
        blobs["pt2"] = _pt2_bytes(program, meta_json)
        done += 1
    if need_onnx:
        yield ExportProgress(done, total, "ONNX")
        blobs["onnx"] = _onnx_bytes(program, config, divisor, meta_json)
        done += 1
    if "bioimageio" in fmts:
        yield ExportProgress(done, total, "bioimage.io package")
        blobs["bioimageio"] = _bioimageio_zip(
            model, config, divisor, meta,
            {"weights.pt": blobs["torchscript"], **({"model.onnx": blobs["onnx"]} if "onnx" in blobs else {})},
            image=image, channel_axis=channel_axis,
            name=name or f"segstudio {' '.join(config.names)}",
            description=description or (
                f"segstudio U-Net ({config.spatial_dims}D, {config.mode}) segmenting "
                f"{', '.join(config.names)}"),
            authors=list(authors) or [DEFAULT_AUTHOR], license=license,
        )
        done += 1
    written = {fmt: atomic_write_bytes(paths[fmt], blobs[fmt]) for fmt in fmts}
    yield ExportProgress(total, total, "done")
    yield ExportFinished(written)


def export_model(
    model: nn.Module, config: TrainConfig, out: str | os.PathLike[str], formats: str | Sequence[str] = "all",
    **kwargs: Any,
) -> dict[str, Path]:
    """Run :func:`iter_export` to the end; returns ``{format: path}``."""
    result: dict[str, Path] = {}
    for ev in iter_export(model, config, out, formats, **kwargs):
        if isinstance(ev, ExportFinished):
            result = ev.paths
    return result


def export_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
               formats: str | Sequence[str] = "all", **kwargs: Any) -> dict[str, Path]:
    """Export a run directory (see :func:`iter_export` for the keyword arguments)."""
    loaded = load_run(run_dir)
    return export_model(loaded.model, loaded.config, out, formats, **kwargs)


# --------------------------------------------------------------------------- loading back
class ExportedNetwork(nn.Module):
    """An exported network behind the ``nn.Module`` interface the predictor uses.

    Takes inputs of sizes the export accepts (the predictor's tiles always are: it pads the
    image, once, the same way for a run and for every export; see
    :mod:`segstudio.core.predictor`) and calls the backend.

    Parameters
    ----------
    call
        ``(N, C, *spatial) float32 tensor -> (N, K, *spatial) tensor`` (TorchScript,
        ``torch.export`` module or an onnxruntime session wrapper).
    divisor
        Per-axis step of valid sizes.
    backend
        ``"torchscript"``, ``"pt2"`` or ``"onnx"`` (for messages).
    """

    def __init__(self, call: Callable[[torch.Tensor], torch.Tensor], divisor: Sequence[int], backend: str) -> None:
        super().__init__()
        self._call = [call]  # a list: not registered as a submodule (torch.export modules refuse .eval())
        self.divisor = tuple(int(d) for d in divisor)
        self.min_shape, _ = input_constraints(self.divisor)
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (same spatial size).

        Raises
        ------
        ValueError
            A spatial size that is not a multiple of the step or below the minimum.
        """
        spatial = tuple(x.shape[2:])
        if any(n % d or n < m for n, d, m in zip(spatial, self.divisor, self.min_shape)):
            raise ValueError(
                f"{self.backend} model: input size {spatial} is not a multiple of {self.divisor} "
                f"of at least {self.min_shape}; pad it first (segstudio's predictor does)")
        return self._call[0](x.float().contiguous())


class _TorchCall:
    """A torch module moved lazily to the input's device."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.device = torch.device("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.device:
            self.module.to(x.device)
            self.device = x.device
        return self.module(x)


class _OnnxCall:
    """An onnxruntime session as a tensor → tensor function."""

    def __init__(self, data: bytes, where: str, device: torch.device) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise UserInputError(
                f"cannot load model '{where}': ONNX models need onnxruntime (pip install 'segstudio[onnx]')"
            ) from e
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(data, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise UserInputError(f"cannot load model '{where}': not a valid ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(y).to(x.device)


def _read_torchscript(data: bytes, where: str) -> tuple[Any, dict[str, Any]]:
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as e:  # RuntimeError for state dicts and garbage alike
        raise UserInputError(
            f"cannot load model '{where}': not a TorchScript file ({type(e).__name__}); a run's own "
            "model.pt is loaded through its run folder"
        ) from e
    if not extra[METADATA_FILE]:
        raise UserInputError(f"cannot load model '{where}': a TorchScript file without segstudio metadata")
    return module.eval(), json.loads(extra[METADATA_FILE])


def _read_pt2(data: bytes, where: str) -> tuple[Any, dict[str, Any]]:
    extra = {METADATA_FILE: ""}
    try:
        program = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as e:
        raise UserInputError(f"cannot load model '{where}': not a torch.export file ({type(e).__name__})") from e
    if not extra[METADATA_FILE]:
        raise UserInputError(f"cannot load model '{where}': a .pt2 file without segstudio metadata")
    return program.module(), json.loads(extra[METADATA_FILE])


def _onnx_metadata(data: bytes, where: str) -> dict[str, Any]:
    try:
        import onnx
    except ImportError as e:
        raise UserInputError(f"cannot load model '{where}': ONNX models need onnx (pip install 'segstudio[onnx]')") from e
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf DecodeError and friends
        raise UserInputError(f"cannot load model '{where}': not a valid ONNX file") from e
    for prop in proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return json.loads(prop.value)
    raise UserInputError(f"cannot load model '{where}': an ONNX file without segstudio metadata")


def load_exported(path: str | os.PathLike[str], device: str = "auto") -> tuple[ExportedNetwork, TrainConfig]:
    """Load an exported ``.pt``/``.pt2``/``.onnx``/``.zip`` as a network and its config.

    A bioimage.io zip is read through its TorchScript weights (or ONNX if that is all it has).

    Raises
    ------
    UserInputError
        Missing file, unknown extension, a file segstudio did not export, or a missing runtime.
    """
    p = Path(path)
    where = str(path)
    if not p.is_file():
        raise UserInputError(f"cannot load model '{where}': not found")
    dev = resolve_device(device)
    suffix = p.suffix.lower()
    data = p.read_bytes()
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = set(zf.namelist())
                if "weights.pt" in names:
                    suffix, data = ".pt", zf.read("weights.pt")
                elif "model.onnx" in names:
                    suffix, data = ".onnx", zf.read("model.onnx")
                else:
                    raise UserInputError(f"cannot load model '{where}': no segstudio weights in the package")
        except zipfile.BadZipFile as e:
            raise UserInputError(f"cannot load model '{where}': not a valid zip file") from e
    if suffix == ".pt":
        module, meta = _read_torchscript(data, where)
        call: Callable[[torch.Tensor], torch.Tensor] = _TorchCall(module)
        backend = "torchscript"
    elif suffix == ".pt2":
        module, meta = _read_pt2(data, where)
        call, backend = _TorchCall(module), "pt2"
    elif suffix == ".onnx":
        meta = _onnx_metadata(data, where)
        call, backend = _OnnxCall(data, where, dev), "onnx"
    else:
        raise UserInputError(
            f"cannot load model '{where}': expected a run folder or an exported "
            f"{', '.join(sorted(set(EXTENSIONS.values())))} file"
        )
    config = _config_from_metadata(meta, where)
    return ExportedNetwork(call, meta["input"]["step"], backend), config


def load_predictor(model: str | os.PathLike[str], device: str = "auto") -> Predictor:
    """A :class:`~segstudio.core.predictor.Predictor` from a run folder or an exported file.

    A run's own ``model.pt`` (a state dict next to ``config.json``) loads as its run folder.
    """
    p = Path(model)
    if p.is_dir():
        return Predictor.from_run(p, device=device)
    if not p.exists():
        raise UserInputError(f"cannot load model '{model}': not found")
    if p.suffix.lower() == ".pt" and (p.parent / "config.json").exists() and not _is_torchscript(p):
        return Predictor.from_run(p.parent, device=device)
    net, config = load_exported(p, device=device)
    return Predictor(net, config, device=device, amp=False)


def _is_torchscript(path: Path) -> bool:
    """``True`` for a TorchScript archive (it has a ``code/`` folder), ``False`` for a state dict."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


__all__ = [
    "EXTENSIONS", "FORMATS", "ExportFinished", "ExportProgress", "ExportedNetwork", "bioimageio_rdf",
    "export_metadata", "export_model", "export_run", "input_constraints", "iter_export",
    "load_exported", "load_predictor", "network_divisor", "onnx_export_available", "resolve_formats",
    "scale_range",
]
