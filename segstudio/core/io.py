"""Read and write images and label files, keeping spacing, axes and (for NIfTI) the affine.

Supported formats (chosen from the file extension, see :data:`SUPPORTED_EXTENSIONS`):

* TIFF / OME-TIFF (``.tif``, ``.tiff``, ``.ome.tif``, ``.ome.tiff``) via :mod:`tifffile`.
  Axes come from tifffile's series axes with singleton non-spatial axes dropped, ``S``
  (samples, e.g. RGB) renamed ``C`` and generic page sequences (``I``/``Q``) renamed ``Z``.
  Spacing comes from OME ``PhysicalSize{X,Y,Z}``, else from ImageJ ``spacing`` (z) plus the
  ``XResolution``/``YResolution`` tags (pixel size = 1 / resolution), else from tifffile's own
  JSON metadata. Lengths in a known unit (nm, mm, cm, ...) are converted to micrometres;
  a resolution given per *inch* is treated as a print DPI and ignored.
* NIfTI (``.nii``, ``.nii.gz``) via :mod:`nibabel` -- see *Orientation* below.
* PNG / JPEG / BMP via :mod:`imageio`: grayscale -> ``"YX"``, colour -> ``(Y, X, C)`` with axes
  ``"YXC"`` (an alpha channel that is fully opaque is dropped).
* ``.npy`` via :func:`numpy.load`. A ``.npy`` file has no metadata: no spacing, and the axes are
  only a guess (``"YX"`` for 2D, ``"ZYX"`` for 3D, ``None`` otherwise).
* ``.zarr``: an OME-Zarr (NGFF 0.4 or 0.5) multiscale group (level 0 is used) or a plain zarr
  array. Written as an OME-NGFF 0.4 group (zarr format 2) holding one chunked array ``"0"``.

Orientation (NIfTI)
-------------------
nibabel returns voxel arrays indexed ``(i, j, k[, t])``, where ``i`` usually runs along x
(left-right), ``j`` along y and ``k`` along z (the slice axis). segstudio returns NIfTI data
**transposed to** ``(k, j, i)`` -- i.e. ``(z, y, x)``, axes ``"ZYX"`` -- so that napari's first
(slider) axis steps through axial slices, and ``ImageMeta.spacing`` is the header zooms
*reversed* accordingly (``(dz, dy, dx)``). A file with a singleton third axis is squeezed to 2D
``(y, x)``; a 4D file with a small fourth axis (<= 4) is returned as ``"CZYX"`` (channels
first). :func:`write_image` applies the inverse transpose (re-inserting a singleton third
axis when the reference file had one) and reuses the affine and header of ``like`` (or of
``meta``), so ``write_image(p, *read_image(q))`` reproduces the array nibabel sees in ``q`` and
its affine exactly. The affine is never applied to the data (no resampling, no reorientation
to RAS).

Lazy reading
------------
``lazy=True`` avoids loading pixel data where the format allows it: uncompressed TIFF ->
:class:`numpy.memmap`, other TIFF -> a read-only zarr array over the file (the file stays
open while the array is referenced), ``.nii`` -> memmap (unless intensity scaling is set),
``.npy`` -> memmap, ``.zarr`` -> the zarr array. ``.nii.gz`` and PNG/JPEG/BMP are always loaded.

Writing
-------
Every write goes through :mod:`segstudio.core.atomic`: single-file formats are written to a
temporary file in the destination folder, fsynced and moved into place, so a crash never
leaves a half-written file under the final name. A ``.zarr`` store is written into a
temporary folder next to the destination, fsynced, and then swapped in (an existing zarr
store of that name is replaced only once the new one is complete; a folder that is not a
zarr store, or a file, is refused). Parent folders are created when missing.

User mistakes (missing file, wrong or corrupt content, unsupported extension or data) raise
:class:`segstudio.core.errors.UserInputError` with a one-line message naming the file.
"""

from __future__ import annotations

import math
import os
import pathlib
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import numpy as np

from segstudio.core.atomic import atomic_write_path, write_folder
from segstudio.core.errors import UserInputError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ImageMeta",
    "create_ome_zarr",
    "describe",
    "format_of",
    "is_zarr_store",
    "read_image",
    "read_labels",
    "spatial_layout",
    "write_image",
]

#: File extensions segstudio reads and writes (lower case, with the dot).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".tif",
    ".tiff",
    ".ome.tif",
    ".ome.tiff",
    ".nii",
    ".nii.gz",
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".npy",
    ".zarr",
)

_EXT_TO_FORMAT: dict[str, str] = {
    ".ome.tiff": "tiff",
    ".ome.tif": "tiff",
    ".nii.gz": "nifti",
    ".tiff": "tiff",
    ".tif": "tiff",
    ".nii": "nifti",
    ".png": "png",
    ".jpeg": "jpg",
    ".jpg": "jpg",
    ".bmp": "bmp",
    ".npy": "npy",
    ".zarr": "zarr",
}

_FORMAT_NAMES = {
    "tiff": "TIFF",
    "nifti": "NIfTI",
    "png": "PNG",
    "jpg": "JPEG",
    "bmp": "BMP",
    "npy": "NumPy .npy",
    "zarr": "Zarr",
    "gzip": "gzip",
    "zip": "ZIP",
    "hdf5": "HDF5",
    "gif": "GIF",
}

_PILLOW_FORMATS = ("png", "jpg", "bmp")

# Lengths in these units are converted to micrometres.
_UNIT_TO_UM: dict[str, float] = {
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "\\u00b5m": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "centimetre": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
}

_SPATIAL = "ZYX"


