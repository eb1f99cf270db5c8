"""Predicting files: one loop for ``segstudio predict`` and the app's *Predict folder…*.

:func:`iter_predict_files` reads each image (lazily), chooses where its labels go, predicts it in
memory or band by band into the output file (large lazily readable images, see
:mod:`segstudio.core.outofcore`), writes the labels (and probabilities) and yields small events,
so the command line prints them and the app shows a progress bar from the same generator.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import UserInputError
from segstudio.core.io import SUPPORTED_EXTENSIONS, ImageMeta, format_of, read_image, write_image
from segstudio.core.lazy import is_in_memory
from segstudio.core.metrics import mean_entropy
from segstudio.core.outofcore import OUTPUT_FORMATS, Written, iter_predict_to_file
from segstudio.core.predictor import PredictProgress, PredictResult
from segstudio.core.project import PREDICTIONS_DIR, Project, image_path

__all__ = [
    "OUT_OF_CORE_BYTES",
    "BatchNotice",
    "FileDone",
    "FileStarted",
    "ImagePredicted",
    "channel_axis_for",
    "image_files",
    "iter_predict_files",
    "iter_predict_images",
    "iter_predict_project",
    "project_labels_path",
    "load_image",
    "output_path",
    "split_ext",
    "use_out_of_core",
]

#: ``out_of_core="auto"`` streams lazily readable images of at least this size.
OUT_OF_CORE_BYTES = 256 << 20
#: Inputs whose labels must not go through lossy compression: written as PNG.
_LOSSY = (".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class FileStarted:
    """File ``index`` (1-based) of ``total`` is being predicted into ``labels``."""

    index: int
    total: int
    image: str
    labels: Path
    out_of_core: bool


@dataclass(frozen=True)
class FileDone:
    """File ``index`` of ``total`` was predicted and written.

    ``pixels``, ``meta``, ``channel_axis``: the image as read (lazy out of core); ``result``:
    the prediction in memory, or ``written``: the files written band by band (out of core).
    """

    index: int
    total: int
    image: str
    labels: Path
    probabilities: Path | None
    seconds: float
    out_of_core: bool
    pixels: Any = None
    meta: ImageMeta | None = None
    channel_axis: int | None = None
    result: PredictResult | None = None
    written: Written | None = None


@dataclass(frozen=True)
class ImagePredicted:
    """Image ``name`` of a project (``index`` of ``total``) was predicted into ``labels``.

    ``uncertainty``: the prediction's mean entropy (:func:`~segstudio.core.metrics.mean_entropy`;
    ``None`` for an image predicted band by band, whose probabilities are not kept).
    ``done``: the :class:`FileDone` event of the file.
    """

    name: str
    index: int
    total: int
    labels: Path
    uncertainty: float | None
    done: FileDone


@dataclass(frozen=True)
class BatchNotice:
    """Something the user should know about one file (e.g. it is held in memory after all)."""

    image: str
    message: str


def channel_axis_for(meta_axes: str | None, given: int | None, ndim: int) -> int | None:
    """The channel axis of an image: as given, else the file's ``C`` axis, else none.

    Raises
    ------
    UserInputError
        When ``given`` is out of range.
    """
    if given is not None:
        if not -ndim <= given < ndim:
            raise UserInputError(f"--channel-axis {given} is out of range for a {ndim}-D image")
        return given % ndim
    if meta_axes and "C" in meta_axes.upper() and len(meta_axes) == ndim:
        return meta_axes.upper().index("C")
    return None


def load_image(path: str | os.PathLike[str], channel_axis: int | None = None, *, what: str = "image",
               lazy: bool = False) -> tuple[Any, ImageMeta, int | None]:
    """Read an image and find its channel axis (:func:`channel_axis_for`).

    Raises
    ------
    UserInputError
        Unreadable file, or not 2D/3D once the channel axis is set aside.
    """
    image, meta = read_image(path, lazy=lazy)
    ch = channel_axis_for(meta.axes, channel_axis, image.ndim)
    if image.ndim - (ch is not None) not in (2, 3):
        raise UserInputError(
            f"{what} '{path}' has shape {image.shape}: expected a 2D or 3D image "
            "(use --channel-axis for multi-channel images)"
        )
    return image, meta, ch


def split_ext(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``("name", ".nii.gz")`` for double extensions, else ``Path.stem``/``Path.suffix``."""
    name = Path(path).name.rstrip("/\\")
    for ext in sorted((e for e in SUPPORTED_EXTENSIONS if e.count(".") > 1), key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[: -len(ext)], name[-len(ext):]
    return Path(name).stem, Path(name).suffix


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The images segstudio reads in ``folder`` (not hidden), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name.lower().endswith(SUPPORTED_EXTENSIONS) and not p.name.startswith("."))


