"""Command line: ``segstudio`` (the app) and ``segstudio train|predict|weights|info``.

User mistakes print one line to stderr and exit with code 2 (``--debug`` shows the
traceback); see DESIGN.md for the contract.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from segstudio.core.data import TrainingImage

EXIT_USER_ERROR = 2
EXIT_FAILED = 1
PROGRESS_LINE_EVERY_S = 5.0
SUBCOMMANDS = ("train", "predict", "export", "weights", "info", "demo", "open", "measure", "metrics", "project")
#: Smallest training patch edge ``--patch`` accepts (BatchNorm needs more than one value).
MIN_PATCH = 2


# --------------------------------------------------------------------------- helpers
class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line ``segstudio: error: ...``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print the one-line error and exit with :data:`EXIT_USER_ERROR`."""
        self.exit(EXIT_USER_ERROR, f"segstudio: error: {message} (see '{self.prog} -h')\n")


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _finite_number(text: str, ok: Callable[[float], bool], requirement: str) -> float:
    """``text`` as a finite float that ``ok`` accepts, else argparse's error (``must be a
    number {requirement}``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be a number {requirement}, got {text}")
    return value


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number greater than 0."""
    return _finite_number(text, lambda v: v > 0, "greater than 0")


def non_negative_number(text: str) -> float:
    """An argparse ``type``: a finite number of at least 0."""
    return _finite_number(text, lambda v: v >= 0, "of at least 0")


def _load_image(path: str, channel_axis: int | None, what: str = "image", lazy: bool = False):
    """:func:`segstudio.core.batch.load_image` (imported when a command needs it)."""
    from segstudio.core.batch import load_image

    return load_image(path, channel_axis, what=what, lazy=lazy)


def _print_progress(ev, start: float, tty: bool, state: dict) -> None:
    total = f"/{ev.total}" if ev.total else ""
    eta = f" · ETA {int(ev.eta_s // 60)}:{int(ev.eta_s % 60):02d}" if ev.eta_s is not None else ""
    line = (
        f"it {ev.iteration}{total} · loss {ev.loss:.4f} · "
        f"{ev.samples_per_s:.1f} patches/s{eta}"
    )
    if tty:
        width = 24
        frac = min(ev.iteration / ev.total, 1.0) if ev.total else 0.0
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        sys.stderr.write(f"\r{bar} {line}   ")
        sys.stderr.flush()
    elif time.perf_counter() - state.get("last", 0.0) >= PROGRESS_LINE_EVERY_S:
        state["last"] = time.perf_counter()
        print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- commands
