"""Projects in the app: save, open, autosave and recovery, and the untitled autosaves of
sessions never saved as a project.

Every write of the session (save, autosave, the autosave when the window closes) runs in a
worker or a background thread and holds one lock, so they never overlap: an autosave cannot be
removed by a save while it is being written. What a write needs is taken on the GUI thread
first without copying pixels (:class:`SaveJob`: paint snapshots, the prediction's arrays).

A session never saved as a project autosaves into an untitled project folder
(:func:`segstudio.core.project.untitled_folder`), and its training runs live in that folder's
``runs/``: nothing is left in the temporary folder, and saving the session as a project copies
the run in. A later session on the same image keeps the old folder aside (capped, see
:func:`segstudio.core.project.prune_kept_autosaves`) and offers it in a *Recover…* list.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from segstudio._qt.image import ChosenImage
from segstudio._qt.layers import Prediction
from segstudio._qt.notify import Notifier
from segstudio._qt.workers import WorkerSet
from segstudio.core.atomic import atomic_write_with
from segstudio.core.errors import UserInputError
from segstudio.core.io import ImageMeta
from segstudio.core.project import (
    DEFAULT_AUTOSAVE_EVERY_S,
    IMAGES_DIR,
    KeptAutosave,
    Project,
    ProjectImage,
    autosave,
    check_run_fits,
    discard_autosave,
    find_project,
    kept_autosaves,
    latest_run,
    load_project,
    new_run_dir,
    open_paintings,
    read_image_of,
    read_predictions,
    recovery,
    save_project,
    set_aside,
    set_last_run,
    stored_path,
    untitled_folder,
    with_classes,
    without_extra_classes,
)
from segstudio.core.run import MODEL_FILE, LoadedRun, load_run

#: Seconds between autosaves of the paintings.
DEFAULT_AUTOSAVE_S = DEFAULT_AUTOSAVE_EVERY_S


@dataclass(frozen=True)
class SaveJob:
    """Everything a save writes, gathered on the GUI thread without copying pixels.

    ``paintings``: by image name, anything with a ``paintings()`` method (a paint snapshot, the
    stored paintings of an image not on screen), joined in the worker. ``copies``: the pixels
    of images with no file (a sample, a layer made in napari), copied into the project's
    ``images/`` once. ``run_dir``: a run to keep with the project (copied in when it lives
    elsewhere). ``versions``: the paintings versions written, by image.
    """

    folder: Path
    project: Project
    paintings: Mapping[str, Any]
    predictions: Mapping[str, Prediction]
    copies: Mapping[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    versions: Mapping[str, int] = field(default_factory=dict)


def write_project(job: SaveJob, lock: Any) -> Project:
    """Worker body: write a project folder (see :func:`segstudio.core.project.save_project`)."""
    with lock:
        folder, project = job.folder, job.project
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for im in project.images:
            if im.name in job.copies:
                dest = folder / IMAGES_DIR / f"{im.name}.npy"
                if not dest.exists():  # pixels do not change: written once
                    data = job.copies[im.name]
                    atomic_write_with(dest, lambda fh, data=data: np.save(fh, np.asarray(data)))
                im = replace(im, path=stored_path(folder, dest), absolute=str(dest.resolve()), copied=True)
            images.append(im)
        project = replace(project, images=tuple(images))
        run = job.run_dir
        if run is not None and (run / MODEL_FILE).exists():
            if folder.resolve() not in run.resolve().parents:
                run = adopt_run(folder, run)
            project = replace(project, last_run=stored_path(folder, run))
        return save_project(folder, project, {n: s.paintings() for n, s in job.paintings.items()},
                            {n: p.labels() for n, p in job.predictions.items()})


def write_autosave(folder: Path, paintings: Mapping[str, Any], lock: Any) -> Path:
    """Worker body: write the paintings to an open project's ``autosave/`` folder."""
    with lock:
        return autosave(folder, {n: s.paintings() for n, s in paintings.items()})


def adopt_run(folder: Path, run: Path) -> Path:
    """Copy ``run`` into the project's ``runs/``; returns the copy."""
    dest = new_run_dir(folder)
    shutil.copytree(run, dest, dirs_exist_ok=True)
    return dest


@dataclass(frozen=True)
class Opened:
    """A project read for opening (nothing of the session changed yet)."""

    folder: Path
    project: Project
    image: Any
    meta: ImageMeta
    paintings: np.ndarray | None
    recovered: bool
    prediction: np.ndarray | None
    run: LoadedRun | None
    notes: tuple[str, ...]
    recovered_images: tuple[str, ...] = ()


