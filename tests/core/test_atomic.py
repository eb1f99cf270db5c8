"""The atomic-write module: a failure injected at every step of a file write or a folder swap
leaves the previous version in place and readable, and nothing behind but what is named."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
import torch

from segstudio.core import atomic
from segstudio.core import io as sio
from segstudio.core.atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_path,
    atomic_write_text,
    swap_folder,
    write_folder,
)
from segstudio.core.errors import UserInputError
from segstudio.core.io import is_zarr_store, read_image, write_image

OLD = np.full((6, 8), 1, np.uint8)
NEW = np.full((6, 8), 2, np.uint8)


def _fail(err: int = errno.ENOSPC):
    def raise_(*a, **k):
        raise OSError(err, os.strerror(err))

    return raise_


def _failing_on_call(n: int, real, err: int = errno.EACCES, *, within=None, last: bool = False):
    """A stand-in for ``real`` that fails on its ``n``-th call (1-based; with ``last`` on every
    call from the ``n``-th on). With ``within`` only calls on paths directly in that folder
    count (the swap's renames, not those of the zarr library inside the new store)."""
    calls = {"n": 0}

    def call(path, *a, **k):
        if within is None or os.path.dirname(os.fspath(path)) == os.fspath(within):
            calls["n"] += 1
            if calls["n"] == n or (last and calls["n"] > n):
                raise OSError(err, os.strerror(err))
        return real(path, *a, **k)

    return call


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_a_failed_file_write_keeps_the_old_file(tmp_path, monkeypatch, step):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    if step == "write":  # the disk fills up while the new content is written
        def write(fh):
            fh.write(b"par")
            raise OSError(errno.ENOSPC, "No space left on device")

        with pytest.raises(UserInputError, match="No space left on device"):
            atomic.atomic_write_with(target, write)
    else:
        monkeypatch.setattr(os, step, _fail())
        with pytest.raises(UserInputError, match=f"cannot write '{target}': No space left on device"):
            atomic_write_text(target, "new")
        monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_an_interrupt_while_writing_keeps_the_old_file_and_propagates(tmp_path, monkeypatch):
    target = tmp_path / "model.pt"
    atomic_torch_save(target, {"w": torch.zeros(2)})

    def dies(obj, fh, *a, **k):
        fh.write(b"\x80\x02partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save(target, {"w": torch.ones(2)})
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_writer_error_propagates_unchanged_and_leaves_nothing(tmp_path):
    def write(tmp):
        tmp.write_bytes(b"half")
        raise ValueError("cannot store this")

    with pytest.raises(ValueError, match="cannot store this"):
        atomic_write_path(tmp_path / "a.tif", write, ".tif")
    assert list(tmp_path.iterdir()) == []


def test_writes_get_normal_permissions_and_keep_the_users(tmp_path):
    atomic_write_bytes(tmp_path / "new.bin", b"x")
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK
    kept = tmp_path / "kept.txt"
    atomic_write_text(kept, "a")
    os.chmod(kept, 0o640)
    atomic_write_text(kept, "b")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "b"


def test_a_file_is_not_written_over_a_folder(tmp_path):
    (tmp_path / "x.npy").mkdir()
    with pytest.raises(UserInputError, match="a folder with this name exists"):
        atomic_write_bytes(tmp_path / "x.npy", b"data")
    assert (tmp_path / "x.npy").is_dir() and [p.name for p in tmp_path.iterdir()] == ["x.npy"]


# --------------------------------------------------------------------------- folders (zarr stores)
@pytest.fixture
def store(tmp_path):
    """An OME-Zarr store holding OLD."""
    write_image(tmp_path / "s.zarr", OLD)
    return tmp_path / "s.zarr"


def _still_old(store) -> None:
    np.testing.assert_array_equal(read_image(store)[0], OLD)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_swap_exchanges_the_stores_in_one_step(store, monkeypatch):
    used = []
    real = atomic._rename_exchange
    monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: used.append(real(a, b)) or used[-1])
    write_image(store, NEW)
    np.testing.assert_array_equal(read_image(store)[0], NEW)
    assert _names(store.parent) == ["s.zarr"]
    if atomic._RENAMEAT2 is not None:  # Linux
        assert used == [True]


def test_the_fallback_swap_replaces_the_store(store, monkeypatch):
    monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: False)
    write_image(store, NEW)
    np.testing.assert_array_equal(read_image(store)[0], NEW)
    assert _names(store.parent) == ["s.zarr"]


