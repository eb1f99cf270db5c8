"""The project folder: images, paintings, classes, runs and autosave, in files a person can read.

::

    PROJECT/
      project.json          version, mode, classes (name, colour, pinned weight), weight method,
                            images (relative path, or copied into images/), training settings,
                            the last run
      images/               images copied into the project (only those added with copy=True)
      paintings/NAME.TIME.npz    the paintings of image NAME as saved at TIME (compressed numpy,
                            key "paintings"); project.json names the current file
      predictions/NAME.TIME.npz  the last prediction of image NAME (optional)
      runs/YYYYmmdd-HHMMSS/ one folder per training run (config.json, model.pt, history.csv, ...)
      autosave/             paintings written every few seconds and at training start;
                            offered for recovery when newer than the last save

Every file is written atomically (temporary file in the same folder, fsync, rename, fsync of
the folder; see :mod:`segstudio.core.atomic`). A save is one transaction
(:func:`save_project`): the paintings and predictions go to *new* file names, then
``project.json``, which names them, replaces the old one in one rename, and only then are the
files it no longer names removed. A failure at any step leaves the project as it was before the
save; it never names a file that is not complete, nor paintings of another save.

Paths in ``project.json`` are relative to the project folder (with the absolute path kept as a
fallback), so a project folder can be moved or shared together with its images.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.annotations import (
    ABSENT,
    EXCLUSIVE,
    MULTILABEL,
    check_mode,
    validate_exclusive,
    validate_multilabel,
)
from segstudio.core.atomic import atomic_write_text, atomic_write_with, write_folder
from segstudio.core.config import DEFAULT_COLORS
from segstudio.core.errors import UserInputError
from segstudio.core.run import MODEL_FILE
from segstudio.core.weights import count_paintings

__all__ = [
    "AUTOSAVE_DIR",
    "ClassMismatch",
    "KeptAutosave",
    "DEFAULT_AUTOSAVE_EVERY_S",
    "DEFAULT_CLASS_NAMES",
    "PROJECT_FILE",
    "PROJECT_VERSION",
    "Project",
    "ProjectClass",
    "ProjectImage",
    "Recovery",
    "IMAGE_STATES",
    "add_image",
    "autosave",
    "check_fits",
    "check_same_dims",
    "describe_dims",
    "holdout_of",
    "image_info",
    "image_state",
    "painted_counts",
    "regions_mask",
    "remove_image",
    "update_images",
    "check_run_fits",
    "default_classes",
    "discard_autosave",
    "find_project",
    "image_path",
    "kept_autosaves",
    "latest_run",
    "load_project",
    "migrate",
    "new_run_dir",
    "open_paintings",
    "paintings_file",
    "prune_kept_autosaves",
    "read_image_of",
    "read_paintings",
    "read_predictions",
    "recover_paintings",
    "recovery",
    "safe_name",
    "save_project",
    "set_aside",
    "set_last_run",
    "stored_path",
    "untitled_folder",
    "with_classes",
    "without_extra_classes",
]

PROJECT_FILE = "project.json"
#: The classes of a new project when none are named.
DEFAULT_CLASS_NAMES = ("background", "foreground")
#: Version of the ``project.json`` layout this segstudio writes (and the newest it reads).
#: 2: each image names its paintings and prediction files (written under new names per save).
PROJECT_VERSION = 2
FORMAT_NAME = "segstudio-project"
IMAGES_DIR = "images"
PAINTINGS_DIR = "paintings"
PREDICTIONS_DIR = "predictions"
RUNS_DIR = "runs"
AUTOSAVE_DIR = "autosave"
AUTOSAVE_FILE = "autosave.json"
ARRAY_KEY = "paintings"
#: Seconds between autosaves of the paintings in the app.
DEFAULT_AUTOSAVE_EVERY_S = 30.0
#: Environment variable: where sessions never saved as a project are autosaved
#: (default ``~/.segstudio``; they go to ``$SEGSTUDIO_HOME/autosave/NAME-HASH/``).
HOME_ENV = "SEGSTUDIO_HOME"
#: Untitled autosaves kept aside per image (the newest), and the age after which they go.
KEEP_AUTOSAVES = 5
KEEP_AUTOSAVE_DAYS = 30.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_STAMP_FORMAT = "%Y%m%d-%H%M%S"
#: What follows ``NAME`` in the files a save writes: ``.YYYYmmdd-HHMMSS[-N]``.
_SAVE_TOKEN = r"\.\d{8}-\d{6}(?:-\d+)?"


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ProjectClass:
    """One class, in a project and in the app: display name, ``#rrggbb`` colour and an
    optional pinned weight (``None``: computed from the paintings)."""

    name: str
    color: str
    pinned: float | None = None


@dataclass(frozen=True)
class ProjectImage:
    """One image of a project.

    Attributes
    ----------
    name
        Unique name in the project; also the file name of its paintings (``paintings/NAME.npz``).
    path
        Relative to the project folder (POSIX separators) when possible, else absolute.
    absolute
        The absolute path when the image was added (fallback when the relative one is gone).
    channel_axis
        The image's channel axis, or ``None`` for single-channel images.
    copied
        True when the file lives in the project's ``images/`` folder.
    paintings
        The image's paintings file, relative to the project folder (``""``: none saved yet).
    prediction
        Its last prediction file, relative to the project folder (``""``: none).
    shape
        The spatial shape (``()``: not known, a project written before it was kept), so a
        project lists its images without opening them.
    channels
        The number of channels.
    painted
        Painted pixels per class in the saved paintings (multi-label: present or absent).
    labels
        The labels file *Predict all* / ``segstudio predict --project`` wrote for the image
        (relative to the project folder; never removed by a save).
    predicted_by
        The run whose model made that prediction (relative to the project folder).
    uncertainty
        The mean entropy of that prediction (0 certain .. 1 undecided), or ``None``.
    reviewed
        The user looked at (and corrected) the prediction.
    validation
        The whole image is for validation: its paintings are not trained on, the trainer
        reports Dice on them.
    regions
        Validation regions of the image: boxes ``(start..., stop...)`` over its spatial axes.
    """

    name: str
    path: str
    absolute: str = ""
    channel_axis: int | None = None
    copied: bool = False
    paintings: str = ""
    prediction: str = ""
    shape: tuple[int, ...] = ()
    channels: int = 1
    painted: tuple[int, ...] = ()
    labels: str = ""
    predicted_by: str = ""
    uncertainty: float | None = None
    reviewed: bool = False
    validation: bool = False
    regions: tuple[tuple[int, ...], ...] = ()

    @property
    def state(self) -> str:
        """``unpainted``, ``painted``, ``predicted`` or ``reviewed`` (:data:`IMAGE_STATES`)."""
        return image_state(sum(self.painted), bool(self.predicted_by), self.reviewed)


@dataclass(frozen=True)
class Project:
    """What ``project.json`` holds (arrays live in their own files).

    Attributes
    ----------
    mode
        ``"exclusive"`` or ``"multilabel"``.
    classes
        The classes in order (class k is painting value k+1 in exclusive mode).
    images
        The project's images.
    weight_method
        Class-weight method (see :mod:`segstudio.core.weights`).
    training
        Training settings as plain JSON values (the app's model preset, loss, length, ...).
    objects
        How the app makes objects (its Objects section's choices: object classes, minimum
        size, splitting, ...) as plain JSON values; ``{}``: the defaults.
    last_run
        The run the app showed last, relative to the project folder (``runs/...``).
    saved_at
        ``time.time()`` of the save that wrote this file.
    version
        Layout version (:data:`PROJECT_VERSION`).
    """

    mode: str = EXCLUSIVE
    classes: tuple[ProjectClass, ...] = ()
    images: tuple[ProjectImage, ...] = ()
    weight_method: str = "balanced"
    training: Mapping[str, Any] = field(default_factory=dict)
    objects: Mapping[str, Any] = field(default_factory=dict)
    last_run: str | None = None
    saved_at: float = 0.0
    version: int = PROJECT_VERSION

    def __post_init__(self) -> None:
        check_mode(self.mode)

    def image(self, name: str) -> ProjectImage:
        """The image called ``name``."""
        for im in self.images:
            if im.name == name:
                return im
        raise UserInputError(f"the project has no image called {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``project.json``)."""
        d = asdict(self)
        d["training"] = dict(self.training)
        d["objects"] = dict(self.objects)
        return {"format": FORMAT_NAME, **d}


@dataclass(frozen=True)
class Recovery:
    """Autosaved paintings newer than the last save (after a crash)."""

    saved_at: float
    images: tuple[str, ...]

    @property
    def message(self) -> str:
        """A one-line question for the user."""
        when = datetime.fromtimestamp(self.saved_at).strftime("%Y-%m-%d %H:%M:%S")
        return (f"paintings autosaved at {when} are newer than the last save "
                f"({', '.join(self.images)}); recover them?")


@dataclass(frozen=True)
class ClassMismatch:
    """Paintings that use more classes than ``project.json`` declares (e.g. a class was added
    and painted, and the save of ``project.json`` never happened)."""

    image: str
    needed: int
    declared: int

    @property
    def message(self) -> str:
        """A one-line question for the user."""
        return (f"the paintings of '{self.image}' use {self.needed} classes but the project declares "
                f"{self.declared}; add the missing classes (No: open without those strokes)?")


@dataclass(frozen=True)
class KeptAutosave:
    """An untitled autosave kept aside by a later session on the same image."""

    folder: Path
    saved_at: float

    @property
    def label(self) -> str:
        """How a menu shows it: when it was saved."""
        return datetime.fromtimestamp(self.saved_at).strftime("%Y-%m-%d %H:%M:%S")


#: What the image list says about an image, from nothing done yet to checked.
IMAGE_STATES = ("unpainted", "painted", "predicted", "reviewed")


def image_state(painted: int, predicted: bool, reviewed: bool) -> str:
    """An image's state: ``reviewed`` once the user checked a prediction, else ``predicted``
    when a model predicted it, else ``painted`` when it has strokes, else ``unpainted``."""
    if reviewed and predicted:
        return "reviewed"
    if predicted:
        return "predicted"
    return "painted" if painted else "unpainted"


# --------------------------------------------------------------------------- helpers
def _err(folder: Path, why: str) -> UserInputError:
    return UserInputError(f"cannot open project '{folder}': {why}")


def safe_name(name: str) -> str:
    """``name`` as a file name: runs of characters other than letters, digits, ``._-`` become
    ``_`` (``"image"`` when nothing is left)."""
    return _SAFE_NAME.sub("_", name).strip("._") or "image"


def find_project(path: str | os.PathLike[str]) -> Path:
    """The project folder for ``path`` (the folder itself, or the folder of a ``project.json``).

    Raises
    ------
    UserInputError
        When ``path`` is missing or holds no ``project.json``.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.name == PROJECT_FILE:
        return p.parent
    if not p.exists():
        raise _err(p, "folder not found")
    if not p.is_dir():
        raise _err(p, f"not a folder (a project is a folder with a {PROJECT_FILE})")
    if not (p / PROJECT_FILE).is_file():
        raise _err(p, f"not a segstudio project ({PROJECT_FILE} is missing)")
    return p


def stored_path(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` as ``project.json`` stores it: relative to ``folder`` (POSIX separators) when
    possible, else absolute."""
    folder, path = Path(folder), Path(path)
    try:
        rel = os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())
    return Path(rel).as_posix()


