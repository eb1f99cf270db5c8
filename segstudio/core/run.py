"""The run directory: what a training run leaves behind, and how to load it back.

::

    RUN/
      config.json     TrainConfig (model, classes, normalisation, ...)
      model.pt        state dict of the model, loaded with ``weights_only=True``
      optimizer.pt    optimizer state + iteration, for resuming (optional)
      history.csv     iteration, loss, seconds, lr
      classes.json    names, colours, mode, weights

Every file is written atomically (:mod:`segstudio.core.atomic`: temporary file in the same
folder, fsync, rename, fsync of the folder), so a process killed mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segstudio.core.annotations import MULTILABEL
from segstudio.core.atomic import atomic_torch_save, atomic_write_text
from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.features import FilteredNetwork, config_bank, config_channels
from segstudio.core.models import build_model, pooling_plan

CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
HISTORY_FILE = "history.csv"
CLASSES_FILE = "classes.json"
HISTORY_FIELDS = ("iteration", "loss", "seconds", "lr")


def model_from_config(config: TrainConfig) -> nn.Module:
    """Build the (untrained) network a config describes."""
    strides = pooling_plan(config.spatial_dims, len(config.features), config.network_spacing, config.patch)
    net = build_model(
        config.model,
        spatial_dims=config.spatial_dims,
        in_channels=config_channels(config),
        out_channels=config.n_classes,
        features=config.features,
        strides=strides,
        norm=config.norm,
    )
    if not config.input_filters and not config.output_smoothing and config.downsample == 1:
        return net
    return FilteredNetwork(config_bank(config), net, config.in_channels, input_norm=config.input_norm,
                           smoothing=config.output_smoothing, spacing=config.network_spacing,
                           multilabel=config.mode == MULTILABEL, reduction=config.reduction)


def save_run(
    run_dir: str | os.PathLike[str],
    config: TrainConfig,
    model: nn.Module,
    *,
    history: Sequence[Mapping[str, float]] = (),
    weights: Sequence[float] | None = None,
    optimizer_state: Mapping[str, Any] | None = None,
    iteration: int = 0,
) -> Path:
    """Write a complete run directory (each file atomically). Returns the directory."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(run / MODEL_FILE, state)
    if optimizer_state is not None:
        atomic_torch_save(run / OPTIMIZER_FILE, {"optimizer": optimizer_state, "iteration": iteration})
    atomic_write_text(run / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    classes = {
        "mode": config.mode,
        "names": list(config.names),
        "colors": list(config.colors),
        "weights": None if weights is None else [float(w) for w in weights],
        "iteration": iteration,
    }
    atomic_write_text(run / CLASSES_FILE, json.dumps(classes, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run / HISTORY_FILE, buf.getvalue())
    return run


@dataclass(frozen=True)
class LoadedRun:
    """A run loaded from disk."""

    path: Path
    config: TrainConfig
    model: nn.Module
    history: tuple[dict[str, float], ...]
    iteration: int
    optimizer_state: dict[str, Any] | None


def read_history(path: Path) -> tuple[dict[str, float], ...]:
    """Rows of ``history.csv`` (empty if the file is missing).

    Raises
    ------
    UserInputError
        A field that is empty or not a number, naming the row and the column.
    """
    if not path.exists():
        return ()
    rows = []
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):  # line 1 is the header
            parsed = {}
            for key, value in row.items():
                if key is None:
                    raise UserInputError(f"cannot read '{path}': line {line} has more fields than the header")
                text = value.strip() if isinstance(value, str) else ""
                try:
                    parsed[key] = float(text)
                except ValueError:
                    what = "is empty" if not text else f"is not a number ({text[:20]!r})"
                    raise UserInputError(f"cannot read '{path}': line {line}, field '{key}' {what}") from None
            rows.append(parsed)
    return tuple(rows)


def read_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory (``config.json`` only; no weights read).

    Raises
    ------
    UserInputError
        Missing folder or file, or a ``config.json`` that is not valid.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UserInputError(f"cannot load run '{run}': not a folder")
    cfg_path = run / CONFIG_FILE
    if not cfg_path.exists():
        raise UserInputError(f"cannot load run '{run}': {CONFIG_FILE} is missing")
    try:
        data = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot load run '{run}': {CONFIG_FILE} is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise UserInputError(f"cannot load run '{run}': {CONFIG_FILE} does not hold a JSON object")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise UserInputError(
            f"cannot load run '{run}': {CONFIG_FILE} has version {version!r}; expected a whole number")
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise UserInputError(f"cannot load run '{run}': {CONFIG_FILE} is not valid ({e})") from e


def load_run(run_dir: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> LoadedRun:
    """Load a run directory. ``model.pt`` is read with ``weights_only=True`` (no pickled code).

    Raises
    ------
    UserInputError
        Missing folder or files, unreadable/tampered weights, or weights that do not fit the
        config.
    """
    run = Path(run_dir)
    config = read_run_config(run)
    model_path = run / MODEL_FILE
    if not model_path.exists():
        raise UserInputError(f"cannot load run '{run}': {MODEL_FILE} is missing")
    try:
        state = torch.load(model_path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, truncation, unsafe globals
        raise UserInputError(
            f"cannot load '{model_path}': not a valid weights file ({type(e).__name__})"
        ) from e
    model = model_from_config(config)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise UserInputError(f"cannot load '{model_path}': weights do not match {CONFIG_FILE}") from e
    model.eval()
    opt_state = None
    iteration = 0
    opt_path = run / OPTIMIZER_FILE
    if opt_path.exists():
        try:
            blob = torch.load(opt_path, map_location=map_location, weights_only=True)
            opt_state = blob["optimizer"]
            iteration = int(blob["iteration"])
        except Exception:  # a damaged optimizer file only costs the optimizer state
            opt_state = None
    history = read_history(run / HISTORY_FILE)
    if not iteration and history:
        iteration = int(history[-1]["iteration"])
    return LoadedRun(run, config, model, history, iteration, opt_state)