class Projects(QObject):
    """The open project (or none), its saves and autosaves, and the untitled autosave folder.

    Signals
    -------
    saved(str)
        A save finished (the folder).
    kept_changed
        The list of kept-aside autosaves of the image changed.
    """

    saved = Signal(str)
    kept_changed = Signal()

    def __init__(self, image: ChosenImage, workers: WorkerSet, notify: Notifier,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.image = image
        self.workers = workers
        self.notify = notify
        #: The open project folder (``None``: not saved as a project yet).
        self.folder: Path | None = None
        #: The project as last saved or opened.
        self.project: Project | None = None
        #: Asked yes/no questions (recover autosaved paintings? add missing classes?); the
        #: widget shows a dialog, tests answer directly.
        self.ask: Callable[[str], bool] = lambda message: True
        #: Held by every write of the session; re-entrant, so a save can read the paintings of
        #: images not on screen (which take it too) while it writes.
        self.lock = threading.RLock()
        self._writes = 0  # save and autosave jobs started and not finished
        self._writes_done = threading.Condition()
        #: What the paintings were at the last save or autosave (the controller's key).
        self.saved_version: Any = 0
        self._own: set[Path] = set()  # untitled folders this session wrote
        #: ``(name, file)`` of the session's first image: its untitled folder is the session's.
        self.anchor: tuple[str, str | None] | None = None
        self.timer = QTimer(self)
        self.enabled = True
        self.set_interval(DEFAULT_AUTOSAVE_S)

    # ------------------------------------------------------------------ where things go
    def untitled(self) -> Path:
        """The untitled project folder of the session: of its first image (:attr:`anchor`),
        else of the chosen image."""
        name, source = self.anchor if self.anchor is not None else (self.image.key, self.image.source)
        return untitled_folder(name, source)

    def autosave_folder(self) -> Path:
        """Where autosaves go now: the project's folder, else the untitled one."""
        return self.folder if self.folder is not None else self.untitled()

    def new_run_dir(self) -> Path:
        """A new run folder: in the project, else in the untitled project (kept with it)."""
        folder = self.autosave_folder()
        if self.folder is None:
            self._own.add(folder)
        return new_run_dir(folder)

    def keep_aside(self) -> None:
        """A new image was chosen: an untitled autosave of it from an earlier session is kept
        aside (and the kept ones capped), so this session does not overwrite it."""
        if self.folder is not None or self.image.project_name():
            return
        folder = self.untitled()
        if folder not in self._own and set_aside(folder) is not None:
            self.kept_changed.emit()

    def kept(self) -> list[KeptAutosave]:
        """Autosaves of earlier sessions on the chosen image, newest first."""
        if self.image.layer is None:
            return []
        return kept_autosaves(self.untitled())

    # ------------------------------------------------------------------ saves
    def job(self, folder: Path, fields: Mapping[str, Any], images: tuple[ProjectImage, ...],
            paintings: Mapping[str, Any], predictions: Mapping[str, Prediction], run_dir: Path | None,
            copies: Mapping[str, Any] | None = None, versions: Mapping[str, int] | None = None) -> SaveJob:
        """What saving the session into ``folder`` writes (GUI thread; no pixels copied):
        ``images`` as ``project.json`` lists them (see ``Images.project_images``)."""
        same = folder == self.folder
        base = Project(**fields, last_run=self.project.last_run if same and self.project else None)
        return SaveJob(folder, replace(base, images=images), dict(paintings), dict(predictions), dict(copies or {}),
                       run_dir, dict(versions or {}))

    def save(self, job: SaveJob, version: Any) -> None:
        """Save in a worker; ``saved`` follows, or the failure is reported. ``version``: what
        the paintings were at (see :meth:`autosave`)."""
        if self.workers.busy("save"):
            self.notify.fail("a save is already running")
            return
        self.notify.info(f"saving project to {job.folder}…")

        def done(project: Project) -> None:
            self.folder, self.project, self.saved_version = job.folder, project, version
            self.notify.info(f"project saved to {job.folder}")
            self.saved.emit(str(job.folder))
            self.restart_timer()

        self.workers.start("save", self._counted(lambda: write_project(job, self.lock)), returned=done,
                           errored=self.notify.worker_failed)

    def retire_untitled(self, run_dir: Path | None) -> None:
        """After a save for real: remove this session's untitled folder, unless a run that was
        not copied into the project yet still lives there."""
        folder = self.untitled()
        if self.folder is None or folder == self.folder or folder not in self._own:
            return
        if run_dir is not None and folder.resolve() in run_dir.resolve().parents:
            return
        self._own.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)

    def autosave_job(self, job: SaveJob) -> Callable[[], Any]:
        """A function that autosaves what ``job`` (made for the untitled folder, see
        :meth:`untitled`) would save (run it in a worker or a background thread): the open
        project gets its paintings in ``autosave/``, an untitled session the whole project."""
        if self.folder is not None:
            folder, snapshots = self.folder, dict(job.paintings)
            return lambda: write_autosave(folder, snapshots, self.lock)
        self._own.add(job.folder)
        return lambda: write_project(job, self.lock)

    def autosave(self, job: Callable[[], Any], version: Any, *, force: bool = False) -> None:
        """Run an autosave in a worker when the paintings changed since the last (auto)save."""
        if self.workers.busy("autosave") or self.workers.busy("save"):
            return
        if not force and version == self.saved_version:
            return

        def done(_: Any) -> None:
            self.saved_version = version

        self.workers.start("autosave", self._counted(job), returned=done, errored=self.notify.worker_failed)

    def _counted(self, job: Callable[[], Any]) -> Callable[[], Any]:
        """``job``, counted as a write in progress from now until it ended (in its worker)."""
        with self._writes_done:
            self._writes += 1

        def run() -> Any:
            try:
                return job()
            finally:
                with self._writes_done:
                    self._writes -= 1
                    self._writes_done.notify_all()

        return run

    def wait_for_writes(self, timeout_s: float) -> bool:
        """Block (a background thread, never the GUI) until the saves and autosaves that were
        started have ended; ``False`` on timeout."""
        with self._writes_done:
            return self._writes_done.wait_for(lambda: self._writes == 0, timeout_s)

    def set_interval(self, seconds: float) -> None:
        """Autosave every ``seconds`` (0 turns it off)."""
        self.timer.stop()
        self.timer.setInterval(max(int(seconds * 1000), 1))
        self.enabled = seconds > 0
        self.restart_timer()

    def restart_timer(self) -> None:
        if self.enabled and not self.workers.closed:
            self.timer.start()

    def outside(self, run_dir: Path | None) -> bool:
        """Whether a run with weights lives outside the open project (in the untitled folder:
        the project was saved while it trained)."""
        folder = self.folder
        return (folder is not None and run_dir is not None and (run_dir / MODEL_FILE).exists()
                and folder.resolve() not in run_dir.resolve().parents)

    def adopt_job(self, run_dir: Path) -> Callable[[], Path]:
        """A function that copies ``run_dir`` into the open project and records it as the
        project's last run; returns the copy."""
        folder = self.folder
        assert folder is not None

        def work() -> Path:
            with self.lock:
                dest = adopt_run(folder, run_dir)
                set_last_run(folder, dest)
                return dest

        return self._counted(work)

    # ------------------------------------------------------------------ open
    def read(self, folder: str | Path) -> Opened:
        """Read a project for opening (GUI thread; the image is read lazily).

        Autosave recovery is offered first, before anything else can fail; paintings with more
        classes than ``project.json`` declares are offered the missing classes.

        Raises
        ------
        UserInputError
            A project that cannot be opened (the message says why).
        """
        if self._writes:
            raise UserInputError("a save is running; open the project again in a moment")
        folder = find_project(folder)
        project = load_project(folder)
        if not project.images:
            raise UserInputError(f"project '{folder}' has no image")
        name = project.images[0].name
        notes: list[str] = []
        rec = recovery(folder)
        recovered = rec is not None and self.ask(rec.message)
        if rec is not None and not recovered:
            discard_autosave(folder)  # no write runs (see above)
        data, meta = read_image_of(folder, project, name, lazy=True)
        paint, mismatch = open_paintings(folder, project, name, autosaved=recovered)
        if mismatch is not None:
            if self.ask(mismatch.message):
                project = with_classes(project, mismatch.needed)
                notes.append(f"classes added for the paintings ({mismatch.needed - mismatch.declared}); save to keep them")
            else:
                paint = without_extra_classes(project, paint)
                notes.append(f"strokes of classes beyond the {mismatch.declared} of the project were left out")
        try:
            prediction = read_predictions(folder, project, name)
        except UserInputError:
            prediction = None
        run = None
        last = latest_run(folder, project)
        if last is not None:
            try:
                loaded = load_run(last)
                check_run_fits(project, loaded.config, last)
                run = loaded
            except UserInputError as e:
                notes.append(f"{e}; the paintings are open, train again to get a model")
        return Opened(folder, project, data, meta, paint, recovered, prediction, run, tuple(notes),
                      rec.images if recovered and rec is not None else ())

    def opened(self, folder: Path, project: Project, version: Any, recovered: bool) -> None:
        """The session now shows ``project`` (its paintings are at ``version``)."""
        self.folder, self.project = folder, project
        self.saved_version = -1 if recovered else version
        self.restart_timer()