@dataclass(frozen=True)
class ImageMeta:
    """What segstudio knows about an image besides its pixels.

    Attributes
    ----------
    spacing : tuple of float or None
        Physical size of a pixel/voxel per *spatial* axis, in array axis order (``(z, y, x)``
        or ``(y, x)``); micrometres for microscopy formats, the header unit (usually mm) for
        NIfTI. ``None`` when the file does not say.
    axes : str or None
        Axis letters of the returned array, e.g. ``"YX"``, ``"ZYX"``, ``"CYX"``, ``"ZCYX"``,
        ``"YXC"``. ``None`` when unknown.
    affine : numpy.ndarray or None
        NIfTI 4x4 voxel-to-world affine (of the file's ``(i, j, k)`` order), kept for writing.
    header : object or None
        nibabel header to reuse when writing NIfTI.
    source_format : str
        One of ``"tiff"``, ``"nifti"``, ``"png"``, ``"jpg"``, ``"bmp"``, ``"npy"``, ``"zarr"``.
    path : str or None
        The file the image was read from.
    """

    spacing: tuple[float, ...] | None = None
    axes: str | None = None
    affine: np.ndarray | None = None
    header: object | None = None
    source_format: str = "npy"
    path: str | None = None


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _name(path: str | os.PathLike) -> str:
    return os.fspath(path)


def _read_error(path: str | os.PathLike, why: str) -> UserInputError:
    return UserInputError(f"cannot read '{_name(path)}': {why}")


def _write_error(path: str | os.PathLike, why: str) -> UserInputError:
    return UserInputError(f"cannot write '{_name(path)}': {why}")


def _supported_list() -> str:
    return ", ".join(SUPPORTED_EXTENSIONS)


def format_of(path: str | os.PathLike) -> str:
    """Return the image format implied by the file extension.

    Parameters
    ----------
    path : str or os.PathLike
        File name; only its extension is looked at (case-insensitive).

    Returns
    -------
    str
        ``"tiff"``, ``"nifti"``, ``"png"``, ``"jpg"``, ``"bmp"``, ``"npy"`` or ``"zarr"``.

    Raises
    ------
    UserInputError
        If the extension is not one of :data:`SUPPORTED_EXTENSIONS`.
    """
    name = _name(path).rstrip("/\\")
    lower = os.path.basename(name).lower()
    for ext, fmt in _EXT_TO_FORMAT.items():  # longest extensions first
        if lower.endswith(ext):
            return fmt
    suffix = pathlib.PurePath(lower).suffix or "(none)"
    raise UserInputError(
        f"unsupported file type '{suffix}' for '{_name(path)}': "
        f"expected one of {_supported_list()}"
    )


def _sniff(path: str | os.PathLike) -> str | None:
    """Guess a file's format from its first bytes (``None`` when unknown)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(352)
    except OSError:
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpg"
    if head[:2] == b"BM":
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    return None


def _check_source(path: str | os.PathLike, fmt: str) -> None:
    """Raise a clear error for a missing file, a folder, an empty or mislabelled file."""
    p = pathlib.Path(path)
    if not p.exists():
        raise _read_error(path, "file not found")
    label = _FORMAT_NAMES[fmt]
    if fmt == "zarr":
        if not p.is_dir():
            raise _read_error(path, "expected a Zarr folder, found a file")
        return
    if p.is_dir():
        raise _read_error(path, f"is a folder, expected a {label} file")
    if not os.access(p, os.R_OK):
        raise _read_error(path, "permission denied")
    if p.stat().st_size == 0:
        raise _read_error(path, f"file is empty, expected a {label} file")
    got = _sniff(p)
    lower = p.name.lower()
    if fmt == "nifti":
        expected = "gzip" if lower.endswith(".gz") else "nifti"
    else:
        expected = fmt
    if got is None or got == expected:
        return
    if fmt in _PILLOW_FORMATS and got in _PILLOW_FORMATS:
        return  # Pillow reads by content; a JPEG named .png is common and harmless
    if fmt == "nifti" and got in ("nifti", "gzip"):
        if got == "gzip":
            raise _read_error(path, "file is gzip-compressed; name it .nii.gz")
        raise _read_error(path, "file is not gzip-compressed; name it .nii")
    raise _read_error(
        path, f"not a {label} file (content looks like {_FORMAT_NAMES.get(got, got)})"
    )


def _axes_is_compatible(axes: str | None, ndim: int) -> bool:
    return axes is not None and len(axes) == ndim


def _guess_axes(ndim: int) -> str | None:
    return {2: "YX", 3: "ZYX"}.get(ndim)


def spatial_layout(shape: tuple[int, ...], axes: str | None) -> tuple[int | None, int | None]:
    """Say how segstudio interprets an array: spatial dimensions and channel count.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    axes : str or None
        Axis letters (as in :class:`ImageMeta`); ``None`` means unknown, in which case
        2D arrays are taken as ``YX`` and 3D as ``ZYX``.

    Returns
    -------
    spatial_dims : int or None
        2 or 3, or ``None`` when it cannot be told.
    channels : int or None
        Size of the ``C`` axis, or ``None`` when there is no channel axis.
    """
    if not _axes_is_compatible(axes, len(shape)):
        axes = _guess_axes(len(shape))
    if axes is None:
        return None, None
    spatial = sum(1 for a in axes if a in _SPATIAL)
    channels = shape[axes.index("C")] if "C" in axes else None
    return (spatial if spatial in (2, 3) else None), channels


def _unit_factor(unit: Any) -> float | None:
    if unit is None:
        return 1.0
    u = str(unit).strip().lower()
    if u in ("", "pixel", "pixels", "none"):
        return 1.0
    return _UNIT_TO_UM.get(u)


def _spacing_for_axes(axes: str, known: dict[str, float | None]) -> tuple[float, ...] | None:
    """Spacing tuple for the spatial axes in ``axes``; unknown ones default to 1.0."""
    spatial = [a for a in axes if a in _SPATIAL]
    if not spatial or all(known.get(a) is None for a in spatial):
        return None
    out = []
    for a in spatial:
        v = known.get(a)
        out.append(float(v) if v is not None and math.isfinite(v) and v > 0 else 1.0)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# TIFF
# --------------------------------------------------------------------------------------------


def _normalise_tiff_axes(axes: str) -> str:
    out = list(axes)
    if "S" in out and "C" not in out:
        out[out.index("S")] = "C"
    for generic in ("I", "Q"):
        if generic in out and "Z" not in out:
            out[out.index(generic)] = "Z"
    return "".join(out)


def _tiff_spacing(tf: Any, axes: str) -> tuple[float, ...] | None:
    import tifffile

    known: dict[str, float | None] = {}
    # 1. OME-XML
    if tf.is_ome and tf.ome_metadata:
        try:
            root = ET.fromstring(tf.ome_metadata)
            pixels = next(el for el in root.iter() if el.tag.endswith("Pixels"))
            for ax in "XYZ":
                val = pixels.get(f"PhysicalSize{ax}")
                if val is None:
                    continue
                factor = _unit_factor(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
                known[ax] = float(val) * (factor if factor is not None else 1.0)
        except (ET.ParseError, StopIteration, ValueError):
            known = {}
        if known:
            return _spacing_for_axes(axes, known)
    # 2. resolution tags (+ ImageJ spacing / unit, + tifffile shaped metadata)
    page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
    ij = tf.imagej_metadata or {}
    shaped = {}
    if tf.is_shaped and tf.shaped_metadata:
        shaped = tf.shaped_metadata[0] or {}
    unit = ij.get("unit", shaped.get("unit"))
    factor = _unit_factor(unit) if unit is not None else None
    tags = page.tags
    resunit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
    if unit is None:
        if resunit == tifffile.RESUNIT.CENTIMETER:
            factor = 1e4
        elif resunit == getattr(tifffile.RESUNIT, "MILLIMETER", 4):
            factor = 1e3
        elif resunit == getattr(tifffile.RESUNIT, "MICROMETER", 5):
            factor = 1.0
        elif resunit == tifffile.RESUNIT.NONE:
            factor = 1.0
        else:  # INCH (also the TIFF default): a print DPI, not a physical pixel size
            factor = None
    if factor is None:
        factor = 1.0 if (ij or shaped.get("spacing") is not None) else None
    if factor is not None:
        res = {}
        for ax, tag in (("X", "XResolution"), ("Y", "YResolution")):
            if tag in tags:
                num, den = tags[tag].value
                if num and den:
                    res[ax] = den / num
        # 1 pixel per unit without any unit is what writers put when nothing is known
        if not (unit is None and set(res.values()) <= {1.0}):
            known.update({ax: factor * v for ax, v in res.items()})
    zsp = ij.get("spacing", shaped.get("spacing"))
    if zsp is not None:
        try:
            known["Z"] = float(zsp) * (factor if factor is not None else 1.0)
        except (TypeError, ValueError):
            pass
    if not known:
        return None
    return _spacing_for_axes(axes, known)


def _check_tiff_complete(path: str | os.PathLike, tf: Any, series: Any, series_axes: str,
                         series_shape: tuple[int, ...]) -> None:
    """Raise if the file is shorter than its own metadata says (cut-off download/copy);
    ``series_axes``/``series_shape``: the series' squeezed ones (:func:`_squeezed_axes_shape`)."""
    n_series = int(np.prod(series_shape, dtype=np.int64))
    expected: int | None = None
    if tf.is_shaped and tf.shaped_metadata and len(tf.series) == 1:
        declared = (tf.shaped_metadata[0] or {}).get("shape")
        if declared:
            expected = int(np.prod(declared, dtype=np.int64))
    elif tf.is_imagej and tf.imagej_metadata:
        images = tf.imagej_metadata.get("images")
        if images:
            page_size = int(np.prod(series_shape[-2:], dtype=np.int64))
            if series_axes.endswith("S"):
                page_size = int(np.prod(series_shape[-3:], dtype=np.int64))
            expected = int(images) * page_size
    if expected is not None and expected > n_series:
        raise _read_error(
            path, "not a valid TIFF file (truncated: fewer images than its metadata declares)")
    size = os.path.getsize(path)
    end = 0
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        for page in series.pages:
            if page is None:
                continue
            offs = getattr(page, "dataoffsets", ()) or ()
            counts = getattr(page, "databytecounts", ()) or ()
            for o, c in zip(offs, counts):
                if o and c:
                    end = max(end, o + c)
    if end > size:
        raise _read_error(
            path, f"not a valid TIFF file (truncated: {size} of {end} bytes present)"
        )