def cmd_weights(args: argparse.Namespace) -> int:
    """``segstudio weights``: class weights from label files."""
    from segstudio.core.io import read_labels
    from segstudio.core.weights import compute_weights, tempered_note

    arrays = [read_labels(p)[0] for p in args.labels]
    cw = compute_weights(arrays, args.mode, args.method)
    for w in cw.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(cw.to_json()))
        return 0
    kind = "pos_weight" if args.mode == "multilabel" else f"weight ({cw.method})"
    print(f"{'class':>5}  {'painted':>10}  {kind}")
    for i, (n, w) in enumerate(zip(cw.counts, cw.weights), start=1):
        print(f"{i:>5}  {n:>10}  {w:.4f}")
    tempered = tempered_note(cw.coverage)
    if tempered:
        print(f"(weights {tempered}: the labels cover {cw.coverage:.0%} of their bounding "
              "box, and dense labels count the classes' own frequencies, which are not evened out)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``segstudio info``: what a file holds and how segstudio reads it."""
    from segstudio.core.io import describe

    info = describe(args.file)
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    return 0


def _auto_choice(args: argparse.Namespace, choice: str, measure: Callable[[], float | None],
                 decide: Callable[[float | None], bool], said: Callable[[float], str]) -> bool:
    """One *auto / on / off* setting of a run: ``decide`` it from ``measure()`` of the first
    image's paintings (measured only on ``auto``), and say ``said(measure)`` on stderr when
    ``auto`` turns it on. A resumed run on ``auto`` gets ``False`` here: its own network and
    config decide (see :func:`cmd_train`)."""
    if choice == "auto" and getattr(args, "resume", None):
        return False
    value = measure() if choice == "auto" else None
    on = decide(value)
    if on and choice == "auto":
        print(said(value), file=sys.stderr)
    return on


def _wide_context(args: argparse.Namespace, first: TrainingImage) -> bool:
    """Whether this run uses *wide context*: ``--wide-context`` (or the project's choice), on
    ``auto`` by the first image's painted background
    (:func:`~segstudio.core.config.use_wide_context`)."""
    import numpy as np

    from segstudio.core.background import background_unevenness
    from segstudio.core.config import use_wide_context, wide_context_choice
    from segstudio.core.data import spatial_shape

    spatial_dims = len(spatial_shape(np.shape(first.image), first.channel_axis))
    choice = wide_context_choice(getattr(args, "wide_context", None))
    return _auto_choice(
        args, choice,
        lambda: background_unevenness(np.asarray(first.image), np.asarray(first.paintings), args.mode,
                                      first.channel_axis) if spatial_dims == 2 else None,
        lambda uneven: use_wide_context(choice, spatial_dims, uneven),
        lambda uneven: f"wide context: on (auto): the painted background varies {uneven:.2f}× as much as the "
                       "classes differ from it (--wide-context off to train without)")


def _textures(args: argparse.Namespace, first: TrainingImage, spacing: Sequence[float] | None) -> bool:
    """Whether this run adds the region statistics (*textures*): ``--textures`` (or the
    project's choice), on ``auto`` by the first image's paintings
    (:func:`~segstudio.core.config.use_textures`)."""
    import numpy as np

    from segstudio.core.config import TEXTURE_GAIN, textures_choice, use_textures
    from segstudio.core.textures import texture_gain

    choice = textures_choice(getattr(args, "textures", None))
    return _auto_choice(
        args, choice,
        lambda: texture_gain(np.asarray(first.image), np.asarray(first.paintings), args.mode, first.channel_axis,
                             spacing),
        lambda gain: use_textures(choice, gain),
        lambda gain: f"textures: on (auto): your classes differ more in texture than in brightness (gain "
                     f"{gain:.2f} > {TEXTURE_GAIN}; --textures off to train without)")


def _level_slices(args: argparse.Namespace, first: TrainingImage) -> bool:
    """Whether this run levels its volumes per slice (*level slices*): ``--level-slices`` (or
    the project's choice), on ``auto`` by the first image's paintings
    (:func:`~segstudio.core.config.use_level_slices`)."""
    import numpy as np

    from segstudio.core.background import slice_unevenness
    from segstudio.core.config import SLICE_UNEVENNESS, level_slices_choice, use_level_slices
    from segstudio.core.data import spatial_shape

    spatial_dims = len(spatial_shape(np.shape(first.image), first.channel_axis))
    choice = level_slices_choice(getattr(args, "level_slices", None))
    return _auto_choice(
        args, choice,
        lambda: slice_unevenness(np.asarray(first.image), np.asarray(first.paintings), args.mode,
                                 first.channel_axis) if spatial_dims == 3 else None,
        lambda uneven: use_level_slices(choice, spatial_dims, uneven),
        lambda uneven: f"level slices: on (auto): the background's level runs along z {uneven:.2f}× as much as "
                       f"the classes differ (> {SLICE_UNEVENNESS}; --level-slices off to train without)")


def cmd_train(args: argparse.Namespace) -> int:
    """``segstudio train``: the trainer, headless."""
    from segstudio.core.annotations import EXCLUSIVE, validate_exclusive, validate_multilabel
    from segstudio.core.config import MODEL_PRESETS, NETWORK_FIELDS
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.errors import UserInputError
    from segstudio.core.io import read_labels
    from segstudio.core.trainer import (
        Checkpoint, Failed, Finished, Notice, Progress, Started, Validation, WeightsUpdated,
        infer_config,
    )
    from segstudio.core.trainer import train as run_training
    from segstudio.core.weights import tempered_note

    args.image, args.labels = args.image or [], args.labels or []
    project_items, project_spacing, project_overrides = _project_training(args) if args.project else ([], None, {})
    if len(args.image) != len(args.labels):
        raise UserInputError(
            f"give one --labels per --image (got {len(args.image)} images, {len(args.labels)} label files)"
        )
    if not args.project and (not args.image or not args.out):
        raise UserInputError("give --image, --labels and --out, or --project PROJECT")
    items = list(project_items)
    spacing = project_spacing
    for img_path, lab_path in zip(args.image, args.labels):
        image, meta, ch = _load_image(img_path, args.channel_axis)
        labels, _ = read_labels(lab_path)
        spatial = tuple(s for i, s in enumerate(image.shape) if i != ch)
        validate = validate_exclusive if args.mode == EXCLUSIVE else validate_multilabel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            validate(labels, spatial_shape=spatial, image=image, channel_axis=ch, what=f"'{lab_path}'")
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        items.append(TrainingImage(image, labels, ch))
        spacing = spacing or meta.spacing
    first = items[0]
    n_classes = None
    if args.mode == EXCLUSIVE:
        n_classes = max(int(it.paintings.max()) for it in items)
    if project_overrides:
        n_classes = len(project_overrides["class_names"])
    overrides = dict(
        iterations=None if args.minutes is not None and args.iterations is None else (args.iterations or 500),
        minutes=args.minutes, device=args.device, loss=args.loss, weight_method=args.weights,
        seed=args.seed, features=MODEL_PRESETS[args.model_size or "fast"], amp=not args.no_amp,
        spacing=tuple(spacing) if spacing else None, grad_accum=args.grad_accum,
        infer_outlines=not args.no_outlines, infer_background=not args.no_background_rule,
        wide_context=_wide_context(args, first), textures=_textures(args, first, spacing),
        level_slices=_level_slices(args, first), output_smoothing=args.smoothing,
    )
    if args.patch:
        overrides["patch_size"] = tuple(args.patch)
    if args.batch:
        overrides["batch_size"] = args.batch
    if args.lr:
        overrides["lr"] = args.lr
    if args.class_names:
        if n_classes is not None and n_classes > len(args.class_names):
            raise UserInputError(
                f"'{args.labels[0] if args.labels else args.project}': label value {n_classes} is beyond the "
                f"{len(args.class_names)} classes named by --class-names (expected 0 = unpainted, "
                f"1..{len(args.class_names)})")
        overrides["class_names"] = tuple(args.class_names)
    if args.checkpoint_every is not None:
        overrides["checkpoint_every_s"] = args.checkpoint_every
    overrides.update(project_overrides)
    if args.downsample is not None:
        overrides["downsample"] = args.downsample
    if args.resume and not args.model_size and args.wide_context in (None, "auto") \
            and args.textures in (None, "auto") and args.downsample is None:
        # Continue with the resumed run's network, even one trained with other defaults.
        from segstudio.core.run import read_run_config

        old = read_run_config(args.resume)
        overrides.update({k: getattr(old, k) for k in NETWORK_FIELDS})
    if args.resume and getattr(args, "level_slices", None) in (None, "auto"):
        from segstudio.core.run import read_run_config

        overrides["level_slices"] = read_run_config(args.resume).level_slices  # the run's own input
    cfg = infer_config(first.image.shape, first.paintings, args.mode, channel_axis=first.channel_axis,
                       n_classes=n_classes, **overrides)
    validation = None
    if args.val_labels:
        truth, _ = read_labels(args.val_labels)
        validation = (0, truth)
    source = SnapshotSource()
    source.put(items)
    tty = sys.stderr.isatty()
    state: dict = {}
    start = time.perf_counter()
    from segstudio.core.distributed import env_from_torchrun
    from segstudio.core.distributed import train as train_maybe_distributed

    dist_env = env_from_torchrun()  # started by torchrun: DistributedDataParallel, rank 0 prints
    if dist_env is None:
        gen = run_training(cfg, source, args.out, resume=args.resume, validation=validation)
    else:
        gen = train_maybe_distributed(dist_env, cfg, source, args.out, resume=args.resume, validation=validation)
    quiet = dist_env is not None and not dist_env.is_main
    status = 0
    try:
        for ev in gen:
            if quiet and not isinstance(ev, Failed):
                continue
            if isinstance(ev, Started) and dist_env is not None:
                print(f"torchrun: {dist_env.world_size} processes, DistributedDataParallel", file=sys.stderr)
            if isinstance(ev, Started):
                amp = f", AMP {ev.amp}" if ev.amp else ""
                print(f"training on {ev.device}{amp}: {ev.parameters:,} parameters → {args.out}", file=sys.stderr)
                if cfg.downsample > 1:
                    blocks = " × ".join(map(str, cfg.reduction))
                    print(f"downsample {cfg.downsample}: the network sees the image in blocks of {blocks} px",
                          file=sys.stderr)
            elif isinstance(ev, WeightsUpdated):
                ws = ", ".join(f"{w:.3g}" for w in ev.weights.weights)
                tempered = tempered_note(ev.weights.coverage)
                how = f"{ev.weights.method}, {tempered}" if tempered else ev.weights.method
                print(f"class weights ({how}): {ws}", file=sys.stderr)
            elif isinstance(ev, Progress):
                state["progress"] = ev
                _print_progress(ev, start, tty, state)
            elif isinstance(ev, Notice):
                print(f"\n{ev.message}", file=sys.stderr)
            elif isinstance(ev, Validation):
                ds = ", ".join(f"{d:.3f}" for d in ev.dice)
                on = " (validation strokes)" if ev.kind != "truth" else ""
                print(f"\nvalidation it {ev.iteration}{on}: dice {ds}", file=sys.stderr)
            elif isinstance(ev, Checkpoint):
                if args.project and not state.get("recorded"):
                    from segstudio.core.project import set_last_run

                    set_last_run(args.project, ev.path)  # reopening the project finds this run
                    state["recorded"] = True
                if args.verbose:
                    print(f"\ncheckpoint at it {ev.iteration}", file=sys.stderr)
            elif isinstance(ev, Failed):
                print(f"\nsegstudio: training failed: {ev.message}", file=sys.stderr)
                if args.debug:
                    print(ev.traceback, file=sys.stderr)
                status = EXIT_USER_ERROR if ev.user_error else EXIT_FAILED
            elif isinstance(ev, Finished):
                if tty:
                    sys.stderr.write("\n")
                print(f"finished: {ev.iteration} iterations in {ev.seconds:.1f} s ({ev.reason}) → {ev.run_dir}",
                      file=sys.stderr)
                last = state.get("progress")
                if last is not None:
                    from segstudio.core.stroke_fit import unlearnt_message

                    note = unlearnt_message(cfg.class_names, last.learnt, last.learnt_steps)
                    if note:
                        print(f"warning: {note}", file=sys.stderr)
    except KeyboardInterrupt:
        gen.close()  # saves a final checkpoint
        print(f"\ninterrupted: the last checkpoint is in {args.out}", file=sys.stderr)
        return 130
    return status


def _project_training(args: argparse.Namespace) -> tuple[list, tuple[float, ...] | None, dict]:
    """Images and paintings of ``--project`` for ``segstudio train``.

    Sets ``args.mode`` from the project, ``args.out`` to a new ``runs/<timestamp>`` folder
    when not given, and ``args.resume`` to the project's last run for ``--resume last``.
    Images are read lazily (memory-mapped where the format allows), so a large volume is not
    held twice in memory. Returns the training items, the first image's spacing and the
    config overrides (classes, colours, pinned weights, weight method).
    """
    from dataclasses import replace

    import numpy as np

    from segstudio.core.batch import channel_axis_for
    from segstudio.core.data import TrainingImage
    from segstudio.core.errors import UserInputError
    from segstudio.core.config import AUTO_CHOICES, is_downsample
    from segstudio.core.project import (
        find_project, holdout_of, latest_run, load_project, new_run_dir, read_image_of, read_paintings, recovery,
    )

    if args.image or args.labels:
        raise UserInputError("give either --project or --image/--labels, not both")
    folder = find_project(args.project)
    args.project = str(folder)
    project = load_project(folder)
    if not project.classes:
        raise UserInputError(f"project '{folder}' has no classes")
    args.mode = project.mode
    if project.mode == "multilabel" and args.loss == "ce":
        args.loss = "bce"
    if recovery(folder) is not None:
        print(f"warning: '{folder}' has autosaved paintings newer than the last save; training uses the "
              "saved ones (open the project in the app to recover them)", file=sys.stderr)
    items, spacing = [], None
    for im in project.images:
        paint = read_paintings(folder, project, im.name)
        if paint is None or not np.any(paint):
            continue
        image, meta = read_image_of(folder, project, im.name, lazy=True)
        if not isinstance(image, np.ndarray):
            image = np.asarray(image)
        ch = channel_axis_for(meta.axes, im.channel_axis if args.channel_axis is None else args.channel_axis,
                           image.ndim)
        spatial = tuple(s for i, s in enumerate(image.shape) if i != ch)
        want = spatial if project.mode == "exclusive" else (len(project.classes), *spatial)
        if tuple(paint.shape) != want:
            raise UserInputError(
                f"paintings of {im.name!r} have shape {tuple(paint.shape)}, its image needs {want}")
        if items and np.ndim(items[0].paintings) != paint.ndim:
            raise UserInputError(f"image {im.name!r} is {len(spatial)}D; the project's first painted image is not")
        items.append(TrainingImage(image, paint, ch, holdout=holdout_of(replace(im, shape=spatial))))
        spacing = spacing or meta.spacing
    if not items:
        raise UserInputError(f"nothing is painted in project '{folder}'; paint at least two classes")
    if args.resume == "last":
        last = latest_run(folder, project)
        if last is None:
            raise UserInputError(f"--resume last: project '{folder}' has no run with weights yet")
        args.resume = str(last)
    if not args.out:
        args.out = str(new_run_dir(folder))
    pins = tuple((i, float(c.pinned)) for i, c in enumerate(project.classes) if c.pinned is not None)
    overrides = {
        "class_names": tuple(c.name for c in project.classes),
        "class_colors": tuple(c.color for c in project.classes),
        "pinned_weights": pins,
        "weight_method": project.weight_method,
    }
    for key in ("infer_outlines", "infer_background"):  # turned off in the app
        if project.training.get(key) is False:
            overrides[key] = False
    chosen = project.training.get("downsample")
    if is_downsample(chosen):
        overrides["downsample"] = chosen  # chosen in the app (--downsample or a resumed run's network wins)
    for key, read in AUTO_CHOICES.items():  # chosen in the app, unless given here
        if getattr(args, key, None) is None and key in project.training:
            try:
                setattr(args, key, read(project.training[key]))
            except UserInputError:
                pass  # a hand-edited value: auto
    return items, spacing, overrides


def cmd_predict(args: argparse.Namespace) -> int:
    """``segstudio predict``: labels (and probabilities) for one or more images.

    One loop with the app's *Predict folder…* (:func:`segstudio.core.batch.iter_predict_files`):
    large lazy images (OME-Zarr, big TIFF, ``.npy``; see ``--out-of-core``) are read one tile
    at a time and their prediction is written band by band into a ``.zarr``, ``.tif`` or
    ``.npy`` output, so memory stays bounded by a tile and a band, not by the volume.
    """
    from segstudio.core.batch import BatchNotice, FileDone, FileStarted, iter_predict_files
    from segstudio.core.errors import UserInputError
    from segstudio.core.predictor import PredictProgress

    if args.project:
        return _predict_project(args)
    if not args.model or not args.image or not args.out:
        raise UserInputError("give --model, --image and --out, or --project PROJECT")
    predictor = load_predictor(args.model, args.device)
    objects = _ObjectsOutput.from_args(args, predictor.config, len(args.image) > 1)
    current, streamed, last = "", False, time.perf_counter()
    for ev in iter_predict_files(predictor, args.image, args.out, channel_axis=args.channel_axis,
                                 probabilities=args.probabilities, tta=args.tta, out_of_core=args.out_of_core,
                                 keep_probabilities=objects is not None and objects.wants_probabilities):
        if isinstance(ev, FileStarted):
            current, streamed = ev.image, ev.out_of_core
        elif isinstance(ev, PredictProgress) and streamed and time.perf_counter() - last >= PROGRESS_LINE_EVERY_S:
            last = time.perf_counter()
            print(f"{current}: {ev.done}/{ev.total} tiles", file=sys.stderr, flush=True)
        elif isinstance(ev, BatchNotice):
            print(f"warning: {ev.message}", file=sys.stderr)
        elif isinstance(ev, FileDone):
            msg = f"{ev.image} → {ev.labels} ({ev.seconds:.1f} s{', out of core' if ev.out_of_core else ''})"
            if ev.probabilities is not None:
                msg += f", probabilities → {ev.probabilities}"
            print(msg, file=sys.stderr)
            if objects is not None and ev.written is not None:
                objects.add_from_files(ev.image, ev.pixels, ev.meta, ev.channel_axis, ev.written)
            elif objects is not None and ev.result is not None:
                objects.add(ev.image, ev.pixels, ev.meta, ev.channel_axis, ev.result.labels, ev.result.probabilities)
    if objects is not None:
        objects.finish()
    return 0


def _predict_project(args: argparse.Namespace) -> int:
    """``segstudio predict --project``: every image of a project, with its last run (or
    ``--model``), into ``--out`` (default: the project's ``predictions/``); ``project.json``
    records each image's labels file, the run and the prediction's uncertainty."""
    from segstudio.core.batch import BatchNotice, ImagePredicted, iter_predict_project
    from segstudio.core.errors import UserInputError
    from segstudio.core.project import find_project, latest_run, load_project, stored_path, update_images

    if args.image:
        raise UserInputError("give either --project or --image, not both")
    if args.instances or args.objects_csv:
        raise UserInputError("--instances/--objects-csv: predict the project first, then run predict --image "
                             "on its images")
    folder = find_project(args.project)
    project = load_project(folder)
    if not project.images:
        raise UserInputError(f"project '{folder}' has no images")
    model = args.model or latest_run(folder, project)
    if model is None:
        raise UserInputError(f"project '{folder}' has no run with weights yet: train first "
                             "(segstudio train --project), or give --model")
    predictor = load_predictor(str(model), args.device)
    if predictor.config.mode != project.mode:
        raise UserInputError(f"'{model}' is a {predictor.config.mode} model; the project is {project.mode}")
    by = stored_path(folder, model) if Path(model).is_dir() else str(Path(model).resolve())
    changes: dict[str, dict] = {}
    try:
        for ev in iter_predict_project(predictor, folder, project, args.out, tta=args.tta,
                                       out_of_core=args.out_of_core):
            if isinstance(ev, BatchNotice):
                print(f"warning: {ev.message}", file=sys.stderr)
            elif isinstance(ev, ImagePredicted):
                unsure = "" if ev.uncertainty is None else f", uncertainty {ev.uncertainty:.3f}"
                print(f"[{ev.index}/{ev.total}] {ev.name} → {ev.labels} ({ev.done.seconds:.1f} s{unsure})",
                      file=sys.stderr)
                changes[ev.name] = {"labels": stored_path(folder, ev.labels), "predicted_by": by,
                                    "uncertainty": ev.uncertainty, "reviewed": False}
    finally:
        if changes:  # what was predicted is recorded, also when a later image failed
            update_images(folder, changes)
    return 0


def load_predictor(model: str, device: str = "auto"):
    """A :class:`~segstudio.core.predictor.Predictor` from a run directory or an exported
    ``.pt``/``.pt2``/``.onnx``/``.zip`` (see :func:`segstudio.core.export.load_predictor`)."""
    from segstudio.core.export import load_predictor as load_any

    return load_any(model, device=device)


def cmd_export(args: argparse.Namespace) -> int:
    """``segstudio export``: TorchScript, torch.export, ONNX or bioimage.io files of a run."""
    from segstudio.core.export import ExportFinished, ExportProgress, iter_export
    from segstudio.core.run import load_run

    loaded = load_run(args.model)
    image, ch = None, None
    if args.image:
        image, _, ch = _load_image(args.image, args.channel_axis)
    elif args.format in ("bioimageio", "all"):
        print("note: no --image given: the bioimage.io test input is a random image in the training "
              "value range", file=sys.stderr)
    for ev in iter_export(loaded.model, loaded.config, args.out, args.format, image=image, channel_axis=ch,
                          name=args.name, description=args.description, authors=args.author or (),
                          license=args.license):
        if isinstance(ev, ExportProgress) and ev.done < ev.total:
            print(f"[{ev.done + 1}/{ev.total}] {ev.message}…", file=sys.stderr, flush=True)
        elif isinstance(ev, ExportFinished):
            for fmt, path in ev.paths.items():
                print(f"{fmt:>12} → {path}", file=sys.stderr)
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    """``segstudio [IMAGE ...]``: the desktop app."""
    from segstudio._qt.app import main as app_main

    return app_main(list(args.images), sample=args.sample, demo=bool(getattr(args, "demo", False)))


def cmd_open(args: argparse.Namespace) -> int:
    """``segstudio open PROJECT``: the app on a saved project."""
    from segstudio._qt.app import main as app_main
    from segstudio.core.project import find_project, load_project

    folder = find_project(args.project)
    load_project(folder)  # a broken project is one clear line before any window opens
    return app_main([], project=str(folder))


# --------------------------------------------------------------------------- objects (instances)
def _spacing_for(meta, ndim: int) -> tuple[float, ...] | None:
    """The file's spacing when it has one value per spatial axis, else None (pixels)."""
    sp = getattr(meta, "spacing", None)
    return tuple(float(v) for v in sp) if sp is not None and len(sp) == ndim else None


def _class_value(given: str, names: Sequence[str], option: str) -> int:
    """A class by name (case-insensitive) or number (1..K)."""
    from segstudio.core.errors import UserInputError

    lower = [n.lower() for n in names]
    if given.lower() in lower:
        return lower.index(given.lower()) + 1
    if given.isdigit() and 1 <= int(given) <= len(names):
        return int(given)
    listed = ", ".join(f"{i} {n}" for i, n in enumerate(names, start=1))
    raise UserInputError(f"{option} {given!r} is not one of the model's classes ({listed})")


def _objects_options(args: argparse.Namespace, names: Sequence[str]):
    """:class:`~segstudio.core.instances.InstanceOptions` from the ``predict`` options."""
    import math

    from segstudio.core.errors import UserInputError
    from segstudio.core.instances import options_for_classes

    if not (math.isfinite(args.min_size) and args.min_size >= 0):
        raise UserInputError(f"--min-size must be a number >= 0 (an area or volume in the image's physical "
                             f"units), got {args.min_size:g}")
    overrides: dict = {"min_size": args.min_size, "split": not args.no_split, "drop_border": args.drop_border,
                       "declump": "intensity" if args.split_at_dim_lines else "shape"}
    if args.object_classes:
        overrides["object_classes"] = tuple(_class_value(c, names, "--object-classes") for c in args.object_classes)
    if args.boundary_class is not None:
        none = args.boundary_class.lower() == "none"
        overrides["boundary_class"] = None if none else _class_value(args.boundary_class, names, "--boundary-class")
    return options_for_classes(names, **overrides)


class _ObjectsOutput:
    """``predict --instances/--objects-csv``: objects of each predicted image, and one table."""

    def __init__(self, args: argparse.Namespace, config, several: bool) -> None:
        self.args = args
        self.names = config.names
        self.options = _objects_options(args, self.names)
        self.several = several
        self.rows: list[tuple[str, dict]] = []

    @classmethod
    def from_args(cls, args: argparse.Namespace, config, several: bool) -> _ObjectsOutput | None:
        """None when no objects are asked for; one-line errors for options that cannot work."""
        from segstudio.core.annotations import MULTILABEL
        from segstudio.core.errors import UserInputError
        from segstudio.core.instances import check_objects_file

        if not args.instances and not args.objects_csv:
            given = [o for o, v in (("--min-size", args.min_size), ("--object-classes", args.object_classes),
                                    ("--boundary-class", args.boundary_class), ("--no-split", args.no_split),
                                    ("--drop-border", args.drop_border),
                                    ("--split-at-dim-lines", args.split_at_dim_lines)) if v]
            if given:
                raise UserInputError(f"{given[0]} needs --instances FILE or --objects-csv CSV")
            return None
        if config.mode == MULTILABEL:
            raise UserInputError("--instances/--objects-csv need an exclusive model (one class per pixel); "
                                 f"'{args.model}' is multilabel")
        if args.instances and several and Path(args.instances).is_file():
            raise UserInputError(f"--instances '{args.instances}' is a file; give a folder for several images")
        if args.instances and not (several or Path(args.instances).is_dir() or args.instances.endswith(os.sep)):
            try:
                check_objects_file(args.instances)
            except UserInputError as e:
                raise UserInputError(f"--instances {e}") from None
        if args.objects_csv and Path(args.objects_csv).is_dir():
            raise UserInputError(f"--objects-csv '{args.objects_csv}' is a folder; give a .csv file")
        if args.split_at_dim_lines and args.no_split:
            raise UserInputError("--split-at-dim-lines and --no-split contradict each other: choose one")
        return cls(args, config, several)

    @property
    def wants_probabilities(self) -> bool:
        """Interior seeds flood by the boundary probability (at dim lines: by the image)."""
        return (self.options.boundary_class is not None and self.options.seeds == "interior"
                and not self.options.reads_image)

    def _path(self, image_path: str) -> Path | None:
        from segstudio.core.batch import output_path

        if not self.args.instances:
            return None
        target = self.args.instances
        if self.several or Path(target).is_dir() or target.endswith(os.sep):
            Path(target).mkdir(parents=True, exist_ok=True)
            return output_path(target, image_path, True, kind="instances")
        return Path(target)

    def add(self, path: str, image, meta, ch, labels, probabilities) -> None:
        """Objects of an in-memory prediction: write them, keep their table."""
        from segstudio.core.instances import instances_from_labels, object_table
        from segstudio.core.io import write_image

        spacing = _spacing_for(meta, labels.ndim)
        b = self.options.boundary_class
        prob = probabilities[b - 1] if probabilities is not None and b is not None else None
        objects = instances_from_labels(labels, self.options, spacing, boundary_probability=prob, image=image,
                                        channel_axis=ch)
        target = self._path(path)
        if target is not None:
            write_image(target, objects.labels, like=meta)
        if self.args.objects_csv:
            self.rows.append((path, object_table(objects.labels, image, channel_axis=ch, spacing=spacing,
                                                 classes=objects.classes, class_names=self.names)))
        print(f"{path}: {objects.n} objects" + (f" → {target}" if target is not None else ""), file=sys.stderr)

    def add_from_files(self, path: str, image, meta, ch, written) -> None:
        """Objects of an out-of-core prediction, band by band when the format allows it."""
        import numpy as np

        from segstudio.core.batch import split_ext
        from segstudio.core.instances import instances_in_bands, object_table_in_bands
        from segstudio.core.io import read_image, read_labels
        from segstudio.core.outofcore import OUTPUT_FORMATS, open_output, output_axes

        labels, _ = read_labels(written.labels, lazy=True)
        probs = read_image(written.probabilities, lazy=True)[0] if written.probabilities else None
        target = self._path(path)
        spacing = _spacing_for(meta, labels.ndim)
        in_memory = target is None or split_ext(target)[1].lower() not in (*OUTPUT_FORMATS, ".ome.tif", ".ome.tiff")
        if in_memory or self.options.reads_image:
            if target is not None and self.options.reads_image:
                print(f"warning: objects split at dim lines are made in memory, not band by band ('{target}')",
                      file=sys.stderr)
            elif target is not None:
                print(f"warning: '{target}' cannot be written band by band; the objects are made in memory "
                      "(write .zarr or .tif to avoid that)", file=sys.stderr)
            probs_arr = None if probs is None else np.asarray(probs)
            self.add(path, image, meta, ch, np.asarray(labels), probs_arr)
            return
        with open_output(target, labels.shape, np.uint32, axes=output_axes(meta.axes, labels.ndim, False),
                         spacing=spacing) as out:
            classes = instances_in_bands(labels, out, self.options, spacing, probabilities=probs,
                                         scratch_dir=target.parent)
            out.commit()
        if self.args.objects_csv:
            objects, _ = read_labels(target, lazy=True)
            self.rows.append((path, object_table_in_bands(objects, image, channel_axis=ch, spacing=spacing,
                                                          classes=classes, class_names=self.names)))
        print(f"{path}: {len(classes)} objects → {target} (band by band)", file=sys.stderr)

    def finish(self) -> None:
        """Write the one table of every image (an ``image`` column first)."""
        if not self.args.objects_csv:
            return
        _write_tables(self.args.objects_csv, self.rows)


def _write_tables(path: str, rows: Sequence[tuple[str, dict]]) -> None:
    """One CSV of the object tables of several images, the image's file name first."""
    from segstudio.core.instances import merge_tables, write_table_csv

    if not rows:
        return
    merged = merge_tables([(Path(p).name, t) for p, t in rows])
    written = write_table_csv(path, merged)
    print(f"object table ({len(merged['image'])} objects) → {written}", file=sys.stderr)


def cmd_measure(args: argparse.Namespace) -> int:
    """``segstudio measure``: the object table of existing instance labels."""
    import numpy as np

    from segstudio.core.batch import OUT_OF_CORE_BYTES
    from segstudio.core.errors import UserInputError
    from segstudio.core.instances import object_table, object_table_in_bands
    from segstudio.core.io import read_labels
    from segstudio.core.lazy import is_in_memory

    labels, lmeta = read_labels(args.labels, lazy=True)
    image, meta, ch = _load_image(args.image, args.channel_axis, lazy=True)
    spatial = tuple(n for i, n in enumerate(image.shape) if i != ch)
    if tuple(labels.shape) != spatial:
        raise UserInputError(f"'{args.labels}' has shape {tuple(labels.shape)}, but the image '{args.image}' "
                             f"has spatial shape {spatial}: expected the same")
    spacing = _spacing_for(meta, len(spatial)) or _spacing_for(lmeta, len(spatial))
    big = int(np.prod(spatial, dtype=np.int64)) * np.dtype(labels.dtype).itemsize >= OUT_OF_CORE_BYTES
    if big and not is_in_memory(labels):
        table = object_table_in_bands(labels, image, channel_axis=ch, spacing=spacing)
    else:
        table = object_table(np.asarray(labels), np.asarray(image), channel_axis=ch, spacing=spacing)
    _write_tables(args.out, [(args.image, table)])
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """``segstudio metrics``: Dice and HD95 per class, or object scores (``--instances``)."""
    import math

    import numpy as np

    from segstudio.core.errors import UserInputError
    from segstudio.core.io import read_labels
    from segstudio.core.metrics import evaluate, instance_scores

    pred, pmeta = read_labels(args.pred)
    truth, tmeta = read_labels(args.truth)
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise UserInputError(f"'{args.pred}' has shape {pred.shape} and '{args.truth}' {truth.shape}: "
                             "expected the same shape")
    for name, arr in ((args.pred, pred), (args.truth, truth)):
        if arr.size and arr.min() < 0:
            raise UserInputError(f"'{name}' has negative labels; expected 0 and positive ids")
    if args.instances:
        s = instance_scores(pred, truth)
        if args.json:
            print(json.dumps(s.to_json()))
            return 0
        print(f"objects: {s.n_pred} predicted, {s.n_true} true")
        print(f"F1 at IoU 0.5: {s.f1:.4f} (precision {s.precision:.4f}, recall {s.recall:.4f}; "
              f"TP {s.tp}, FP {s.fp}, FN {s.fn})")
        print(f"average precision, IoU 0.5:0.95: {s.average_precision:.4f}")
        print(f"mean matched IoU: {s.mean_matched_iou:.4f}" if not math.isnan(s.mean_matched_iou)
              else "mean matched IoU: n/a (no match)")
        print(f"merges: {s.merges}, splits: {s.splits}")
        return 0
    spacing = _spacing_for(tmeta, truth.ndim) or _spacing_for(pmeta, truth.ndim)
    classes = sorted((set(np.unique(pred).tolist()) | set(np.unique(truth).tolist())) - {0})
    results = evaluate(pred, truth, classes, spacing)
    if args.json:
        print(json.dumps([{"class": m.class_value, "dice": m.dice,
                           "hd95": None if math.isnan(m.hd95) else m.hd95} for m in results]))
        return 0
    unit = "" if spacing else " (pixels)"
    print(f"{'class':>5}  {'dice':>6}  hd95{unit}")
    for m in results:
        hd = "n/a" if math.isnan(m.hd95) else f"{m.hd95:.3f}"
        print(f"{m.class_value:>5}  {m.dice:.4f}  {hd}")
    return 0


def _add_instance_options(pr: argparse.ArgumentParser) -> None:
    """``predict``'s options for objects (instances)."""
    g = pr.add_argument_group("objects", "label touching objects 1..N from an exclusive model's prediction")
    g.add_argument("--instances", metavar="INSTANCES_FILE",
                   help="write the objects: 0 background, 1..N (uint32 or smaller), with the image's spacing and "
                        "affine (a folder for several images)")
    g.add_argument("--objects-csv", metavar="CSV",
                   help="write one table of the objects of every image: image, id, class, area/volume, centroid, "
                        "mean intensity per channel, bounding box")
    g.add_argument("--min-size", type=float, default=0.0, metavar="S",
                   help="drop objects smaller than S (area in 2D, volume in 3D, in the image's physical units)")
    g.add_argument("--object-classes", nargs="+", metavar="CLASS",
                   help="classes (names or numbers) that are objects (default: all but background and boundary)")
    g.add_argument("--boundary-class", metavar="CLASS",
                   help="the class between touching objects (default: the class named boundary, border, ...; "
                        "'none': split by the distance transform)")
    g.add_argument("--no-split", action="store_true", help="keep touching objects as one (connected regions)")
    g.add_argument("--split-at-dim-lines", action="store_true",
                   help="split touching objects along the image's dim lines (seeds at its maxima) instead of by "
                        "shape or the boundary class (which then belongs to the objects): for cells whose contacts "
                        "are dimmer than their inside, such as rods side by side; not for textured nuclei")
    g.add_argument("--drop-border", action="store_true", help="drop objects that touch the image border")


def _add_objects_commands(sub) -> None:
    """The ``measure`` and ``metrics`` sub-commands."""
    m = sub.add_parser("measure", help="table of existing instance labels: size, centroid, intensity, box")
    m.add_argument("--labels", required=True, metavar="INSTANCES_FILE", help="objects: 0 background, 1..N")
    m.add_argument("--image", required=True, metavar="IMG", help="the image, for the mean intensity per channel")
    m.add_argument("--out", required=True, metavar="CSV", help="the table to write")
    m.add_argument("--channel-axis", type=int)
    _add_common(m)
    m.set_defaults(func=cmd_measure)

    mt = sub.add_parser("metrics", help="compare a prediction with a ground truth")
    mt.add_argument("--pred", required=True, metavar="P",
                    help="predicted labels (classes, or objects with --instances)")
    mt.add_argument("--truth", required=True, metavar="T", help="ground truth of the same shape")
    mt.add_argument("--instances", action="store_true",
                    help="both are objects (0 background, 1..N): F1 at IoU 0.5, average precision at IoU "
                         "0.5:0.95, mean matched IoU, merges, splits (else Dice and HD95 per class)")
    mt.add_argument("--json", action="store_true", help="print one JSON value")
    _add_common(mt)
    mt.set_defaults(func=cmd_metrics)


# --------------------------------------------------------------------------- projects
def _paintings_for(path: str, image_path: str, project, instances: str | None):
    """Paintings of a project image from a label file (see ``--labels``)."""
    from segstudio.core.label_import import paintings_from_file
    from segstudio.core.project import image_info

    shape, _, _ = image_info(image_path)
    return paintings_from_file(path, shape, project.mode, len(project.classes), instances=instances)


def _refuse_newer_autosave(folder: Path) -> None:
    from segstudio.core.errors import UserInputError
    from segstudio.core.project import recovery

    if recovery(folder) is not None:
        raise UserInputError(f"'{folder}' has autosaved paintings newer than its last save: open it in the app "
                             "and save (or discard them) first")


def cmd_project_create(args: argparse.Namespace) -> int:
    """``segstudio project create``: a project from image files (and their labels)."""
    import numpy as np

    from segstudio.core.errors import UserInputError
    from segstudio.core.io import read_labels
    from segstudio.core.label_import import label_values
    from segstudio.core.project import (
        DEFAULT_CLASS_NAMES, PROJECT_FILE, Project, add_image, default_classes, save_project,
    )

    folder = Path(args.project).expanduser()
    if (folder / PROJECT_FILE).exists():
        raise UserInputError(f"'{folder}' is a project already: add images with 'segstudio project add'")
    labels = list(args.labels or [])
    if len(labels) > len(args.images):
        raise UserInputError(f"{len(labels)} label files for {len(args.images)} images: labels are matched to "
                             "the images in order")
    names = list(args.classes or [])
    if not names:
        top = 0
        if labels and args.mode == "exclusive" and not args.instances:
            top = max(int(label_values(read_labels(p)[0], f"'{p}'").max(initial=0)) for p in labels)
        wanted = 3 if args.instances == "boundary" else len(DEFAULT_CLASS_NAMES)
        names = list(DEFAULT_CLASS_NAMES) + [f"class {k}" for k in range(len(DEFAULT_CLASS_NAMES) + 1,
                                                                            max(top, wanted) + 1)]
        if args.instances == "boundary":
            names[2] = "boundary"
    project = Project(mode=args.mode, classes=default_classes(names))
    for path in args.images:
        project = add_image(folder, project, path, channel_axis=args.channel_axis)
    paintings = {}
    for im, path, lab in zip(project.images, args.images, labels):
        paintings[im.name] = _paintings_for(lab, path, project, _INSTANCE_SCHEMES.get(args.instances))
    saved = save_project(folder, project, paintings)
    painted = sum(1 for im in saved.images if np.any(im.painted))
    print(f"project {folder}: {len(saved.images)} images ({painted} painted), {args.mode}, classes "
          + ", ".join(c.name for c in saved.classes), file=sys.stderr)
    return 0


def cmd_project_add(args: argparse.Namespace) -> int:
    """``segstudio project add``: one more image (and its labels) in a project."""
    from segstudio.core.project import add_image, find_project, load_project, save_project

    folder = find_project(args.project)
    _refuse_newer_autosave(folder)
    project = add_image(folder, load_project(folder), args.image, channel_axis=args.channel_axis)
    im = project.images[-1]
    paintings = {}
    if args.labels:
        paintings[im.name] = _paintings_for(args.labels, args.image, project, _INSTANCE_SCHEMES.get(args.instances))
    save_project(folder, project, paintings)
    print(f"{args.image} → image {im.name!r} of {folder}" + (" (painted)" if paintings else ""), file=sys.stderr)
    return 0


def project_summary(folder: Path) -> dict:
    """What ``segstudio project info`` shows: the images (state, painted pixels per class) and runs."""
    from segstudio.core.project import (
        RUNS_DIR, image_path, image_state, latest_run, load_project, painted_counts, read_paintings,
    )
    from segstudio.core.run import HISTORY_FILE, MODEL_FILE, read_history

    project = load_project(folder)
    names = [c.name for c in project.classes]
    images = []
    for im in project.images:
        painted = im.painted
        if not painted and im.paintings:  # written before the counts were kept
            paint = read_paintings(folder, project, im.name)
            painted = painted_counts(project.mode, paint, len(names)) if paint is not None else ()
        images.append({
            "name": im.name, "path": str(image_path(folder, im)), "shape": list(im.shape), "channels": im.channels,
            "state": image_state(sum(painted), bool(im.predicted_by), im.reviewed),
            "painted": {n: int(painted[k]) if k < len(painted) else 0 for k, n in enumerate(names)},
            "validation": im.validation, "regions": [list(b) for b in im.regions], "labels": im.labels,
            "predicted_by": im.predicted_by, "uncertainty": im.uncertainty, "reviewed": im.reviewed,
        })
    runs = []
    last = latest_run(folder, project)
    if (folder / RUNS_DIR).is_dir():
        for run in sorted(p for p in (folder / RUNS_DIR).iterdir() if p.is_dir()):
            history = read_history(run / HISTORY_FILE) if (run / HISTORY_FILE).exists() else ()
            runs.append({"path": f"{RUNS_DIR}/{run.name}", "iterations": int(history[-1]["iteration"]) if history
                         else 0, "weights": (run / MODEL_FILE).exists(), "last": run == last})
    return {"project": str(folder), "mode": project.mode, "classes": names, "images": images, "runs": runs}


def cmd_project_info(args: argparse.Namespace) -> int:
    """``segstudio project info``: the images, their painted pixels per class, and the runs."""
    from segstudio.core.project import find_project

    info = project_summary(find_project(args.project))
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['project']}: {info['mode']}, classes {', '.join(info['classes'])}")
    print(f"{len(info['images'])} images:")
    for im in info["images"]:
        counts = " · ".join(f"{n} {v}" for n, v in im["painted"].items())
        extra = " · validation" if im["validation"] else (" · validation regions" if im["regions"] else "")
        if im["uncertainty"] is not None:
            extra += f" · uncertainty {im['uncertainty']:.3f}"
        print(f"  {im['name']:<24} {'x'.join(map(str, im['shape'])):>11}  {im['state']:<9}  {counts}{extra}")
    print(f"{len(info['runs'])} runs:" if info["runs"] else "no runs yet")
    for run in info["runs"]:
        print(f"  {run['path']}  {run['iterations']} iterations{'' if run['weights'] else ' (no weights)'}"
              + ("  (last)" if run["last"] else ""))
    return 0