@pytest.mark.parametrize(("step", "message"), [
    ("write", "No space left on device"),  # the disk fills up while the new store is written
    ("fsync", "Input/output error"),  # the new store cannot be made durable
    ("exchange", "Permission denied"),  # the atomic exchange is refused
    ("rename aside", "Permission denied"),  # no exchange: the old store cannot move aside
    ("rename in", "Permission denied"),  # ... or the new one cannot move in (the old one moves back)
])
def test_a_failed_step_of_the_swap_keeps_the_old_store(store, monkeypatch, step, message):
    if step == "write":
        real = sio._write_zarr

        def half(target, data, axes, spacing):
            real(target, data, axes, spacing)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(sio, "_write_zarr", half)
    elif step == "fsync":
        monkeypatch.setattr(os, "fsync", _fail(errno.EIO))
    elif step == "exchange":
        monkeypatch.setattr(atomic, "_rename_exchange", _fail(errno.EACCES))
    else:
        monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: False)
        call = 1 if step == "rename aside" else 2
        monkeypatch.setattr(os, "replace", _failing_on_call(call, os.replace, within=store.parent))
    with pytest.raises(UserInputError, match=message):
        write_image(store, NEW)
    monkeypatch.undo()
    _still_old(store)
    assert _names(store.parent) == ["s.zarr"]


def test_when_even_the_restore_fails_the_old_store_is_kept_and_named(store, monkeypatch):
    monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: False)
    # the new store cannot move in, and the old one cannot move back
    monkeypatch.setattr(os, "replace", _failing_on_call(2, os.replace, errno.EIO, within=store.parent, last=True))
    with pytest.raises(UserInputError, match="the previous version is kept as '(.*)'") as info:
        write_image(store, NEW)
    monkeypatch.undo()
    kept = store.parent / str(info.value).rsplit("'", 2)[-2].rsplit("/", 1)[-1]
    np.testing.assert_array_equal(read_image(kept)[0], OLD)
    assert _names(store.parent) == [kept.name]  # the new (incomplete) one is gone, nothing deleted


def test_when_the_folder_fsync_after_the_swap_fails_the_old_store_is_not_deleted(store, monkeypatch):
    fsync_parent_fails = _failing_on_call(1, atomic.fsync_dir, errno.EIO, within=store.parent.parent)
    monkeypatch.setattr(atomic, "fsync_dir", fsync_parent_fails)
    monkeypatch.setattr(atomic, "fsync_tree", lambda folder: None)
    with pytest.raises(UserInputError, match="the previous version is kept as") as info:
        write_image(store, NEW)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(store)[0], NEW)  # the new one is in place
    kept = store.parent / str(info.value).rsplit("'", 2)[-2].rsplit("/", 1)[-1]
    np.testing.assert_array_equal(read_image(kept)[0], OLD)


def test_a_folder_of_another_kind_or_a_file_is_never_replaced(tmp_path):
    (tmp_path / "mine.zarr").mkdir()
    (tmp_path / "mine.zarr" / "thesis.txt").write_text("precious")
    with pytest.raises(UserInputError, match="this folder is not a Zarr store; not overwriting it"):
        write_image(tmp_path / "mine.zarr", NEW)
    (tmp_path / "file.zarr").write_text("a file")
    with pytest.raises(UserInputError, match="a file with this name exists"):
        write_image(tmp_path / "file.zarr", NEW)
    assert (tmp_path / "mine.zarr" / "thesis.txt").read_text() == "precious"
    assert (tmp_path / "file.zarr").read_text() == "a file"
    assert _names(tmp_path) == ["file.zarr", "mine.zarr"]


def test_swap_checks_the_destination_again(tmp_path):
    """A non-zarr folder that appears under the name while the new store was written."""
    new = tmp_path / "new"
    write_image(tmp_path / "n.zarr", NEW)
    shutil.move(tmp_path / "n.zarr", new)
    (tmp_path / "out.zarr").mkdir()
    (tmp_path / "out.zarr" / "x.txt").write_text("keep")
    with pytest.raises(UserInputError, match="not a Zarr store"):
        swap_folder(new, tmp_path / "out.zarr", is_expected=is_zarr_store, what="Zarr store")
    assert (tmp_path / "out.zarr" / "x.txt").read_text() == "keep" and not new.exists()


def test_write_folder_copies_a_store_atomically(store, tmp_path):
    write_image(tmp_path / "src.zarr", NEW)
    write_folder(store, lambda tmp: shutil.copytree(tmp_path / "src.zarr", tmp), is_expected=is_zarr_store,
                 what="Zarr store")
    np.testing.assert_array_equal(read_image(store)[0], NEW)
    assert _names(tmp_path) == ["s.zarr", "src.zarr"]