def _squeezed_axes_shape(series: Any) -> tuple[str, tuple[int, ...]]:
    """A tifffile series' axes and shape without its length-1 dimensions (Y and X always kept).

    tifffile up to 2026.3 gives them as ``get_axes(True)``/``get_shape(True)``; later releases
    dropped those methods, and their ``axes``/``shape`` keep a shaped file's length-1 dimensions
    (a ``(1, 64, 64)`` array written by ``imwrite`` reads as ``QYX``), so they are squeezed here.
    """
    if hasattr(series, "get_axes") and hasattr(series, "get_shape"):
        return str(series.get_axes(True)), tuple(int(n) for n in series.get_shape(True))
    return _without_length_one(str(series.axes), tuple(int(n) for n in series.shape))


def _without_length_one(axes: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """``axes`` and ``shape`` without their length-1 dimensions, Y and X kept."""
    keep = [i for i, (a, n) in enumerate(zip(axes, shape)) if n != 1 or a in "YX"]
    return "".join(axes[i] for i in keep), tuple(shape[i] for i in keep)


def _read_tiff(path: str | os.PathLike, lazy: bool) -> tuple[Any, ImageMeta]:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
    except Exception as e:  # TiffFileError, struct.error, ValueError, ...
        raise _read_error(path, "not a valid TIFF file (truncated or corrupt)") from e
    keep_open = False
    try:
        try:
            if (
                len(tf.series) > 1
                and not (tf.is_ome or tf.is_imagej)
                and all(s.shape == tf.series[0].shape for s in tf.series)
            ):
                # pages written one by one (e.g. a z-stack saved slice by slice)
                tf.close()
                tf = tifffile.TiffFile(path, is_shaped=False)
            series = tf.series[0]
            raw_axes, shape = _squeezed_axes_shape(series)
        except Exception as e:
            raise _read_error(path, "not a valid TIFF file (corrupt structure)") from e
        _check_tiff_complete(path, tf, series, raw_axes, shape)
        axes = _normalise_tiff_axes(raw_axes)
        spacing = _tiff_spacing(tf, axes)
        data: Any
        try:
            if lazy:
                try:
                    mm = tifffile.memmap(path, series=0, mode="r")
                    data = mm.reshape(shape)
                except Exception:
                    store = series.aszarr(squeeze=True)
                    data = _open_zarr_store_readonly(store)
                    keep_open = True
                    try:  # close the file once the lazy array is garbage-collected
                        weakref.finalize(data, tf.close)
                    except TypeError:
                        pass
            else:
                data = series.asarray().reshape(shape)
        except UserInputError:
            raise
        except Exception as e:
            raise _read_error(path, "not a valid TIFF file (truncated or corrupt)") from e
    finally:
        if not keep_open:
            tf.close()
    meta = ImageMeta(spacing=spacing, axes=axes, source_format="tiff", path=_name(path))
    return data, meta


def _open_zarr_store_readonly(store: Any) -> Any:
    import zarr

    return zarr.open(store, mode="r")


def _tiff_axes_for_write(data: np.ndarray, axes: str | None) -> str:
    if _axes_is_compatible(axes, data.ndim):
        return axes  # type: ignore[return-value]
    guess = {2: "YX", 3: "ZYX", 4: "CZYX"}.get(data.ndim)
    if guess is None:
        return "QQQQQQ"[: data.ndim - 2] + "YX"
    return guess


def _write_tiff(tmp: str, final: str, data: np.ndarray, axes: str | None,
                spacing: tuple[float, ...] | None) -> None:
    import tifffile

    if data.dtype == bool:
        data = data.astype(np.uint8)
    axes_w = _tiff_axes_for_write(data, axes)
    spatial = [a for a in axes_w if a in _SPATIAL]
    sp: dict[str, float] = {}
    if spacing is not None and len(spacing) == len(spatial):
        sp = dict(zip(spatial, (float(s) for s in spacing)))
    lower = os.path.basename(final).lower()
    kwargs: dict[str, Any] = {}
    if lower.endswith((".ome.tif", ".ome.tiff")):
        md: dict[str, Any] = {"axes": axes_w}
        photometric = "minisblack"
        if axes_w.endswith("C") and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
            md["axes"] = axes_w[:-1] + "S"
            photometric = "rgb"
        for ax in "XYZ":
            if ax in sp:
                md[f"PhysicalSize{ax}"] = sp[ax]
                md[f"PhysicalSize{ax}Unit"] = "µm"
        tifffile.imwrite(tmp, data, ome=True, metadata=md, photometric=photometric)
        return
    resolution = None
    if "X" in sp and "Y" in sp:
        resolution = (1.0 / sp["X"], 1.0 / sp["Y"])
    ij_axes_ok = axes_w in ("YX", "ZYX", "CYX", "ZCYX")
    if data.dtype in (np.uint8, np.uint16, np.float32) and ij_axes_ok:
        md = {"axes": axes_w}
        if sp:
            md["unit"] = "um"
        if "Z" in sp:
            md["spacing"] = sp["Z"]
        if resolution is not None:
            kwargs["resolution"] = resolution
        tifffile.imwrite(tmp, data, imagej=True, metadata=md, **kwargs)
        return
    md = {"axes": axes_w}
    photometric = "minisblack"
    if axes_w.endswith("C") and data.shape[-1] in (3, 4) and data.dtype in (np.uint8, np.uint16):
        md["axes"] = axes_w[:-1] + "S"
        photometric = "rgb"
    if sp:
        md["unit"] = "um"
        if "Z" in sp:
            md["spacing"] = sp["Z"]
    if resolution is not None:
        kwargs["resolution"] = resolution
        kwargs["resolutionunit"] = tifffile.RESUNIT.NONE
    compression = "zlib" if data.nbytes > 0 else None
    tifffile.imwrite(tmp, data, metadata=md, photometric=photometric,
                     compression=compression, **kwargs)


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


def _read_nifti(path: str | os.PathLike, lazy: bool) -> tuple[Any, ImageMeta]:
    import nibabel as nib

    gz = _name(path).lower().endswith(".gz")
    try:
        img = nib.load(os.fspath(path), mmap=(lazy and not gz))
        shape = tuple(int(s) for s in img.shape)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=float)
        raw = np.asanyarray(img.dataobj)
        if not lazy or not isinstance(raw, np.memmap):
            raw = np.asarray(raw)
    except UserInputError:
        raise
    except Exception as e:  # ImageFileError, EOFError, zlib.error, OSError, ValueError
        what = "truncated or corrupt" + (" gzip data" if gz else "")
        raise _read_error(path, f"not a valid NIfTI file ({what})") from e

    ndim = raw.ndim
    if ndim == 2:
        data = raw.T
        axes = "YX"
        spacing = (zooms[1], zooms[0])
    elif ndim == 3:
        if shape[2] == 1:
            data = raw[:, :, 0].T
            axes = "YX"
            spacing = (zooms[1], zooms[0])
        else:
            data = raw.transpose(2, 1, 0)
            axes = "ZYX"
            spacing = (zooms[2], zooms[1], zooms[0])
    elif ndim == 4:
        t = shape[3]
        if t == 1:
            raw3 = raw[..., 0]
        else:
            raw3 = None
        if raw3 is not None:
            if shape[2] == 1:
                data, axes, spacing = raw3[:, :, 0].T, "YX", (zooms[1], zooms[0])
            else:
                data, axes = raw3.transpose(2, 1, 0), "ZYX"
                spacing = (zooms[2], zooms[1], zooms[0])
        else:
            lead = "C" if t <= 4 else "T"
            if shape[2] == 1:
                data = raw[:, :, 0, :].transpose(2, 1, 0)
                axes = lead + "YX"
                spacing = (zooms[1], zooms[0])
            else:
                data = raw.transpose(3, 2, 1, 0)
                axes = lead + "ZYX"
                spacing = (zooms[2], zooms[1], zooms[0])
    else:
        raise _read_error(path, f"unsupported NIfTI with {ndim} dimensions (expected 2 to 4)")
    meta = ImageMeta(
        spacing=tuple(float(s) for s in spacing),
        axes=axes,
        affine=affine,
        header=img.header,
        source_format="nifti",
        path=_name(path),
    )
    return data, meta


