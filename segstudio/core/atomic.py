"""The one atomic-write module: files, bytes, torch state, and folder swaps.

Every file segstudio writes goes through here. A file is written under a temporary name in
its destination folder (``.NAME.<random>.tmp``, so on the same file system), flushed and
fsynced, renamed over the destination with :func:`os.replace`, and the folder is fsynced. A
crash, a full disk or a killed process at any moment leaves the previous file or the new one
under the final name, never a mix, and a failed write removes its temporary file.

A folder (an OME-Zarr store) is written completely into a temporary folder next to the
destination, every file and folder in it is fsynced, and only then does it take the final
name (:func:`swap_folder`):

* on Linux the new and the old folder are exchanged in one atomic ``renameat2`` call
  (``RENAME_EXCHANGE``), so the final name always holds a complete store;
* elsewhere (or on a file system without the exchange) the old folder is renamed aside and
  the new one renamed into place; if that second rename fails the old folder is renamed
  back, and if even that fails it is kept, and the error names where;
* the old folder is deleted only after the new one is in place and the parent folder is
  fsynced, and only when it is of the expected format: a folder of another kind (or a file)
  under the destination name is refused before anything is written, and a folder is never
  deleted unless this module created it or checked its format.

Operating-system errors are raised as :class:`~segstudio.core.errors.UserInputError` naming
the destination (``cannot write 'PATH': No space left on device``); other exceptions (a
writer's own errors, interrupts) propagate unchanged after the clean-up.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from segstudio.core.errors import UserInputError

__all__ = [
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_path",
    "atomic_write_text",
    "atomic_write_with",
    "check_replaceable_folder",
    "commit_file",
    "fsync_dir",
    "fsync_tree",
    "remove_temporary",
    "swap_folder",
    "temporary_path",
    "write_folder",
]

#: Suffix of every temporary file or folder (after ``.NAME.<random>``).
TEMP_SUFFIX = ".tmp"
#: Suffix of an old folder renamed aside while a new one takes its name (fallback swap only).
OLD_SUFFIX = ".old"
#: Characters of the random part of temporary names.
RANDOM_CHARS = 8

# Linux ``renameat2(2)``: exchange two paths atomically.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux / an old C library
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Read once at import (``os.umask`` can only be read by setting it, which is not thread-safe).
_UMASK = _read_umask()


def _error(target: Path, e: OSError) -> UserInputError:
    return UserInputError(f"cannot write '{target}': {e.strerror or e}")


# --------------------------------------------------------------------------- fsync
def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entry table to disk so a rename inside it survives a power cut.

    A no-op where folders cannot be opened (Windows) or cannot be fsynced (some network file
    systems answer ``EINVAL``); other errors are raised.
    """
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike[str]) -> None:
    """fsync every file and folder below ``folder`` (and ``folder`` itself); errors raise."""
    for root, _dirs, files in os.walk(os.fspath(folder), topdown=False):
        for name in files:
            _fsync_file(os.path.join(root, name))
        fsync_dir(root)


# --------------------------------------------------------------------------- files
def temporary_path(final: str | os.PathLike[str], suffix: str = "") -> Path:
    """A fresh temporary name next to ``final``: ``.NAME.<random>.tmp[suffix]``.

    ``suffix`` keeps the extension for writers that choose the format by it (``.nii.gz``).
    """
    final = Path(final)
    return final.parent / f".{final.name}.{uuid.uuid4().hex[:RANDOM_CHARS]}{TEMP_SUFFIX}{suffix}"


def remove_temporary(path: str | os.PathLike[str]) -> None:
    """Delete a temporary file or folder this module (or its caller) created; errors ignored."""
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except OSError:
        pass