#: ``--instances`` choices of ``project create/add`` and the scheme each names.
_INSTANCE_SCHEMES = {"foreground": "foreground/background", "boundary": "foreground/boundary/background"}


def _add_project_commands(sub) -> None:
    """``segstudio project create|add|info``."""
    p = sub.add_parser("project", help="make a project of many images, add images, show what it holds")
    psub = p.add_subparsers(dest="project_command", required=True)
    instances_help = ("the labels are instance masks (0 background, one value per object): 'foreground' = "
                      "classes 1 background, 2 foreground; 'boundary' = also 3 the objects' edges")
    c = psub.add_parser("create", help="a new project from image files (labels matched to images in order)")
    c.add_argument("project", help="the project folder to create")
    c.add_argument("images", nargs="+", metavar="IMAGE")
    c.add_argument("--labels", nargs="+", metavar="LABELS",
                   help="label files, one per image in order (value k = class k, 0 = not painted)")
    c.add_argument("--mode", choices=("exclusive", "multilabel"), default="exclusive")
    c.add_argument("--classes", nargs="+", metavar="NAME", help="class names (default: background, foreground)")
    c.add_argument("--instances", choices=tuple(_INSTANCE_SCHEMES), help=instances_help)
    c.add_argument("--channel-axis", type=int, help="axis of the images' channels (if not in their metadata)")
    _add_common(c)
    c.set_defaults(func=cmd_project_create)
    a = psub.add_parser("add", help="add an image (and its labels) to a project")
    a.add_argument("project")
    a.add_argument("image")
    a.add_argument("--labels", help="a label file for the image (value k = class k, 0 = not painted)")
    a.add_argument("--instances", choices=tuple(_INSTANCE_SCHEMES), help=instances_help)
    a.add_argument("--channel-axis", type=int)
    _add_common(a)
    a.set_defaults(func=cmd_project_add)
    i = psub.add_parser("info", help="the images (state, painted pixels per class) and the runs")
    i.add_argument("project")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    _add_common(i)
    i.set_defaults(func=cmd_project_info)