def _to_nifti_order(data: np.ndarray, axes: str, ref_ndim: int | None) -> np.ndarray:
    """Inverse of the read transpose: segstudio axes -> nibabel ``(i, j, k[, c])``."""
    order = [axes.index(a) for a in "XYZ" if a in axes]
    extra = [i for i, a in enumerate(axes) if a not in _SPATIAL]
    if len(extra) > 1:
        raise ValueError(f"cannot map axes {axes!r} to NIfTI")
    arr = np.transpose(data, order + extra)
    if "Z" not in axes and (extra or (ref_ndim is not None and ref_ndim >= 3)):
        arr = np.expand_dims(arr, 2)  # restore the singleton k axis
    return arr


def _nifti_dtype(data: np.ndarray) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype == np.int64 or data.dtype == np.uint64:
        if data.size == 0:
            return data.astype(np.int32)
        lo, hi = data.min(), data.max()
        if lo >= np.iinfo(np.int32).min and hi <= np.iinfo(np.int32).max:
            return data.astype(np.int32)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    return data


def _write_nifti(tmp: str, data: np.ndarray, axes: str | None,
                 spacing: tuple[float, ...] | None, affine: np.ndarray | None,
                 header: object | None) -> None:
    import nibabel as nib

    if not _axes_is_compatible(axes, data.ndim):
        axes = {2: "YX", 3: "ZYX", 4: "CZYX"}.get(data.ndim)
        if axes is None:
            raise ValueError(f"{data.ndim}D data")
    ref_ndim = None
    if header is not None and hasattr(header, "get_data_shape"):
        ref_ndim = len(header.get_data_shape())
    arr = _to_nifti_order(_nifti_dtype(np.asarray(data)), axes, ref_ndim)
    if affine is None:
        if spacing is not None:
            zooms = list(spacing)[::-1] + [1.0] * (3 - len(spacing))
        else:
            zooms = [1.0, 1.0, 1.0]
        affine = np.diag([*zooms[:3], 1.0])
    if header is not None:
        hdr = header.copy()  # type: ignore[attr-defined]
        hdr.set_data_dtype(arr.dtype)
        hdr.set_data_shape(arr.shape)
        if hasattr(hdr, "set_slope_inter"):
            hdr.set_slope_inter(np.nan, np.nan)
        img = nib.Nifti1Image(arr, affine, header=hdr) if not isinstance(
            hdr, nib.Nifti2Header) else nib.Nifti2Image(arr, affine, header=hdr)
    else:
        img = nib.Nifti1Image(arr, affine, dtype=arr.dtype)
        if spacing is not None:
            img.header.set_xyzt_units("mm")
    nib.save(img, tmp)