def _final_mode(target: Path) -> int:
    """Permissions for a rewritten file: the old file's, else those of a newly created one
    (a temporary file from ``mkstemp``-like creation is private, which would hide runs and
    exports from others)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_UMASK


def commit_file(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """fsync the complete temporary file ``tmp``, rename it over ``final``, fsync the folder.

    On failure the previous ``final`` is untouched, ``tmp`` is removed and the error is raised
    (an ``OSError`` as :class:`UserInputError` naming ``final``).
    """
    tmp, target = Path(tmp), Path(final)
    try:
        if target.is_dir():
            raise UserInputError(f"cannot write '{target}': a folder with this name exists")
        _fsync_file(tmp)
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
    except BaseException as e:
        remove_temporary(tmp)
        if isinstance(e, OSError):
            raise _error(target, e) from e
        raise
    try:
        fsync_dir(target.parent)
    except OSError as e:  # the new file is in place; its folder entry may not be durable yet
        raise _error(target, e) from e
    return target


def _parent_ready(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _error(target, e) from e


def _write_then_commit(target: Path, tmp: Path, write: Callable[[], None]) -> Path:
    """Run ``write`` (which fills ``tmp``), then :func:`commit_file`; clean up on failure."""
    try:
        write()
    except BaseException as e:
        remove_temporary(tmp)
        if isinstance(e, OSError):
            raise _error(target, e) from e
        raise
    return commit_file(tmp, target)


def atomic_write_path(
    path: str | os.PathLike[str], write: Callable[[Path], None], suffix: str = ""
) -> Path:
    """Write ``path`` atomically through ``write(tmp)``, for writers that take a file name.

    ``write`` creates the temporary file (tifffile, nibabel, imageio write by name);
    ``suffix`` is appended to the temporary name so that such writers pick the right format.
    """
    target = Path(path)
    _parent_ready(target)
    tmp = temporary_path(target, suffix)
    return _write_then_commit(target, tmp, lambda: write(tmp))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` atomically through ``write(file)`` (a binary file open for writing).

    ``write`` streams into the file, so large arrays need no in-memory copy. On any failure
    (disk full, permission denied, an exception or interrupt in ``write``) the previous file is
    left untouched and the temporary file removed.
    """
    target = Path(path)
    _parent_ready(target)
    try:  # created exclusively (O_EXCL) under a fresh name
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as e:
        raise _error(target, e) from e
    tmp = Path(name)

    def to_file() -> None:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()

    return _write_then_commit(target, tmp, to_file)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write_with`)."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` of ``obj`` to ``path``, atomically."""
    import torch  # here, not at the top: writing images and tables must not import torch (~2 s)

    return atomic_write_with(path, lambda fh: torch.save(obj, fh))


# --------------------------------------------------------------------------- folders
def check_replaceable_folder(
    final: str | os.PathLike[str], is_expected: Callable[[Path], bool], what: str
) -> None:
    """Refuse to write a folder over a file, or over a folder that is not a ``what``.

    Call it before the (possibly long) writing starts; :func:`swap_folder` checks again.

    Raises
    ------
    UserInputError
        ``final`` is a file, a link, or a folder for which ``is_expected`` is false.
    """
    target = Path(final)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UserInputError(f"cannot write '{target}': a file with this name exists (not a {what}); "
                             "not overwriting it")
    if target.is_dir() and not is_expected(target):
        raise UserInputError(f"cannot write '{target}': this folder is not a {what}; not overwriting it")


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; ``False`` where the system cannot."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # this file system (or kernel) has no exchange: fall back to two renames
    raise OSError(err, os.strerror(err), os.fspath(b))


def swap_folder(
    tmp: str | os.PathLike[str],
    final: str | os.PathLike[str],
    *,
    is_expected: Callable[[Path], bool],
    what: str,
) -> Path:
    """Give the complete folder ``tmp`` the name ``final``, replacing a ``what`` found there.

    The new folder is fsynced before it takes the name; the old one is deleted only after the
    new one is in place and the parent folder is fsynced (see the module notes). On failure
    ``final`` still holds the old folder (or nothing, if there was none) and ``tmp`` is
    removed.

    Raises
    ------
    UserInputError
        ``final`` is not replaceable (:func:`check_replaceable_folder`), or an ``OSError``.
    """
    tmp, target = Path(tmp), Path(final)
    new_in_place = False  # the new folder holds the final name
    aside: Path | None = None  # where the old folder is while the new one takes its name
    try:
        check_replaceable_folder(target, is_expected, what)
        fsync_tree(tmp)
        if not target.exists():
            os.replace(tmp, target)
            new_in_place = True
        elif _rename_exchange(tmp, target):
            new_in_place, aside = True, tmp  # the exchange left the old folder at the temporary name
        else:
            # .NAME.<random>.old.zarr: still opens as what it is, should it have to stay
            aside = target.parent / f".{target.name}.{uuid.uuid4().hex[:RANDOM_CHARS]}{OLD_SUFFIX}{target.suffix}"
            os.replace(target, aside)
            try:
                os.replace(tmp, target)
            except BaseException:
                _restore(aside, target)
                aside = None
                raise
            new_in_place = True
        fsync_dir(target.parent)
    except BaseException as e:
        if not new_in_place:
            remove_temporary(tmp)  # the new folder never took the name
        if isinstance(e, OSError):
            kept = f"; the previous version is kept as '{aside}'" if aside is not None else ""
            raise UserInputError(f"cannot write '{target}': {e.strerror or e}{kept}") from e
        raise
    if aside is not None:
        remove_temporary(aside)  # the old folder: checked to be a `what`, replaced, and the swap is durable
    return target


def _restore(aside: Path, target: Path) -> None:
    """Move the old folder back after a failed second rename; never delete it."""
    try:
        os.replace(aside, target)
    except OSError as e:
        raise UserInputError(
            f"cannot write '{target}': {e.strerror or e}; the previous version is kept as '{aside}'"
        ) from e


def write_folder(
    final: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    is_expected: Callable[[Path], bool],
    what: str,
    suffix: str = "",
) -> Path:
    """Write a folder atomically: ``write(tmp)`` fills a new temporary folder next to
    ``final`` (it may create it), which then replaces ``final`` (:func:`swap_folder`).

    ``final`` is checked first (:func:`check_replaceable_folder`), so nothing is written when
    it cannot be replaced. On any failure the temporary folder is removed and ``final`` is
    untouched.
    """
    target = Path(final)
    check_replaceable_folder(target, is_expected, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _error(target, e) from e
    tmp = temporary_path(target, suffix)
    try:
        write(tmp)
    except BaseException as e:
        remove_temporary(tmp)
        if isinstance(e, OSError):
            raise _error(target, e) from e
        raise
    return swap_folder(tmp, target, is_expected=is_expected, what=what)