def image_path(folder: str | os.PathLike[str], image: ProjectImage) -> Path:
    """Where ``image`` is now: relative to the project first, then its absolute path."""
    folder = Path(folder)
    rel = Path(image.path)
    candidate = rel if rel.is_absolute() else folder / rel
    if candidate.exists() or not image.absolute:
        return candidate
    absolute = Path(image.absolute)
    return absolute if absolute.exists() else candidate


def _array_file(folder: Path, sub: str, name: str) -> Path:
    return folder / sub / f"{safe_name(name)}.npz"


def _write_array(path: Path, array: Any) -> None:
    arr = np.asarray(array)
    # Streams into the temporary file (no in-memory copy of the compressed data).
    atomic_write_with(path, lambda fh: np.savez_compressed(fh, **{ARRAY_KEY: arr}))


def _read_array(path: Path, what: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if ARRAY_KEY not in npz.files:
                raise UserInputError(f"cannot read {what} '{path}': no '{ARRAY_KEY}' array in the file")
            return npz[ARRAY_KEY]
    except UserInputError:
        raise
    except PermissionError as e:
        raise UserInputError(f"cannot read {what} '{path}': permission denied") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserInputError(
            f"cannot read {what} '{path}': the file is damaged ({type(e).__name__})"
        ) from e


def _check_paintings(project: Project, name: str, paint: Any, what: str) -> None:
    """Values and class count of paintings, without copies (min/max only) for integer data."""
    k = len(project.classes)
    arr = np.asarray(paint)
    if arr.dtype.kind not in "biu":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if project.mode == EXCLUSIVE:
                validate_exclusive(arr, k or None, require_paint=False, what=what)
            else:
                validate_multilabel(arr, k or None, require_paint=False, what=what)
        return
    if arr.size == 0:
        raise UserInputError(f"{what}: paintings are empty (shape {arr.shape})")
    lo, hi = int(arr.min()), int(arr.max())
    if project.mode == EXCLUSIVE:
        if arr.ndim not in (2, 3):
            raise UserInputError(f"{what}: expected 2D or 3D paintings, got shape {arr.shape}")
        if lo < 0:
            raise UserInputError(f"{what}: labels must not be negative (found {lo})")
        if k and hi > k:
            raise UserInputError(
                f"{what}: label value {hi} is beyond the {k} classes (expected 0 = unpainted, 1..{k})")
    else:
        if arr.ndim not in (3, 4) or (k and arr.shape[0] != k):
            raise UserInputError(
                f"{what}: multilabel paintings have shape {arr.shape}, expected {k} class channels first")
        if lo < 0 or hi > ABSENT:
            raise UserInputError(
                f"{what}: multilabel values must be 0 (unpainted), 1 (present) or 2 (absent); "
                f"found range {lo}..{hi}")


# --------------------------------------------------------------------------- version
def migrate(data: Mapping[str, Any], folder: str | os.PathLike[str] = "") -> dict[str, Any]:
    """Bring a ``project.json`` dict up to :data:`PROJECT_VERSION`.

    Version 0 (drafts without a version field) listed classes as plain names with a separate
    ``colors`` list; version 1 lists ``{"name", "color", "pinned"}`` objects; version 2 names
    each image's paintings and prediction files (version 1 kept them at ``paintings/NAME.npz``
    and ``predictions/NAME.npz``).

    Raises
    ------
    UserInputError
        For a project written by a newer segstudio, or a version that is not a number.
    """
    out = dict(data)
    try:
        version = int(out.get("version", 0))
    except (TypeError, ValueError) as e:
        raise _err(Path(folder), f"version {out.get('version')!r} is not a number") from e
    if version > PROJECT_VERSION:
        raise _err(
            Path(folder),
            f"it was saved by a newer segstudio (project version {version}; this segstudio reads "
            f"up to version {PROJECT_VERSION}); please upgrade segstudio",
        )
    if version < 1:
        names = list(out.get("classes", []))
        colors = list(out.pop("colors", []))
        out["classes"] = [
            n if isinstance(n, Mapping) else
            {"name": str(n), "color": colors[i] if i < len(colors) else DEFAULT_COLORS[i % len(DEFAULT_COLORS)]}
            for i, n in enumerate(names)
        ]
        version = 1
    if version < 2:  # paintings and predictions had one fixed file name per image
        images = []
        for im in out.get("images", []):
            im = dict(im) if isinstance(im, Mapping) else im
            if isinstance(im, dict) and "name" in im:
                name = safe_name(str(im["name"]))
                im.setdefault("paintings", f"{PAINTINGS_DIR}/{name}.npz")
                im.setdefault("prediction", f"{PREDICTIONS_DIR}/{name}.npz")
            images.append(im)
        out["images"] = images
        version = 2
    out["version"] = version
    return out


def _from_dict(data: Mapping[str, Any], folder: Path) -> Project:
    d = migrate(data, folder)
    try:
        classes = tuple(
            ProjectClass(str(c["name"]), str(c["color"]),
                         None if c.get("pinned") is None else float(c["pinned"]))
            for c in d.get("classes", [])
        )
        images = tuple(
            ProjectImage(
                name=str(im["name"]), path=str(im["path"]), absolute=str(im.get("absolute", "")),
                channel_axis=None if im.get("channel_axis") is None else int(im["channel_axis"]),
                copied=bool(im.get("copied", False)),
                paintings=str(im.get("paintings") or ""), prediction=str(im.get("prediction") or ""),
                shape=tuple(int(n) for n in im.get("shape") or ()), channels=int(im.get("channels", 1)),
                painted=tuple(int(n) for n in im.get("painted") or ()), labels=str(im.get("labels") or ""),
                predicted_by=str(im.get("predicted_by") or ""),
                uncertainty=None if im.get("uncertainty") is None else float(im["uncertainty"]),
                reviewed=bool(im.get("reviewed", False)), validation=bool(im.get("validation", False)),
                regions=tuple(tuple(int(v) for v in box) for box in im.get("regions") or ()),
            )
            for im in d.get("images", [])
        )
        training = d.get("training") or {}
        if not isinstance(training, Mapping):
            raise TypeError("training is not an object")
        objects = d.get("objects") or {}
        if not isinstance(objects, Mapping):
            raise TypeError("objects is not an object")
        return Project(
            mode=str(d.get("mode", EXCLUSIVE)), classes=classes, images=images,
            weight_method=str(d.get("weight_method", "balanced")), training=dict(training), objects=dict(objects),
            last_run=d.get("last_run"), saved_at=float(d.get("saved_at", 0.0)), version=int(d["version"]),
        )
    except UserInputError as e:
        raise _err(folder, str(e)) from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _err(folder, f"{PROJECT_FILE} is not valid ({type(e).__name__}: {e})") from e


# --------------------------------------------------------------------------- open / save
def load_project(path: str | os.PathLike[str]) -> Project:
    """Read ``project.json`` (migrating older versions).

    Raises
    ------
    UserInputError
        Not a project, unreadable or invalid ``project.json``, or a newer project version.
    """
    folder = find_project(path)
    file = folder / PROJECT_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except PermissionError as e:
        raise _err(folder, f"{PROJECT_FILE}: permission denied") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _err(folder, f"{PROJECT_FILE} is damaged ({type(e).__name__})") from e
    if not isinstance(data, Mapping):
        raise _err(folder, f"{PROJECT_FILE} is not a JSON object")
    return _from_dict(data, folder)


def save_project(
    folder: str | os.PathLike[str],
    project: Project,
    paintings: Mapping[str, Any],
    predictions: Mapping[str, Any] | None = None,
) -> Project:
    """Write a project as one transaction.

    1. the paintings (and predictions) go to new files ``paintings/NAME.TIME.npz``;
    2. ``project.json``, naming them, replaces the previous one atomically (one rename);
    3. the files the previous ``project.json`` named (and leftovers of failed saves) are removed.

    A failure in step 1 or 2 removes what step 1 wrote that ``project.json`` does not name, so
    the folder holds either the previous project exactly as it was or (a failure to fsync after
    the rename) the new one, complete; a failure in step 3 only leaves an old file behind (the
    next save removes it).

    Parameters
    ----------
    folder
        The project folder (created if missing).
    project
        What to write into ``project.json``; ``saved_at`` is set now. Images without new
        paintings (or predictions) keep the files their ``paintings`` (``prediction``) name.
    paintings
        Image name -> paintings (exclusive: integer array; multilabel ``(C, *spatial)``).
    predictions
        Image name -> label array of the last prediction (optional).

    Returns
    -------
    Project
        The project as written (with ``saved_at`` and the new file names).

    Raises
    ------
    UserInputError
        Paintings that do not fit the classes or mode, an unknown image name, or a failed write
        (disk full, permission denied); the project on disk stays as it was.
    """
    folder = Path(folder)
    names = {im.name for im in project.images}
    for name, paint in paintings.items():
        if name not in names:
            raise UserInputError(f"cannot save paintings of {name!r}: not an image of the project")
        _check_paintings(project, name, paint, f"paintings of {name!r}")
    before = _referenced_files(folder)
    token = _save_token(folder)
    written: list[Path] = []
    images = []
    try:
        for im in project.images:
            changes: dict[str, str] = {}
            for key, sub, arrays in (("paintings", PAINTINGS_DIR, paintings),
                                     ("prediction", PREDICTIONS_DIR, predictions or {})):
                if arrays.get(im.name) is not None:
                    path = folder / sub / f"{safe_name(im.name)}.{token}.npz"
                    written.append(path)
                    _write_array(path, arrays[im.name])
                    changes[key] = f"{sub}/{path.name}"
            if paintings.get(im.name) is not None:
                changes["painted"] = painted_counts(project.mode, paintings[im.name], len(project.classes))
            images.append(replace(im, **changes))
        saved = replace(project, images=tuple(images), saved_at=time.time(), version=PROJECT_VERSION)
        atomic_write_text(folder / PROJECT_FILE, json.dumps(saved.to_dict(), indent=2))
    except BaseException:
        named = _referenced_files(folder)  # project.json may be in place (a failed fsync after it)
        for path in written:
            if path not in named:
                with contextlib.suppress(OSError):
                    path.unlink()
        raise
    _remove_unreferenced(folder, saved, before)
    discard_autosave(folder)
    return saved


def _save_token(folder: Path) -> str:
    """``YYYYmmdd-HHMMSS`` of now, with ``-N`` added when a file of that save exists already."""
    stamp = datetime.now().strftime(_STAMP_FORMAT)
    taken = {p.name for sub in (PAINTINGS_DIR, PREDICTIONS_DIR) if (folder / sub).is_dir()
             for p in (folder / sub).iterdir()}
    token, i = stamp, 1
    while any(name.endswith(f".{token}.npz") for name in taken):
        token, i = f"{stamp}-{i}", i + 1
    return token


def _referenced_files(folder: Path) -> set[Path]:
    """The paintings and prediction files the ``project.json`` on disk names (none if unreadable)."""
    try:
        project = load_project(folder)
    except UserInputError:
        return set()
    return {folder / rel for im in project.images for rel in (im.paintings, im.prediction) if rel}


def _remove_unreferenced(folder: Path, saved: Project, before: set[Path]) -> None:
    """Remove what the previous save named and leftovers of failed saves, unless ``saved``
    names them; never a file of another image or one segstudio did not write."""
    keep = {folder / rel for im in saved.images for rel in (im.paintings, im.prediction) if rel}
    ours = [re.compile(rf"{re.escape(safe_name(im.name))}{_SAVE_TOKEN}\.npz") for im in saved.images]
    for sub in (PAINTINGS_DIR, PREDICTIONS_DIR):
        if not (folder / sub).is_dir():
            continue
        for path in (folder / sub).iterdir():
            leftover = any(pattern.fullmatch(path.name) for pattern in ours)
            if path not in keep and (path in before or leftover):
                with contextlib.suppress(OSError):
                    path.unlink()


def add_image(
    folder: str | os.PathLike[str],
    project: Project,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    channel_axis: int | None = None,
    copy: bool = False,
) -> Project:
    """Return ``project`` with one more image (copied into ``images/`` when ``copy``).

    The file is checked to be a readable 2D or 3D image first (without loading its pixels),
    and to fit the project: all its images have the same number of spatial dimensions and of
    channels. Its spatial shape and channels are kept (:attr:`ProjectImage.shape`), so the
    project lists its images without opening them.

    Raises
    ------
    UserInputError
        Unreadable image, one that does not fit the project's images (the message names the
        file), or a copy that failed.
    """
    from segstudio.core.io import is_zarr_store

    folder = Path(folder)
    src = Path(path).expanduser()
    # a clear error for a wrong or broken file, before anything changes
    shape, channels, channel_axis = image_info(src, channel_axis)
    check_fits(folder, project, src, shape, channels)
    base = safe_name(name or _stem(src))
    taken = {im.name for im in project.images}
    unique, i = base, 2
    while unique in taken:
        unique, i = f"{base}-{i}", i + 1
    stored = src
    if copy:
        dest = folder / IMAGES_DIR / src.name
        if dest.resolve() != src.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                if src.is_dir():  # zarr store
                    write_folder(dest, lambda tmp: shutil.copytree(src, tmp), is_expected=is_zarr_store,
                                 what="Zarr store")
                else:
                    with open(src, "rb") as fin:
                        atomic_write_with(dest, lambda fh: shutil.copyfileobj(fin, fh, 1 << 22))
            except OSError as e:
                raise UserInputError(f"cannot copy '{src}' into the project: {e.strerror or e}") from e
        stored = dest
    image = ProjectImage(
        name=unique, path=stored_path(folder, stored), absolute=str(stored.resolve()),
        channel_axis=channel_axis, copied=copy, shape=shape, channels=channels,
    )
    return replace(project, images=(*project.images, image))


def image_info(path: str | os.PathLike[str],
               channel_axis: int | None = None) -> tuple[tuple[int, ...], int, int | None]:
    """``(spatial shape, channels, channel axis)`` of an image file, read lazily (the channel
    axis as given, else the file's; :func:`segstudio.core.batch.channel_axis_for`).

    Raises
    ------
    UserInputError
        Unreadable file, or not a 2D or 3D image once the channel axis is set aside.
    """
    from segstudio.core.batch import load_image

    image, _, ch = load_image(path, channel_axis, lazy=True)
    shape = tuple(int(n) for i, n in enumerate(image.shape) if i != ch)
    return shape, 1 if ch is None else int(image.shape[ch]), ch


def describe_dims(shape: Sequence[int], channels: int) -> str:
    """``"2D, 1 channel"``: how messages describe an image."""
    return f"{len(shape)}D, {channels} channel{'s' if channels != 1 else ''}"


def check_fits(folder: str | os.PathLike[str], project: Project, path: str | os.PathLike[str],
               shape: Sequence[int], channels: int) -> None:
    """Refuse an image that mixes dimensions or channel counts with the project's images.

    Raises
    ------
    UserInputError
        One line naming the file, what it is and what the project's images are.
    """
    if not project.images:
        return
    first = project.images[0]
    ref_shape, ref_channels = first.shape, first.channels
    if not ref_shape:  # a project written before shapes were kept: look at the file
        p = image_path(folder, first)
        if not p.exists():
            return
        ref_shape, ref_channels, _ = image_info(p, first.channel_axis)
    check_same_dims(path, shape, channels, ref_shape, ref_channels)


def check_same_dims(what: Any, shape: Sequence[int], channels: int, ref_shape: Sequence[int],
                    ref_channels: int) -> None:
    """Refuse image ``what`` (a file, a layer) when its dimensions or channels are not those of
    the project's images (``ref_shape``, ``ref_channels``).

    Raises
    ------
    UserInputError
        One line naming it, what it is and what the project's images are.
    """
    if len(shape) != len(ref_shape) or channels != ref_channels:
        raise UserInputError(
            f"cannot add '{what}': it is {describe_dims(shape, channels)}; the project's images are "
            f"{describe_dims(ref_shape, ref_channels)} (all images of a project have the same dimensions "
            "and channels)")


def remove_image(project: Project, name: str) -> Project:
    """``project`` without image ``name`` (its files go at the next save; the image file stays
    where it is)."""
    project.image(name)
    return replace(project, images=tuple(im for im in project.images if im.name != name))


def painted_counts(mode: str, paint: Any, n_classes: int) -> tuple[int, ...]:
    """Painted pixels per class (exclusive: value k; multi-label: present or absent in channel k)."""
    present, absent = count_paintings(paint, mode, n_classes)
    return tuple(int(c) for c in present + absent)


def holdout_of(image: ProjectImage) -> Any:
    """What of an image is held out for validation: ``None`` (nothing), ``True`` (all of it)
    or a boolean mask of its validation regions (see ``TrainingImage.holdout``)."""
    if image.validation:
        return True
    if not image.regions or not image.shape:
        return None
    return regions_mask(image.shape, image.regions)


def regions_mask(shape: Sequence[int], regions: Sequence[Sequence[int]]) -> np.ndarray:
    """A boolean mask of ``shape``, true inside the boxes ``(start..., stop...)``."""
    mask = np.zeros(tuple(shape), dtype=bool)
    n = len(shape)
    for box in regions:
        if len(box) != 2 * n:
            raise UserInputError(f"a validation region has {len(box)} numbers; a {n}D image needs {2 * n}")
        mask[tuple(slice(int(a), int(b)) for a, b in zip(box[:n], box[n:]))] = True
    return mask


def update_images(folder: str | os.PathLike[str], changes: Mapping[str, Mapping[str, Any]]) -> Project:
    """Change fields of images in ``project.json`` (atomically), e.g. what *Predict all* did
    (``labels``, ``predicted_by``, ``uncertainty``). Paintings and ``saved_at`` are not touched.

    Raises
    ------
    UserInputError
        An unknown image name or a failed write.
    """
    folder = find_project(folder)
    project = load_project(folder)
    for name in changes:
        project.image(name)
    images = tuple(replace(im, **changes[im.name]) if im.name in changes else im for im in project.images)
    updated = replace(project, images=images)
    atomic_write_text(folder / PROJECT_FILE, json.dumps(updated.to_dict(), indent=2))
    return updated


def _stem(path: Path) -> str:
    name = path.name.rstrip("/\\")
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr", ".nii.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def read_image_of(folder: str | os.PathLike[str], project: Project, name: str, *, lazy: bool = True) -> tuple[Any, Any]:
    """Read image ``name`` of the project (lazily by default: memmap/zarr, no copy in memory).

    Raises
    ------
    UserInputError
        The image file is gone or unreadable (the message names the image and the file).
    """
    from segstudio.core.io import read_image

    image = project.image(name)
    p = image_path(folder, image)
    if not p.exists():
        raise UserInputError(
            f"image {name!r} of the project is missing: expected it at '{p}' "
            "(move the image next to the project again, or re-add it)"
        )
    return read_image(p, lazy=lazy)


def paintings_file(folder: str | os.PathLike[str], project: Project, name: str) -> Path | None:
    """The paintings file ``project.json`` names for image ``name`` (``None``: none saved yet)."""
    rel = project.image(name).paintings
    return Path(folder) / rel if rel else None


def read_paintings(folder: str | os.PathLike[str], project: Project, name: str) -> np.ndarray | None:
    """The saved paintings of image ``name`` (``None`` when none were saved yet).

    Raises
    ------
    UserInputError
        Damaged file, or paintings that do not fit the project's classes or mode.
    """
    path = paintings_file(folder, project, name)
    if path is None or not path.exists():
        return None
    arr = _read_array(path, "paintings")
    _check_paintings(project, name, arr, f"paintings '{path}'")
    return arr


def open_paintings(
    folder: str | os.PathLike[str], project: Project, name: str, *, autosaved: bool = False,
) -> tuple[np.ndarray | None, ClassMismatch | None]:
    """Paintings of image ``name`` for opening: like :func:`read_paintings`, but paintings that
    use more classes than the project declares are returned with a :class:`ClassMismatch`
    (see :func:`with_classes`) instead of refused; multilabel paintings with fewer class
    channels than classes get empty channels.

    ``autosaved``: read the autosaved paintings (see :func:`recovery`) instead of the saved ones.

    Raises
    ------
    UserInputError
        Damaged file, or paintings that are not paintings at all (wrong rank, negative values).
    """
    project.image(name)
    path = _array_file(Path(folder), AUTOSAVE_DIR, name) if autosaved else paintings_file(folder, project, name)
    if path is None or not path.exists():
        return None, None
    arr = _read_array(path, "autosaved paintings" if autosaved else "paintings")
    declared = len(project.classes)
    needed = _classes_used(project.mode, arr)
    if project.mode == MULTILABEL and arr.ndim >= 3 and needed < declared:
        arr = np.concatenate([arr, np.zeros((declared - needed, *arr.shape[1:]), arr.dtype)])
        needed = declared
    mismatch = ClassMismatch(name, needed, declared) if needed > declared else None
    _check_paintings(with_classes(project, needed) if mismatch else project, name, arr, f"paintings '{path}'")
    return arr, mismatch


def _classes_used(mode: str, paint: np.ndarray) -> int:
    """How many classes paintings use: the highest label (exclusive) or the channels (multilabel)."""
    if mode == MULTILABEL:
        return int(paint.shape[0]) if paint.ndim >= 3 else 0
    return int(paint.max()) if paint.size and paint.dtype.kind in "biu" else 0


def default_classes(names: Sequence[str] = DEFAULT_CLASS_NAMES) -> tuple[ProjectClass, ...]:
    """Classes called ``names``, with the default colours."""
    return tuple(ProjectClass(str(n), DEFAULT_COLORS[i % len(DEFAULT_COLORS)]) for i, n in enumerate(names))


def with_classes(project: Project, n: int) -> Project:
    """``project`` with classes added (``class K``, a default colour) up to ``n`` classes."""
    classes = list(project.classes)
    while len(classes) < n:
        k = len(classes)
        classes.append(ProjectClass(f"class {k + 1}", DEFAULT_COLORS[k % len(DEFAULT_COLORS)]))
    return replace(project, classes=tuple(classes))


def without_extra_classes(project: Project, paint: np.ndarray) -> np.ndarray:
    """``paint`` without the strokes of classes the project does not declare (a copy)."""
    k = len(project.classes)
    if project.mode == MULTILABEL:
        return np.array(paint[:k], copy=True)
    out = np.array(paint, copy=True)
    out[out > k] = 0
    return out


def read_predictions(folder: str | os.PathLike[str], project: Project, name: str) -> np.ndarray | None:
    """The saved prediction of image ``name`` (``None`` when there is none)."""
    rel = project.image(name).prediction
    path = Path(folder) / rel if rel else None
    return _read_array(path, "prediction") if path is not None and path.exists() else None


# --------------------------------------------------------------------------- autosave
def autosave(folder: str | os.PathLike[str], paintings: Mapping[str, Any]) -> Path:
    """Write the paintings to the project's ``autosave/`` side folder (atomically).

    The last save is left alone; :func:`recovery` offers these paintings after a crash.
    Returns the autosave folder.

    Raises
    ------
    UserInputError
        A failed write (the previous autosave stays intact).
    """
    side = Path(folder) / AUTOSAVE_DIR
    for name, paint in paintings.items():
        _write_array(_array_file(Path(folder), AUTOSAVE_DIR, name), paint)
    info = {"saved_at": time.time(), "images": sorted(paintings)}
    atomic_write_text(side / AUTOSAVE_FILE, json.dumps(info, indent=2))
    return side


def recovery(folder: str | os.PathLike[str]) -> Recovery | None:
    """Autosaved paintings that are newer than the last save, or ``None``."""
    folder = Path(folder)
    file = folder / AUTOSAVE_DIR / AUTOSAVE_FILE
    if not file.is_file():
        return None
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
        saved_at = float(info["saved_at"])
        images = tuple(str(n) for n in info["images"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged side file is not worth a question
    last = 0.0
    try:
        last = float(json.loads((folder / PROJECT_FILE).read_text(encoding="utf-8")).get("saved_at", 0.0))
    except (OSError, ValueError, AttributeError):
        pass
    images = tuple(n for n in images if _array_file(folder, AUTOSAVE_DIR, n).is_file())
    if saved_at <= last or not images:
        return None
    return Recovery(saved_at, images)


def recover_paintings(folder: str | os.PathLike[str], project: Project) -> dict[str, np.ndarray]:
    """The autosaved paintings, by image name (those that still fit the project).

    Raises
    ------
    UserInputError
        When no autosave is available.
    """
    folder = Path(folder)
    rec = recovery(folder)
    if rec is None:
        raise UserInputError(f"no autosaved paintings newer than the last save in '{folder}'")
    names = {im.name for im in project.images}
    out: dict[str, np.ndarray] = {}
    for name in rec.images:
        if name not in names:
            continue
        arr = _read_array(_array_file(folder, AUTOSAVE_DIR, name), "autosaved paintings")
        _check_paintings(project, name, arr, f"autosaved paintings of {name!r}")
        out[name] = arr
    return out


def discard_autosave(folder: str | os.PathLike[str]) -> None:
    """Remove the autosave side folder (after a save, or when the user declines recovery)."""
    shutil.rmtree(Path(folder) / AUTOSAVE_DIR, ignore_errors=True)


def untitled_folder(image_name: str, source: str | None = None) -> Path:
    """The autosave project folder of a session that was never saved as a project.

    ``$SEGSTUDIO_HOME/autosave/NAME-HASH`` (``~/.segstudio`` by default), the hash taken from
    the image's file path (or its name when it has no file). It is an ordinary project folder:
    *Open project* on it recovers the paintings.
    """
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".segstudio").expanduser()
    key = hashlib.sha1(str(source or image_name).encode("utf-8")).hexdigest()[:8]
    return home / AUTOSAVE_DIR / f"{safe_name(image_name)}-{key}"


def set_aside(folder: str | os.PathLike[str]) -> Path | None:
    """Rename an existing untitled autosave folder to ``NAME-HASH-YYYYmmdd-HHMMSS`` so a new
    session does not overwrite it, then cap the ones kept aside (:func:`prune_kept_autosaves`);
    returns the new path (``None`` if there was nothing)."""
    folder = Path(folder)
    if not (folder / PROJECT_FILE).is_file():
        return None
    stamp = datetime.fromtimestamp((folder / PROJECT_FILE).stat().st_mtime).strftime(_STAMP_FORMAT)
    dest = folder.with_name(f"{folder.name}-{stamp}")
    i = 1
    while dest.exists():
        dest, i = folder.with_name(f"{folder.name}-{stamp}-{i}"), i + 1
    try:
        os.replace(folder, dest)
    except OSError:
        return None
    prune_kept_autosaves(folder)
    return dest


def kept_autosaves(folder: str | os.PathLike[str]) -> list[KeptAutosave]:
    """The autosaves :func:`set_aside` kept of the untitled ``folder``, newest first."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(folder.name)}-\d{{8}}-\d{{6}}(?:-\d+)?")
    kept = []
    for path in folder.parent.iterdir():
        if pattern.fullmatch(path.name) and (path / PROJECT_FILE).is_file():
            try:
                saved_at = float(json.loads((path / PROJECT_FILE).read_text(encoding="utf-8"))["saved_at"])
            except (OSError, ValueError, KeyError, TypeError):
                saved_at = (path / PROJECT_FILE).stat().st_mtime
            kept.append(KeptAutosave(path, saved_at))
    return sorted(kept, key=lambda k: (k.saved_at, k.folder.name), reverse=True)


def prune_kept_autosaves(
    folder: str | os.PathLike[str], keep: int = KEEP_AUTOSAVES, max_age_days: float = KEEP_AUTOSAVE_DAYS,
) -> list[Path]:
    """Remove the kept-aside autosaves of ``folder`` beyond the newest ``keep`` and those older
    than ``max_age_days``; returns the folders removed."""
    too_old = time.time() - max_age_days * 86400.0
    gone = []
    for i, kept in enumerate(kept_autosaves(folder)):
        if i >= keep or kept.saved_at < too_old:
            shutil.rmtree(kept.folder, ignore_errors=True)
            gone.append(kept.folder)
    return gone


# --------------------------------------------------------------------------- runs
def new_run_dir(folder: str | os.PathLike[str]) -> Path:
    """Create and return a fresh ``runs/YYYYmmdd-HHMMSS`` folder of the project."""
    runs = Path(folder) / RUNS_DIR
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"cannot write '{runs}': {e.strerror or e}") from e
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        run = runs / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
        except OSError as e:
            raise UserInputError(f"cannot write '{run}': {e.strerror or e}") from e
    raise UserInputError(f"cannot create a run folder in '{runs}'")


def latest_run(folder: str | os.PathLike[str], project: Project | None = None) -> Path | None:
    """The project's last run with weights: ``last_run`` if it has a ``model.pt``, else the
    newest ``runs/*`` that has one (``None`` if there is none)."""
    folder = Path(folder)
    if project is not None and project.last_run:
        p = folder / project.last_run
        if (p / MODEL_FILE).is_file():
            return p
    runs = folder / RUNS_DIR
    if not runs.is_dir():
        return None
    done = [p for p in runs.iterdir() if p.is_dir() and (p / MODEL_FILE).is_file()]
    return max(done, key=lambda p: ((p / MODEL_FILE).stat().st_mtime, p.name)) if done else None


def set_last_run(folder: str | os.PathLike[str], run: str | os.PathLike[str]) -> Project:
    """Record ``run`` as the project's last run in ``project.json`` (atomically).

    The paintings and ``saved_at`` are not touched, so an autosave stays newer than the save.
    """
    folder = find_project(folder)
    project = load_project(folder)
    updated = replace(project, last_run=stored_path(folder, Path(run)))
    atomic_write_text(folder / PROJECT_FILE, json.dumps(updated.to_dict(), indent=2))
    return updated


def check_run_fits(project: Project, config: Any, run: str | os.PathLike[str] = "") -> None:
    """Refuse a run (its :class:`~segstudio.core.config.TrainConfig`) whose mode or class count
    differs from the project's.

    Raises
    ------
    UserInputError
        Naming the run, what it was trained for and what the project has.
    """
    k = len(project.classes)
    if config.mode != project.mode or (k and config.n_classes != k):
        where = f"the model in '{run}'" if run else "this model"
        raise UserInputError(
            f"{where} was trained for {config.n_classes} {config.mode} classes; the project has "
            f"{k} {project.mode} classes (train again, or restore the classes)"
        )


def project_paintings_shape(project: Project, spatial: Sequence[int]) -> tuple[int, ...]:
    """Shape of empty paintings for an image with ``spatial`` shape."""
    if project.mode == MULTILABEL:
        return (len(project.classes), *spatial)
    return tuple(spatial)