# --------------------------------------------------------------------------------------------
# PNG / JPEG / BMP
# --------------------------------------------------------------------------------------------


def _read_pillow(path: str | os.PathLike, fmt: str) -> tuple[np.ndarray, ImageMeta]:
    import imageio.v3 as iio

    try:
        data = np.asarray(iio.imread(os.fspath(path)))
    except Exception as e:
        raise _read_error(
            path, f"not a valid {_FORMAT_NAMES[fmt]} file (truncated or corrupt)"
        ) from e
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 3 and data.shape[-1] in (2, 4):
        alpha = data[..., -1]
        if np.all(alpha == np.iinfo(data.dtype).max if data.dtype.kind in "ui" else alpha == 1):
            data = data[..., :-1]
            if data.shape[-1] == 1:
                data = data[..., 0]
    if data.ndim == 2:
        axes = "YX"
    elif data.ndim == 3:
        axes = "YXC"
    else:
        raise _read_error(path, f"unsupported {data.ndim}D {_FORMAT_NAMES[fmt]} image "
                                "(animated images are not supported)")
    return data, ImageMeta(axes=axes, source_format=fmt, path=_name(path))


def _write_pillow(tmp: str, final: str, data: np.ndarray, fmt: str,
                  axes: str | None) -> None:
    import imageio.v3 as iio

    label = _FORMAT_NAMES[fmt]
    arr = np.asarray(data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    is_color = arr.ndim == 3 and arr.shape[-1] in (3, 4) and (axes is None or axes.endswith("C"))
    if not (arr.ndim == 2 or is_color):
        raise _write_error(
            final, f"{label} stores 2D grayscale or RGB(A) images, got shape {arr.shape} "
                   "(use .tif, .nii.gz, .npy or .zarr)")
    max16 = 65535 if (fmt == "png" and not is_color) else 255
    if arr.dtype.kind in "ui" and arr.dtype not in (np.uint8, np.uint16):
        lo = int(arr.min()) if arr.size else 0
        hi = int(arr.max()) if arr.size else 0
        if lo < 0 or hi > max16:
            raise _write_error(
                final, f"{label} stores values 0..{max16}, data has {lo}..{hi} "
                       "(use .tif, .nii.gz, .npy or .zarr)")
        arr = arr.astype(np.uint8 if hi <= 255 else np.uint16)
    if arr.dtype == np.uint16 and max16 == 255:
        raise _write_error(final, f"{label} stores 8-bit data here, got uint16 (use .png or .tif)")
    if arr.dtype not in (np.uint8, np.uint16):
        raise _write_error(
            final, f"{label} stores 8/16-bit integer images, got {arr.dtype} "
                   "(use .tif, .nii.gz, .npy or .zarr)")
    ext = {"png": ".png", "jpg": ".jpg", "bmp": ".bmp"}[fmt]
    iio.imwrite(tmp, arr, extension=ext)


# --------------------------------------------------------------------------------------------
# NPY
# --------------------------------------------------------------------------------------------


def _read_npy(path: str | os.PathLike, lazy: bool) -> tuple[np.ndarray, ImageMeta]:
    try:
        data = np.load(os.fspath(path), mmap_mode="r" if lazy else None, allow_pickle=False)
    except Exception as e:
        raise _read_error(path, "not a valid .npy file (truncated, corrupt or pickled)") from e
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        raise _read_error(path, f"expected a numeric array, found dtype {data.dtype}")
    return data, ImageMeta(axes=_guess_axes(data.ndim), source_format="npy", path=_name(path))


def _write_npy(tmp: str, data: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, np.asarray(data), allow_pickle=False)


# --------------------------------------------------------------------------------------------
# Zarr
# --------------------------------------------------------------------------------------------


def _zarr_major() -> int:
    import zarr

    try:
        return int(str(zarr.__version__).split(".")[0])
    except ValueError:
        return 3


def is_zarr_store(p: pathlib.Path) -> bool:
    """Whether the folder ``p`` is a zarr store (group or array, zarr format 2 or 3)."""
    return any((p / n).exists() for n in (".zgroup", ".zarray", "zarr.json", ".zattrs"))


def _multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    ms = attrs.get("multiscales")
    if ms is None and isinstance(attrs.get("ome"), dict):
        ms = attrs["ome"].get("multiscales")
    return ms if isinstance(ms, list) and ms else None


def _scale_of(transforms: Any) -> list[float] | None:
    for t in transforms or []:
        if isinstance(t, dict) and t.get("type") == "scale":
            return [float(v) for v in t.get("scale", [])]
    return None


def _read_zarr(path: str | os.PathLike, lazy: bool) -> tuple[Any, ImageMeta]:
    import zarr

    p = pathlib.Path(path)
    if not is_zarr_store(p):
        raise _read_error(path, "not a valid Zarr store (no .zgroup, .zarray or zarr.json found)")
    arr: Any = None
    axes: str | None = None
    spacing: tuple[float, ...] | None = None
    try:
        node = zarr.open(os.fspath(p), mode="r")
    except Exception as e:
        raise _read_error(path, "not a valid Zarr store (corrupt or missing metadata)") from e
    if isinstance(node, zarr.Array):
        arr = node
    else:
        ms = _multiscales(dict(node.attrs))
        try:
            if ms is not None:
                m0 = ms[0]
                ds0 = m0["datasets"][0]
                arr = node[ds0["path"]]
                ax_meta = m0.get("axes", [])
                names = [(a["name"] if isinstance(a, dict) else str(a)) for a in ax_meta]
                types = [(a.get("type") if isinstance(a, dict) else None) for a in ax_meta]
                if len(names) == arr.ndim:
                    letters = []
                    for n, t in zip(names, types):
                        n = n.lower()
                        if n in ("z", "y", "x"):
                            letters.append(n.upper())
                        elif n in ("c", "channel") or t == "channel":
                            letters.append("C")
                        elif n in ("t", "time") or t == "time":
                            letters.append("T")
                        else:
                            letters.append("Q")
                    axes = "".join(letters)
                    scale = _scale_of(ds0.get("coordinateTransformations"))
                    outer = _scale_of(m0.get("coordinateTransformations"))
                    if scale is not None and len(scale) == arr.ndim:
                        if outer is not None and len(outer) == arr.ndim:
                            scale = [a * b for a, b in zip(scale, outer)]
                        spacing = tuple(s for s, a in zip(scale, axes) if a in _SPATIAL) or None
            else:
                arrays = list(node.array_keys())
                if "0" in arrays:
                    arr = node["0"]
                elif len(arrays) == 1:
                    arr = node[arrays[0]]
                else:
                    raise _read_error(
                        path, "Zarr group has no OME 'multiscales' metadata and no single array")
        except UserInputError:
            raise
        except Exception as e:
            raise _read_error(
                path, "not a valid OME-Zarr store (level-0 array missing or corrupt)") from e
    if axes is None:
        axes = _guess_axes(arr.ndim)
    if arr.dtype.kind not in "biuf":
        raise _read_error(path, f"expected a numeric array, found dtype {arr.dtype}")
    data: Any = arr
    if not lazy:
        try:
            data = np.asarray(arr[...])
        except Exception as e:
            raise _read_error(path, "Zarr chunks are corrupt or unreadable") from e
    return data, ImageMeta(spacing=spacing, axes=axes, source_format="zarr", path=_name(path))


def _zarr_chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    n_spatial = sum(1 for a in axes if a in _SPATIAL)
    edge = 1024 if n_spatial <= 2 else 128
    return tuple(max(1, min(s, edge)) if a in _SPATIAL else 1 for s, a in zip(shape, axes))


def _write_zarr(target: str, data: Any, axes: str | None,
                spacing: tuple[float, ...] | None) -> None:
    if not _axes_is_compatible(axes, data.ndim):
        axes = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(data.ndim)
        if axes is None:
            raise ValueError(f"{data.ndim}D data")
    if data.dtype == bool:
        data = np.asarray(data).astype(np.uint8)
    arr = create_ome_zarr(target, tuple(data.shape), data.dtype, axes, spacing)
    if isinstance(data, np.ndarray):
        arr[...] = data
    else:  # lazy source: copy slab by slab along the first axis
        step = max(1, arr.chunks[0])
        for i in range(0, data.shape[0], step):
            arr[i:i + step] = np.asarray(data[i:i + step])


def create_ome_zarr(target: str | os.PathLike, shape: tuple[int, ...], dtype: Any, axes: str | None,
                    spacing: tuple[float, ...] | None, chunks: tuple[int, ...] | None = None) -> Any:
    """Create an empty OME-Zarr (NGFF 0.4, zarr format 2) group with one array ``"0"``.

    The layout, chunking and metadata are those :func:`write_image` writes for ``.zarr``;
    the returned zarr array is filled by the caller (e.g. band by band by an out-of-core
    prediction). ``axes`` defaults to ``YX``/``ZYX``/``CZYX``/``TCZYX`` by rank; ``chunks``
    to 1024² (2D) or 128³ (3D) spatial chunks, one per channel/time point.
    """
    import zarr

    target = os.fspath(target)
    if not _axes_is_compatible(axes, len(shape)):
        axes = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(len(shape))
        if axes is None:
            raise ValueError(f"{len(shape)}D data")
    chunks = tuple(chunks) if chunks is not None else _zarr_chunks(tuple(shape), axes)
    if _zarr_major() >= 3:
        root = zarr.open_group(target, mode="w", zarr_format=2)
        arr = root.create_array("0", shape=shape, dtype=dtype, chunks=chunks)
    else:  # pragma: no cover - zarr 2
        root = zarr.open_group(target, mode="w")
        arr = root.create_dataset("0", shape=shape, dtype=dtype, chunks=chunks)
    spatial = [a for a in axes if a in _SPATIAL]
    sp = dict(zip(spatial, spacing)) if spacing and len(spacing) == len(spatial) else {}
    ome_axes = []
    for a in axes:
        if a in _SPATIAL:
            ome_axes.append({"name": a.lower(), "type": "space", "unit": "micrometer"})
        elif a == "C":
            ome_axes.append({"name": "c", "type": "channel"})
        elif a == "T":
            ome_axes.append({"name": "t", "type": "time"})
        else:
            ome_axes.append({"name": a.lower()})
    scale = [float(sp.get(a, 1.0)) for a in axes]
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "name": pathlib.Path(target).stem,
        "axes": ome_axes,
        "datasets": [{
            "path": "0",
            "coordinateTransformations": [{"type": "scale", "scale": scale}],
        }],
    }]
    return arr


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike, *, lazy: bool = False) -> tuple[Any, ImageMeta]:
    """Read an image and what is known about it.

    Parameters
    ----------
    path : str or os.PathLike
        File (or ``.zarr`` folder) with one of :data:`SUPPORTED_EXTENSIONS`.
    lazy : bool, optional
        If True, avoid loading pixel data where the format allows it (see the module
        docstring); the result is then a :class:`numpy.memmap` or a read-only zarr array.

    Returns
    -------
    data : numpy.ndarray or array-like
        The pixels, in the axis order given by ``meta.axes``; NIfTI is returned as
        ``(z, y, x)`` (see *Orientation* in the module docstring).
    meta : ImageMeta
        Spacing, axes, NIfTI affine/header, source format and path.

    Raises
    ------
    UserInputError
        If the file is missing, a folder, of an unsupported type, or not readable as the
        format its extension promises.
    """
    fmt = format_of(path)
    _check_source(path, fmt)
    if fmt == "tiff":
        return _read_tiff(path, lazy)
    if fmt == "nifti":
        return _read_nifti(path, lazy)
    if fmt in _PILLOW_FORMATS:
        return _read_pillow(path, fmt)
    if fmt == "npy":
        return _read_npy(path, lazy)
    return _read_zarr(path, lazy)


