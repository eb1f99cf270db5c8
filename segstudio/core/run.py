"""The run directory: what a training run leaves behind, and how to load it back.

::

    RUN/
      config.json     TrainConfig (model, classes, normalisation, ...)
      model.pt        state dict of the model, loaded with ``weights_only=True``
      optimizer.pt    optimizer state + iteration, for resuming (optional)
      history.csv     iteration, loss, seconds, lr
      classes.json    names, colours, mode, weights

Every file is written atomically (temporary file in the same folder, fsync, rename), so a
process killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.models import build_model, pooling_plan

CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
HISTORY_FILE = "history.csv"
CLASSES_FILE = "classes.json"
HISTORY_FIELDS = ("iteration", "loss", "seconds", "lr")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entry table to disk so a rename inside it survives a power cut.

    A no-op where folders cannot be opened (Windows) or the file system refuses.
    """
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Read once at import (``os.umask`` can only be read by setting it, which is not thread-safe).
_UMASK = _read_umask()


def _final_mode(target: Path) -> int:
    """Permissions for a rewritten file: the old file's, else those of a newly created one
    (the temporary file is private, 0600, which would hide runs and exports from others)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically through ``write(file)``: temp file in the same folder, fsync,
    rename, fsync of the folder.

    ``write`` streams into an open binary file, so large arrays need no in-memory copy. On any
    failure (disk full, permission denied, an exception or interrupt in ``write``) the previous
    file is left untouched, the temporary file is removed, and an ``OSError`` is raised as
    :class:`UserInputError` naming the file (other exceptions propagate unchanged).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise UserInputError(f"cannot write '{target}': {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UserInputError(f"cannot write '{target}': {e.strerror or e}") from e
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_with`).

    On any failure (disk full, permission denied) the previous file is left untouched and the
    error is raised as :class:`UserInputError` naming the file.
    """
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` through :func:`atomic_write_bytes`."""
    return atomic_write_with(path, lambda fh: torch.save(obj, fh))


def model_from_config(config: TrainConfig) -> nn.Module:
    """Build the (untrained) network a config describes."""
    from segstudio.core.features import FilterBank, FilteredNetwork, n_filter_channels

    strides = pooling_plan(config.spatial_dims, len(config.features), config.spacing, config.patch)
    net = build_model(
        config.model,
        spatial_dims=config.spatial_dims,
        in_channels=n_filter_channels(config.in_channels, config.input_filters),
        out_channels=config.n_classes,
        features=config.features,
        strides=strides,
        norm=config.norm,
    )
    if not config.input_filters:
        return net
    bank = FilterBank(config.spatial_dims, config.input_filters, config.spacing, units=config.filter_units)
    return FilteredNetwork(bank, net, config.in_channels)


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
    """Rows of ``history.csv`` (empty if the file is missing)."""
    if not path.exists():
        return ()
    with path.open(newline="") as fh:
        return tuple({k: float(v) for k, v in row.items()} for row in csv.DictReader(fh))


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
        return TrainConfig.from_dict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError) as e:
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