def output_path(out: str | os.PathLike[str], image_path: str | os.PathLike[str], several: bool,
                kind: str = "labels") -> Path:
    """Where the labels (or another ``kind`` of output) of ``image_path`` go: ``out`` itself for
    one image, else ``out/NAME_KIND.EXT`` (the input's format; PNG for lossy inputs).

    An existing folder whose name has an image extension (``labels.zarr``: a previous output)
    is the output itself, never a folder to write into.
    """
    out_p = Path(out)
    try:
        format_of(out_p)
        image_name = True
    except UserInputError:
        image_name = False
    if several or str(out).endswith(os.sep) or (out_p.is_dir() and not image_name):
        stem, suffix = split_ext(image_path)
        if suffix.lower() in _LOSSY:
            suffix = ".png"
        return out_p / f"{stem}_{kind}{suffix}"
    format_of(out_p)  # validates the extension
    return out_p


def use_out_of_core(choice: str, image: Any, out: Path) -> tuple[bool, str | None]:
    """Whether to predict band by band into ``out`` (``choice``: auto, always, never), and a
    note for the user when a large image has to be held in memory after all.

    Raises
    ------
    UserInputError
        ``always`` with an output format that cannot be written band by band.
    """
    suffix = split_ext(out)[1].lower()
    fits = suffix in OUTPUT_FORMATS or suffix in (".ome.tif", ".ome.tiff")
    if choice == "never":
        return False, None
    if choice == "always":
        if not fits:
            raise UserInputError(f"--out-of-core always: write to {', '.join(OUTPUT_FORMATS)}, not '{out}'")
        return True, None
    big = int(np.prod(image.shape, dtype=np.int64)) * np.dtype(image.dtype).itemsize >= OUT_OF_CORE_BYTES
    lazy = big and not is_in_memory(image)
    note = None
    if lazy and not fits:
        note = (f"'{out}' cannot be written band by band; the whole prediction is held in memory "
                "(write .zarr or .tif to avoid that)")
    return lazy and fits, note


def iter_predict_files(
    predictor: Any,
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    channel_axis: int | None = None,
    probabilities: bool = False,
    tta: bool = False,
    out_of_core: str = "auto",
    keep_probabilities: bool = False,
) -> Iterator[FileStarted | PredictProgress | BatchNotice | FileDone]:
    """Predict every image of ``paths`` and write its labels; yields progress events.

    Parameters
    ----------
    predictor
        A :class:`~segstudio.core.predictor.Predictor` (or an exported model's).
    paths
        Image files.
    out
        The output file for one image, else a folder (created) for ``NAME_labels.EXT`` files.
    channel_axis
        The images' channel axis (default: from each file's axes).
    probabilities
        Also write ``NAME_probabilities`` (TIFF in memory, the labels' format out of core).
    tta
        Average over flipped copies.
    out_of_core
        ``auto``, ``always`` or ``never`` (see :func:`use_out_of_core`).
    keep_probabilities
        Compute the probabilities of in-memory predictions for the consumer (``FileDone.result``)
        even when no probabilities file is written.

    Yields
    ------
    FileStarted, PredictProgress (per tile batch), BatchNotice, FileDone
    """
    several = len(paths) > 1
    if several:
        Path(out).mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(paths, start=1):
        name = str(path)
        image, meta, ch = load_image(path, channel_axis, lazy=True)
        t0 = time.perf_counter()
        dest = output_path(out, path, several)
        streamed, note = use_out_of_core(out_of_core, image, dest)
        yield FileStarted(index, len(paths), name, dest, streamed)
        if note:
            yield BatchNotice(name, note)
        prob_path, result, written = None, None, None
        if streamed:
            if probabilities:
                stem, suffix = split_ext(dest)
                prob_path = dest.with_name(f"{stem.removesuffix('_labels')}_probabilities{suffix}")
            for ev in iter_predict_to_file(predictor, image, dest, channel_axis=ch, probabilities_path=prob_path,
                                           axes=meta.axes, spacing=meta.spacing, tta=tta):
                if isinstance(ev, PredictProgress):
                    yield ev
                elif isinstance(ev, Written):
                    written = ev
                    prob_path = Path(ev.probabilities) if ev.probabilities else None
        else:
            image = np.asarray(image)  # small enough: load it
            for ev in predictor.iter_predict(image, ch, probabilities=probabilities or keep_probabilities, tta=tta):
                if isinstance(ev, PredictResult):
                    result = ev
                else:
                    yield ev
            assert result is not None
            write_image(dest, result.labels, like=meta)
            if probabilities and result.probabilities is not None:
                prob_path = dest.with_name(f"{split_ext(dest)[0].removesuffix('_labels')}_probabilities.tif")
                write_image(prob_path, result.probabilities, like=None)
        yield FileDone(index, len(paths), name, dest, prob_path, time.perf_counter() - t0, streamed,
                       pixels=image, meta=meta, channel_axis=ch, result=result, written=written)