def _smallest_int_dtype(lo: float, hi: float) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.int32, np.int64):
        info = np.iinfo(dt)
        if lo >= info.min and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def read_labels(path: str | os.PathLike, *, lazy: bool = False) -> tuple[Any, ImageMeta]:
    """Read a label image (integer class ids) and its metadata.

    Same as :func:`read_image`, but the data must be integer-like: integer and boolean data
    are returned as integers (bool -> uint8), float data whose values are all whole numbers is
    converted to the smallest fitting integer type (this loads it into memory, even with
    ``lazy=True``).

    Parameters
    ----------
    path : str or os.PathLike
        Label file with one of :data:`SUPPORTED_EXTENSIONS`.
    lazy : bool, optional
        As in :func:`read_image` (honoured for integer data only).

    Returns
    -------
    data : numpy.ndarray or array-like
        Integer label array.
    meta : ImageMeta
        As returned by :func:`read_image`.

    Raises
    ------
    UserInputError
        For any :func:`read_image` error, for colour (RGB) images, and for float data with
        non-integer or non-finite values.
    """
    data, meta = read_image(path, lazy=lazy)
    if meta.source_format in _PILLOW_FORMATS and meta.axes == "YXC":
        raise _read_error(
            path, f"labels must be a single-channel image of class ids, found a colour image "
                  f"with {data.shape[-1]} channels")
    kind = np.dtype(data.dtype).kind
    if kind in "iu":
        return data, meta
    if kind == "b":
        return np.asarray(data).astype(np.uint8), meta
    if kind != "f":
        raise _read_error(path, f"labels must be integers, found dtype {data.dtype}")
    arr = np.asarray(data[...])
    if arr.size == 0:
        return arr.astype(np.uint8), meta
    if not np.all(np.isfinite(arr)):
        raise _read_error(path, "labels must be whole numbers, found NaN or infinite values")
    if not np.all(arr == np.round(arr)):
        bad = arr[arr != np.round(arr)].flat[0]
        raise _read_error(
            path, f"labels must be whole numbers (class ids), found fractional value {bad:g} "
                  "(is this an intensity image or a probability map?)")
    dt = _smallest_int_dtype(float(arr.min()), float(arr.max()))
    return arr.astype(dt), meta