# --------------------------------------------------------------------------- parsers
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    """The ``segstudio`` argument parser (sub-commands)."""
    from segstudio.core.batch import OUT_OF_CORE_BYTES
    from segstudio.core.losses import LOSS_NAMES
    from segstudio.core.weights import METHODS

    parser = _Parser(prog="segstudio", description="Paint a few strokes, train a U-Net, segment.")
    sub = parser.add_subparsers(dest="command", required=True)

    w = sub.add_parser("weights", help="class weights from label files")
    w.add_argument("--labels", action="append", required=True, help="label file (repeat for several images)")
    w.add_argument("--mode", choices=("exclusive", "multilabel"), default="exclusive")
    w.add_argument("--method", choices=METHODS, default="balanced")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    _add_common(w)
    w.set_defaults(func=cmd_weights)

    i = sub.add_parser("info", help="shape, dtype, spacing: what segstudio sees in a file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    _add_common(i)
    i.set_defaults(func=cmd_info)

    losses = sorted({n for names in LOSS_NAMES.values() for n in names})
    t = sub.add_parser("train", help="train a U-Net from an image and its paintings")
    t.add_argument("--image", action="append", help="image file (repeat with --labels)")
    t.add_argument("--labels", action="append", help="paintings: 0 unpainted, 1..K classes "
                   "(exclusive) or (C, ...) 0/1/2 (multilabel)")
    t.add_argument("--mode", choices=("exclusive", "multilabel"), default="exclusive")
    t.add_argument("--out", help="run directory to write (with --project: default PROJECT/runs/<time>)")
    t.add_argument("--project", help="train on a project's images and saved paintings (instead of --image/--labels)")
    t.add_argument("--checkpoint-every", type=positive_number, help="seconds between checkpoints (default 30)")
    t.add_argument("--iterations", type=whole_number(1), default=None, help="stop after N iterations (default 500)")
    t.add_argument("--minutes", type=positive_number, default=None, help="stop after M minutes")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    t.add_argument("--loss", choices=losses, default=None, help="ce, focal, gdl, dice_ce / bce, dice, …")
    t.add_argument("--weights", choices=METHODS, default="balanced", help="class-weight method")
    t.add_argument("--patch", type=whole_number(MIN_PATCH), nargs="+", help="patch size, e.g. 128 128 or 32 96 96")
    t.add_argument("--batch", type=whole_number(1), help="patches per step")
    t.add_argument("--lr", type=positive_number, help="peak learning rate")
    t.add_argument("--grad-accum", type=whole_number(1), default=1, help="gradient accumulation steps")
    t.add_argument("--model-size", choices=("fast", "balanced", "accurate"), default=None,
                   help="network size (default: fast, or the --resume run's network)")
    t.add_argument("--wide-context", nargs="?", const="on", default=None, choices=("auto", "on", "off"),
                   help="an extra, wider input filter (σ 4) for a background that varies across the image "
                        "more than the objects' contrast (worse on textures and isolated blobs); auto (the "
                        "default): on when the painted background of a 2D image varies more than the classes "
                        "differ from it; --wide-context alone: on")
    t.add_argument("--textures", nargs="?", const="on", default=None, choices=("auto", "on", "off"),
                   help="region statistics as well (local mean, variation and edge direction over ~8 px) for "
                        "classes that differ in texture more than in brightness: much better on textured "
                        "tissue, a little worse and slower on separate bright objects; auto (the default): on "
                        "when a region statistic tells your painted classes apart better than brightness; "
                        "--textures alone: on")
    t.add_argument("--smoothing", type=non_negative_number, default=None, metavar="SIGMA",
                   help="smooth the predicted class probabilities over SIGMA pixels in every prediction of "
                        "this run (live previews, predict, exports); training is not smoothed. Default: 4 "
                        "with textures (a texture class holds for a region, not a grain), 0 (none) without")
    t.add_argument("--downsample", type=whole_number(1), default=None, metavar="N",
                   help="the network works on the image shrunk N times along its finest axes (block means; "
                        "your labels are learnt and predictions come out at full size), for objects much "
                        "larger than the network's reach: pick N so that objects are 25-40 px across after the "
                        "shrink (e.g. 4 for nuclei ~120 px across); patch, filter and smoothing sizes are then "
                        "in pixels of the shrunk image. Default: 1 (none), or the --resume run's")
    t.add_argument("--level-slices", nargs="?", const="on", default=None, choices=("auto", "on", "off"),
                   help="volumes: level each z slice's background before training and prediction (each "
                        "slice's 20%% quantile, smoothed along z), for a background that runs along the stack "
                        "(uneven illumination, bleaching); auto (the default): on when the background's level "
                        "runs along z more than the painted classes differ; --level-slices alone: on")
    t.add_argument("--seed", type=whole_number(0))
    t.add_argument("--channel-axis", type=int, help="axis of the image's channels (if not in its metadata)")
    t.add_argument("--class-names", nargs="+", help="names of classes 1..K")
    t.add_argument("--val-labels", help="ground truth for the first image: report Dice while training")
    t.add_argument("--resume", help="continue from this run directory (may equal --out); "
                   "'last' = the project's last run")
    t.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    t.add_argument("--no-outlines", action="store_true",
                   help="learn from the painted pixels only: do not also learn the inside of closed "
                   "traced outlines and the background just outside them")
    t.add_argument("--no-background-rule", action="store_true",
                   help="do not also learn unpainted pixels that look like the painted background "
                   "as background, nor leave out object paint that lies on such background")
    t.add_argument("--verbose", action="store_true")
    _add_common(t)
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="segment images with a trained run")
    pr.add_argument("--model", help="run directory, or an exported .pt/.pt2/.onnx/.zip "
                    "(with --project: default the project's last run)")
    pr.add_argument("--image", nargs="+")
    pr.add_argument("--out", help="output file, or folder for several images (with --project: default "
                    "PROJECT/predictions)")
    pr.add_argument("--project", help="predict every image of a project (NAME_labels.EXT in each image's format)")
    pr.add_argument("--probabilities", action="store_true", help="also write class probabilities (TIFF)")
    pr.add_argument("--tta", action="store_true", help="average over flipped copies (slower, smoother)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--channel-axis", type=int)
    pr.add_argument("--out-of-core", choices=("auto", "always", "never"), default="auto",
                    help="read tiles lazily and write the output band by band (auto: for lazily readable "
                         f"images of {OUT_OF_CORE_BYTES >> 20} MiB or more written to .zarr/.tif/.npy)")
    _add_instance_options(pr)
    _add_common(pr)
    pr.set_defaults(func=cmd_predict)

    from segstudio.core.export import DEFAULT_LICENSE, FORMATS

    ex = sub.add_parser("export", help="export a run to TorchScript, torch.export, ONNX or a bioimage.io zip")
    ex.add_argument("--model", required=True, help="run directory")
    ex.add_argument("--format", required=True, choices=(*FORMATS, "all"),
                    help="torchscript (.pt), pt2 (torch.export), onnx, bioimageio (.zip), or all (into a folder)")
    ex.add_argument("--out", required=True, help="output file (one format) or folder (all)")
    ex.add_argument("--image", help="the training image: bioimage.io test input and cover are cut from it")
    ex.add_argument("--channel-axis", type=int)
    ex.add_argument("--name", help="bioimage.io model name")
    ex.add_argument("--description", help="bioimage.io description")
    ex.add_argument("--author", action="append", help="bioimage.io author (repeat for several)")
    ex.add_argument("--license", default=DEFAULT_LICENSE, help="SPDX license id (bioimage.io)")
    _add_common(ex)
    ex.set_defaults(func=cmd_export)

    o = sub.add_parser("open", help="open a project folder in the app")
    o.add_argument("project", help="project folder (or its project.json)")
    _add_common(o)
    o.set_defaults(func=cmd_open)

    _add_objects_commands(sub)
    _add_project_commands(sub)

    d = sub.add_parser("demo", help="open the app on the 2D sample with example strokes and start training")
    _add_common(d)
    d.set_defaults(func=cmd_gui, images=[], sample="nuclei2d", demo=True)
    return parser


def build_gui_parser() -> argparse.ArgumentParser:
    """Parser for ``segstudio [IMAGE ...]``."""
    p = _Parser(
        prog="segstudio",
        description="Open the segstudio app. Sub-commands: " + ", ".join(SUBCOMMANDS) + " (segstudio CMD -h).",
    )
    p.add_argument("images", nargs="*", help="images to open")
    p.add_argument("--sample", choices=("nuclei2d", "nuclei3d"), help="open a built-in sample image")
    _add_common(p)
    p.set_defaults(func=cmd_gui, demo=False)
    return p


def run_guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; user mistakes become one line on stderr and exit code 2."""
    from segstudio.core.errors import UserInputError

    try:
        return int(func(args) or 0)
    except UserInputError as e:
        if getattr(args, "debug", False):
            raise
        print(f"segstudio: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"segstudio: error: {e.strerror or e}: '{e.filename}'", file=sys.stderr)
        return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segstudio`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        args = build_parser().parse_args(argv)
    else:
        args = build_gui_parser().parse_args(argv)
    return run_guarded(args.func, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