def project_labels_path(out: str | os.PathLike[str], name: str, image_file: str | os.PathLike[str]) -> Path:
    """Where *Predict all* writes the labels of project image ``name``: ``out/NAME_labels.EXT``
    in the image's format (PNG for lossy formats); the project's name for the image keeps two
    files of the same name apart."""
    return output_path(out, Path(f"{name}{split_ext(image_file)[1]}"), True)


def iter_predict_project(
    predictor: Any,
    folder: str | os.PathLike[str],
    project: Project,
    out: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    tta: bool = False,
    out_of_core: str = "auto",
) -> Iterator[FileStarted | PredictProgress | BatchNotice | FileDone | ImagePredicted]:
    """Predict the images of a project (all, or ``names``) into ``out`` (default: the
    project's ``predictions/`` folder) with :func:`iter_predict_images`.

    Raises
    ------
    UserInputError
        An image file that is gone or unreadable (the message names the image and the file).
    """
    folder = Path(folder)
    images = [project.image(n) for n in names] if names is not None else list(project.images)
    yield from iter_predict_images(predictor, [(im.name, image_path(folder, im), im.channel_axis) for im in images],
                                   Path(out) if out is not None else folder / PREDICTIONS_DIR, tta=tta,
                                   out_of_core=out_of_core)


def iter_predict_images(
    predictor: Any,
    images: Sequence[tuple[str, str | os.PathLike[str], int | None]],
    out: str | os.PathLike[str],
    *,
    tta: bool = False,
    out_of_core: str = "auto",
) -> Iterator[FileStarted | PredictProgress | BatchNotice | FileDone | ImagePredicted]:
    """Predict named image files ``(name, path, channel axis)`` into ``out/NAME_labels.EXT``
    (:func:`project_labels_path`), each with :func:`iter_predict_files` (in its own format,
    with its spacing and affine); yields that loop's events and, per image,
    :class:`ImagePredicted` with the prediction's uncertainty.

    Raises
    ------
    UserInputError
        An image file that is gone or unreadable.
    """
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = predictor.config.mode
    for index, (name, path, channel_axis) in enumerate(images, start=1):
        path = Path(path)
        if not path.exists():
            raise UserInputError(f"image {name!r} is missing: expected it at '{path}'")
        dest = project_labels_path(out_dir, name, path)
        for ev in iter_predict_files(predictor, [path], dest, channel_axis=channel_axis, tta=tta,
                                     out_of_core=out_of_core, keep_probabilities=True):
            if isinstance(ev, FileDone):
                probs = ev.result.probabilities if ev.result is not None else None
                uncertainty = None if probs is None else mean_entropy(probs, mode)
                yield ev
                yield ImagePredicted(name, index, len(images), ev.labels, uncertainty, ev)
            elif isinstance(ev, FileStarted):
                yield FileStarted(index, len(images), ev.image, ev.labels, ev.out_of_core)
            else:
                yield ev