def write_image(
    path: str | os.PathLike,
    data: Any,
    meta: ImageMeta | None = None,
    *,
    like: ImageMeta | None = None,
) -> pathlib.Path:
    """Write an image (or labels) in the format implied by the extension.

    Parameters
    ----------
    path : str or os.PathLike
        Destination with one of :data:`SUPPORTED_EXTENSIONS`. The parent folder is created
        if needed. Written atomically (:mod:`segstudio.core.atomic`).
    data : numpy.ndarray or array-like
        Pixels in segstudio axis order (as returned by :func:`read_image`).
    meta : ImageMeta, optional
        Spacing and axes of ``data`` (and affine/header for NIfTI, used if ``like`` has none).
    like : ImageMeta, optional
        Metadata of a reference image (e.g. the image a label map was painted on). Its NIfTI
        affine and header are reused, and its spacing/axes are used where ``meta`` does not
        give them (axes only if they fit ``data.ndim``).

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    * TIFF: uint8/uint16/float32 ``YX``/``ZYX``/``CYX``/``ZCYX`` data is written as an ImageJ
      hyperstack (resolution tags + ImageJ ``spacing`` for z, unit µm); other data as a
      zlib-compressed TIFF with tifffile JSON metadata (axes, z spacing) and resolution tags.
      ``.ome.tif`` writes OME-TIFF with ``PhysicalSize{X,Y,Z}``.
    * NIfTI: data is transposed back to nibabel ``(i, j, k[, c])`` order; int64 labels are
      stored as int32 when they fit, bool as uint8.
    * PNG: 2D uint8/uint16 or RGB(A) uint8; other integer data is converted when its values
      fit. JPEG/BMP: uint8 only (JPEG is lossy).
    * ``.zarr``: OME-NGFF 0.4 group (zarr format 2), one chunked array ``"0"`` with a scale
      transform; an existing zarr store at ``path`` is replaced.

    Raises
    ------
    UserInputError
        For an unsupported extension, data the format cannot store, or an unwritable
        destination.
    """
    fmt = format_of(path)
    final = pathlib.Path(path).expanduser()
    if hasattr(data, "dtype") and np.dtype(data.dtype).kind not in "biuf":
        raise _write_error(path, f"expected numeric data, got dtype {data.dtype}")
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    ndim = len(data.shape)

    axes: str | None = None
    spacing: tuple[float, ...] | None = None
    for m in (meta, like):
        if m is None:
            continue
        if axes is None and _axes_is_compatible(m.axes, ndim):
            axes = m.axes
    if axes is None:
        axes = _guess_axes(ndim)
    n_spatial = sum(1 for a in (axes or "") if a in _SPATIAL)
    for m in (meta, like):
        if m is not None and spacing is None and m.spacing is not None:
            if len(m.spacing) == n_spatial:
                spacing = tuple(float(s) for s in m.spacing)
            elif len(m.spacing) > n_spatial > 0:  # e.g. a 2D slice of a 3D image
                spacing = tuple(float(s) for s in m.spacing[-n_spatial:])
    affine = None
    header = None
    for m in (like, meta):
        if m is not None and m.affine is not None and affine is None:
            affine, header = m.affine, m.header

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(path, f"cannot create folder '{final.parent}' ({e.strerror})") from e
    if final.is_dir() and fmt != "zarr":
        raise _write_error(path, "a folder with this name exists")

    try:
        if fmt == "zarr":
            write_folder(final, lambda tmp: _write_zarr(os.fspath(tmp), data, axes, spacing),
                         is_expected=is_zarr_store, what="Zarr store", suffix=".zarr")
        elif fmt == "tiff":
            arr = np.asarray(data)
            atomic_write_path(final, lambda tmp: _write_tiff(os.fspath(tmp), os.fspath(final), arr, axes, spacing),
                              ".tif")
        elif fmt == "nifti":
            arr = np.asarray(data)
            suffix = ".nii.gz" if final.name.lower().endswith(".gz") else ".nii"
            atomic_write_path(final, lambda tmp: _write_nifti(os.fspath(tmp), arr, axes, spacing, affine, header),
                              suffix)
        elif fmt in _PILLOW_FORMATS:
            arr = np.asarray(data)
            atomic_write_path(final, lambda tmp: _write_pillow(os.fspath(tmp), os.fspath(path), arr, fmt, axes),
                              "." + fmt)
        else:
            arr = np.asarray(data)
            atomic_write_path(final, lambda tmp: _write_npy(os.fspath(tmp), arr), ".npy")
    except UserInputError:
        raise
    except PermissionError as e:
        raise _write_error(path, "permission denied") from e
    except OSError as e:
        raise _write_error(path, f"{e.strerror or e}") from e
    except Exception as e:
        raise _write_error(
            path, f"{_FORMAT_NAMES[fmt]} cannot store {data.dtype} data of shape "
                  f"{tuple(data.shape)} with axes {axes} ({e})") from e
    return final


def _minmax(data: Any, budget_bytes: int = 1 << 30) -> tuple[float | None, float | None, bool]:
    """Min/max, slab by slab along the first axis; sampled when larger than ``budget_bytes``."""
    shape = tuple(data.shape)
    if not shape or 0 in shape:
        return None, None, True
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return float(np.min(data)), float(np.max(data)), True
    itemsize = np.dtype(data.dtype).itemsize
    slab_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    step = max(1, min(64 << 20, budget_bytes // 8) // slab_bytes)
    chunks = getattr(data, "chunks", None)
    if chunks:
        step = max(chunks[0], (step // chunks[0]) * chunks[0])
    starts = list(range(0, shape[0], step))
    exact = True
    total = int(np.prod(shape, dtype=np.int64)) * itemsize
    if total > budget_bytes:
        n = max(1, budget_bytes // (step * slab_bytes))
        idx = np.unique(np.linspace(0, len(starts) - 1, num=min(n, len(starts))).astype(int))
        starts = [starts[i] for i in idx]
        exact = len(starts) == math.ceil(shape[0] / step)
    lo, hi = math.inf, -math.inf
    for s in starts:
        block = np.asarray(data[s:s + step])
        lo = min(lo, float(block.min()))
        hi = max(hi, float(block.max()))
    return lo, hi, exact


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise an image file for ``segstudio info``.

    Parameters
    ----------
    path : str or os.PathLike
        Image file (or ``.zarr`` folder).

    Returns
    -------
    dict
        Keys: ``path``, ``format``, ``shape`` (tuple), ``dtype`` (str), ``axes``,
        ``spacing``, ``min``, ``max``, ``min_max_exact`` (False when min/max were computed on
        a sample of a very large lazy image), ``spatial_dims`` (2, 3 or None), ``channels``
        (count or None) and ``segstudio_sees`` (one human-readable line).

    Raises
    ------
    UserInputError
        As :func:`read_image`.
    """
    data, meta = read_image(path, lazy=True)
    try:
        lo, hi, exact = _minmax(data)
    except UserInputError:
        raise
    except Exception as e:
        raise _read_error(path, "pixel data is truncated or corrupt") from e
    shape = tuple(int(s) for s in data.shape)
    spatial_dims, channels = spatial_layout(shape, meta.axes)
    if spatial_dims is None:
        sees = f"cannot tell which of the {len(shape)} axes are spatial"
    else:
        axes = meta.axes if _axes_is_compatible(meta.axes, len(shape)) else _guess_axes(len(shape))
        dims = " x ".join(str(s) for s, a in zip(shape, axes or "") if a in _SPATIAL)
        kind = "2D image" if spatial_dims == 2 else "3D volume"
        ch = f", {channels} channel{'s' if channels != 1 else ''}" if channels else ", 1 channel"
        sees = f"{kind} {dims}{ch}"
        if meta.axes is None or meta.source_format == "npy":
            sees += " (axes guessed: the file has no axis metadata)"
    return {
        "path": _name(path),
        "format": meta.source_format,
        "shape": shape,
        "dtype": str(np.dtype(data.dtype)),
        "axes": meta.axes,
        "spacing": meta.spacing,
        "min": lo,
        "max": hi,
        "min_max_exact": exact,
        "spatial_dims": spatial_dims,
        "channels": channels,
        "segstudio_sees": sees,
    }

