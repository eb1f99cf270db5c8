"""The trainer: a generator of small, typed events.

>>> for event in train(config, source, run_dir="runs/a"):   # doctest: +SKIP
...     print(event)

The same generator runs inline (tests, CLI) or inside a napari/superqt thread worker (GUI):
each ``yield`` is a point where the consumer may stop it (``generator.close()``). Closing saves
a final checkpoint. New paintings arrive through a :class:`~segstudio.core.data.SnapshotSource`
and are swapped in between iterations without restarting (in the app, prepared in a thread
while the steps go on: ``Trainer(swap_in_background=True)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segstudio.core.allocator import tune_allocator
from segstudio.core.annotations import EXCLUSIVE, MULTILABEL, PRESENT
from segstudio.core import config as _config
from segstudio.core.background import smoothed_intensity
from segstudio.core.config import (
    NETWORK_FIELDS,
    TEXTURE_SCALE,
    TrainConfig,
    has_wide_context,
    uneven_background,
    wide_context_filters,
)
from segstudio.core.data import (
    Normalization,
    PatchSampler,
    Snapshot,
    SnapshotSource,
    TrainingImage,
    image_stats,
    normalize,
    prepare_image,
    split_holdout,
)
from segstudio.core.device import amp_dtype, is_oom, resolve_device
from segstudio.core.errors import UserInputError
from segstudio.core.features import image_regions
from segstudio.core.losses import make_loss
from segstudio.core.implied import SPILLED, implied_labels, learnt_paint, rules_on
from segstudio.core.predictor import context_region, predict_normalized
from segstudio.core.regularizers import PairwiseAffinityLoss
from segstudio.core.run import load_run, model_from_config, save_run
from segstudio.core.stroke_fit import StrokeFit, stroke_hits
from segstudio.core.weights import ClassWeights, compute_weights, coverage_of, painted_extent

#: With ``Trainer(swap_in_background=True)``, paintings are prepared in a thread beside the
#: steps once a preparation took this long (seconds). Below it the thread costs more than it
#: saves: on the app's 3-D sample (a preparation of milliseconds, a paint change every half
#: second while painting) the steps shared the cores with it and the app made 0.60-0.62 of
#: headless's steps instead of 0.67-0.73 (benchmarks/RESULTS.md, *What a paint change costs on
#: a large volume*).
BACKGROUND_SWAP_S = 0.3

#: How the fields that define a network are named in messages.
_LABELS = {"n_classes": "classes", "input_filters": "input filters", "filter_units": "filter units",
           "filter_texture": "ridge filters", "filter_context": "region scales",
           "input_norm": "standardised inputs"}


def _difference(field: str, there: Any, here: Any) -> str:
    """How a network field differs between a resumed run and this one, as a message says it."""
    label = _LABELS.get(field, field)
    if field == "downsample":
        return f"downsample {there} there, {here} here"
    if isinstance(there, bool):
        return f"{label} {'on' if there else 'off'} there, {'on' if here else 'off'} here"
    if isinstance(there, (tuple, list)) and isinstance(here, (tuple, list)):
        def scales(v: Sequence[Any]) -> str:
            return ", ".join(f"{float(s):g}" for s in v) if v else "none"
        return f"{label} {scales(there)} there, {scales(here)} here"
    return f"{there} {label} there, {here} {label} here"

#: Seconds of training before the first ``Preview`` (later ones every ``preview_every_s``).
FIRST_PREVIEW_S = 1.0
#: ``Validation.kind`` of Dice on the painted pixels held out for validation.
HELD_OUT = "held out"

StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Started:
    """Training began on ``device`` (``amp``: mixed-precision dtype or ``None``)."""

    device: str
    amp: str | None
    parameters: int
    start_iteration: int
    run_dir: str | None


@dataclass(frozen=True)
class Progress:
    """One optimisation step finished."""

    iteration: int
    loss: float
    lr: float
    seconds: float
    samples_per_s: float
    total: int | None = None
    eta_s: float | None = None
    #: Per class, the share of its own painted pixels the recent training steps predicted
    #: right (:mod:`segstudio.core.stroke_fit`); ``None`` for a class not in recent patches.
    learnt: tuple[float | None, ...] = ()
    #: Steps trained on the current strokes (the tally's :attr:`~segstudio.core.stroke_fit.StrokeFit.steps`).
    learnt_steps: int = 0


@dataclass(frozen=True)
class Checkpoint:
    """The run directory was written (atomically) at ``iteration``."""

    path: str
    iteration: int


@dataclass(frozen=True)
class Preview:
    """A CPU copy of the current weights, for live predictions."""

    iteration: int
    state_dict: StateDict


@dataclass(frozen=True)
class WeightsUpdated:
    """New paintings were swapped in; the class weights in use now."""

    iteration: int
    weights: ClassWeights


@dataclass(frozen=True)
class Notice:
    """Something the user should know (out-of-memory recovery, ...)."""

    message: str


@dataclass(frozen=True)
class Validation:
    """Per-class Dice (and HD95 in 3D) against a ground truth, or (``kind`` "held out") Dice on
    the painted pixels held out for validation (NaN: a class without held-out paint)."""

    iteration: int
    dice: tuple[float, ...]
    hd95: tuple[float, ...] = ()
    kind: str = "truth"


@dataclass(frozen=True)
class Finished:
    """Training ended normally (``reason``: ``iterations``, ``time`` or ``stopped``)."""

    iteration: int
    seconds: float
    reason: str
    run_dir: str | None


@dataclass(frozen=True)
class Failed:
    """Training crashed; the paintings and the last checkpoint are intact."""

    message: str
    traceback: str = ""
    user_error: bool = False


Event = Started | Progress | Checkpoint | Preview | WeightsUpdated | Notice | Validation | Finished | Failed


# --------------------------------------------------------------------------- helpers
def lr_at(config: TrainConfig, iteration: int, elapsed_s: float) -> float:
    """Linear warm-up, then cosine decay over the planned length (iterations or minutes)."""
    if iteration < config.warmup:
        return config.lr * (iteration + 1) / config.warmup
    fractions = []
    if config.iterations:
        fractions.append(iteration / config.iterations)
    if config.minutes:
        fractions.append(elapsed_s / (60.0 * config.minutes))
    if not fractions:
        return config.lr
    frac = min(max(fractions), 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * frac))


def cpu_state(model: torch.nn.Module) -> StateDict:
    """A detached CPU copy of the model's weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- per-image work
class _ImageWork:
    """What the trainer computes from one image object: its normalisation statistics, the
    normalised copy and the smoothed intensity (each once, when first needed)."""

    def __init__(self, image: np.ndarray, channel_axis: int | None) -> None:
        self.image = image
        self.channel_axis = channel_axis
        self._stats: Normalization | None = None
        self._normalized: np.ndarray | None = None
        self._smoothed: np.ndarray | None = None
        self._regions: tuple[Any, np.ndarray | None] | None = None

    def stats(self, cfg: TrainConfig) -> Normalization:
        """The image's normalisation by the run's rule (its percentiles, *level slices*)."""
        if self._stats is None:
            self._stats = image_stats(self.image, self.channel_axis, cfg.percentiles, level_slices=cfg.level_slices)
        return self._stats

    def normalized(self, cfg: TrainConfig) -> np.ndarray:
        """The image as ``(C, *spatial)`` float32, normalised with :meth:`stats`."""
        if self._normalized is None:
            self._normalized = normalize(self.image, self.stats(cfg), self.channel_axis)
        return self._normalized

    def regions(self, bank: Any, cfg: TrainConfig, device: Any) -> np.ndarray | None:
        """The network's region channels of the normalised image (:func:`image_regions`), or
        None (no region scales, or too large to keep); computed once per bank."""
        if self._regions is None or self._regions[0] is not bank:
            self._regions = (bank, image_regions(bank, self.normalized(cfg), device, reduction=cfg.reduction))
        return self._regions[1]

    def smoothed(self, ndim: int, cfg: TrainConfig) -> np.ndarray:
        """The smoothed intensity the background rule reads (of the levelled image with *level
        slices*; against its local background where the run takes the background for uneven,
        :func:`~segstudio.core.config.uneven_background`)."""
        if self._smoothed is None:
            offsets = self.stats(cfg).offsets if cfg.level_slices else ()
            uneven = uneven_background(has_wide_context(cfg.input_filters, ndim), cfg.level_slices, ndim)
            self._smoothed = smoothed_intensity(self.image, self.channel_axis, ndim, offsets, uneven)
        return self._smoothed


@dataclass(frozen=True, eq=False)
class _PaintWork:
    """What the trainer computed from one image's paintings (kept while the same objects come)."""

    image: Any
    paintings: Any
    holdout: Any
    prepared: Any  # data._PreparedImage, or None: nothing to train on
    inferred: dict[str, np.ndarray | None]  # what each implied-label rule infers
    paint: Any  # the paintings trained on (held-out strokes removed)
    held: np.ndarray | None  # the held-out paintings, or None
    extent: tuple[int, int] = (0, 0)  # weights.painted_extent of ``paint``

    def same(self, item: TrainingImage) -> bool:
        return item.image is self.image and item.paintings is self.paintings and item.holdout is self.holdout


@dataclass(frozen=True, eq=False)
class _Gathered:
    """A snapshot's paintings prepared for training (:meth:`Trainer._gather`), not yet in use."""

    snapshot: Snapshot
    images: dict[int, _ImageWork]
    paints: dict[tuple[int, int, int], _PaintWork]
    prepared: list[Any]  # data._PreparedImage per image with something to train on
    inferred: list[dict[str, np.ndarray | None]]
    held: list[tuple[_ImageWork, np.ndarray]]
    train_paint: list[Any]
    normalization: Normalization
    coverage: float = 0.0  # the painted share of the paintings' extent (weights.coverage_of)


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Stateful trainer with small hooks; :meth:`run` is the event generator.

    Parameters
    ----------
    config
        Training settings.
    source
        Where paintings come from (swapped in between iterations when a newer one is put).
    run_dir
        Where checkpoints go (``None``: nowhere, e.g. for a throw-away preview run).
    resume
        A run directory whose weights (and optimizer state, when the classes match) to start
        from. May equal ``run_dir``; the history then continues.
    validation
        ``(image_index, truth)``: a label image (values 1..K exclusive, ``(C, *spatial)`` 0/1
        multilabel) to report Dice against every ``config.val_every`` iterations.
    turns
        Held for each optimisation step: a :class:`~segstudio.core.device.ComputeTurns` shared
        with the app's live previews, so that on a CPU the two take turns with all the cores
        instead of oversubscribing them; ``None``: none.
    swap_in_background
        Where the last preparation took :data:`BACKGROUND_SWAP_S` or more, prepare the
        paintings of a newer snapshot (targets, implied labels) in a thread while the steps go
        on with the previous ones, and swap them in at the first step after they are ready (the
        app: on a 64 × 512 × 512 volume the preparation takes seconds, which training used to
        wait for after every paint change). ``False`` (the default): prepared between two
        steps, so that a run is reproducible step for step (tests, benchmarks). The first
        snapshot is always prepared before the first step.
    """

    def __init__(
        self,
        config: TrainConfig,
        source: SnapshotSource,
        run_dir: str | os.PathLike[str] | None = None,
        *,
        resume: str | os.PathLike[str] | None = None,
        validation: tuple[int, np.ndarray] | None = None,
        turns: contextlib.AbstractContextManager | None = None,
        swap_in_background: bool = False,
    ) -> None:
        self.config = config
        self.swap_in_background = bool(swap_in_background)
        #: The snapshot being prepared in the background, or None.
        self._pending: Future | None = None
        self._swapper: ThreadPoolExecutor | None = None
        #: Seconds the last preparation of paintings took (:meth:`_gather`).
        self.gather_s = 0.0
        self.turns = turns if turns is not None else contextlib.nullcontext()
        self.source = source
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = Path(resume) if resume is not None else None
        self.validation = validation
        self.history: list[dict[str, float]] = []
        self.iteration = 0
        self.snapshot_version = -1
        self.weights: ClassWeights | None = None
        self.elapsed = 0.0
        self._last_checkpoint_iteration = -1
        #: What was computed per image (normalisation, smoothed intensity) and per paintings
        #: (targets, implied labels), kept while the snapshots hand in the same objects.
        self._image_work: dict[int, _ImageWork] = {}
        self._paint_work: dict[tuple[int, int, int], _PaintWork] = {}
        self.held_out: list[tuple[_ImageWork, np.ndarray]] = []
        self.image_works: list[_ImageWork] = []

    # -- set-up hooks -------------------------------------------------------------------
    def setup(self) -> None:
        """Pick the device, seed, build model/optimizer, load a run to resume from."""
        cfg = self.config
        tune_allocator()  # once per process (the app calls it first, when it opens)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.amp = amp_dtype(self.device, cfg.amp)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        #: How much of each class's strokes the training steps get right (reported in Progress).
        self.stroke_fit = StrokeFit(cfg.n_classes, cfg.mode)
        self.model = model_from_config(cfg).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.pairwise = (
            PairwiseAffinityLoss(cfg.mode, cfg.spatial_dims, cfg.pairwise_radius, cfg.pairwise_sigma,
                                 guide=cfg.pairwise_guide)
            if cfg.pairwise_weight > 0 else None
        )
        if self.resume is not None:
            loaded = load_run(self.resume, map_location="cpu")
            old = loaded.config
            if (old.mode, old.spatial_dims, old.in_channels) != (cfg.mode, cfg.spatial_dims, cfg.in_channels):
                raise UserInputError(
                    f"cannot resume '{self.resume}': it was trained for {old.mode} {old.spatial_dims}D "
                    f"images with {old.in_channels} channel(s)"
                )
            differ = [k for k in ("n_classes", *NETWORK_FIELDS) if getattr(old, k) != getattr(cfg, k)]
            if differ:
                raise UserInputError(
                    f"cannot resume '{self.resume}': its network differs from this training's ("
                    + "; ".join(_difference(k, getattr(old, k), getattr(cfg, k)) for k in differ) + ")"
                )
            self.model.load_state_dict(loaded.model.state_dict())
            if loaded.optimizer_state is not None:
                try:
                    self.optimizer.load_state_dict(loaded.optimizer_state)
                except (ValueError, KeyError):
                    pass  # a fresh optimizer is fine
            if self.run_dir is not None and self.run_dir.resolve() == self.resume.resolve():
                self.history = [dict(r) for r in loaded.history]
            self.iteration = loaded.iteration
            self.elapsed = self.history[-1]["seconds"] if self.history else 0.0
        self.ema: StateDict | None = None
        self._ema_steps = 0
        if cfg.ema_decay > 0:
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.start_iteration = self.iteration
        self.batch_size = cfg.batch
        #: The patch cut from the full-size image (the network's patch times *downsample*'s factors).
        self.patch = cfg.sample_patch

    def swap_snapshot(self, snapshot: Snapshot) -> ClassWeights:
        """Prepare a new snapshot of paintings: targets, sampler and loss weights.

        Each image is normalised with its own percentiles (per-image rule). Work is kept per
        image while the snapshot keeps handing in the same objects: the normalised image (and
        its smoothed intensity) while the image is the same object, its targets and implied
        labels while its paintings are too. A swap after a stroke on one image of many redoes
        that image only. Painted pixels held out for validation (``TrainingImage.holdout``) are
        not trained on; :meth:`validate` reports Dice on them.
        """
        return self._apply(self._gather(snapshot))

    def _gather(self, snapshot: Snapshot) -> _Gathered:
        """The costly part of a swap: each image's targets and implied labels (kept from the
        previous swap for the objects that did not change), its normalisation and region
        channels. Changes nothing the steps read, so it may run in a thread beside them."""
        started = time.perf_counter()
        cfg = self.config
        prepared, inferred, held, train_paint = [], [], [], []
        prepared_works: list[_ImageWork] = []
        images: dict[int, _ImageWork] = {}
        paints: dict[tuple[int, int, int], _PaintWork] = {}
        for item in snapshot.images:
            work = self._image_work.get(id(item.image))
            if work is None or work.image is not item.image:
                work = _ImageWork(item.image, item.channel_axis)
            images[id(item.image)] = work
            key = (id(item.image), id(item.paintings), id(item.holdout))
            done = self._paint_work.get(key)
            if done is None or not done.same(item):
                done = self._prepare(item, work)
            paints[key] = done
            if done.prepared is not None:
                prepared.append(done.prepared)
                prepared_works.append(work)
                inferred.append(done.inferred)
                train_paint.append(done.paint)
            if done.held is not None:
                held.append((work, done.held))
        if not prepared:
            raise UserInputError("nothing is painted outside the validation images and regions; "
                                 "paint a training image too")
        normalization = images[id(snapshot.images[0].image)].stats(cfg)
        bank = getattr(self.model, "filters", None)
        if getattr(bank, "context", ()):
            prepared = [dataclasses.replace(p, regions=w.regions(bank, cfg, self.device))
                        for p, w in zip(prepared, prepared_works)]
        self.gather_s = time.perf_counter() - started
        coverage = coverage_of(done.extent for done in paints.values() if done.prepared is not None)
        return _Gathered(snapshot, images, paints, prepared, inferred, held, train_paint, normalization, coverage)

    def _apply(self, gathered: _Gathered) -> ClassWeights:
        """Put prepared paintings in use: sampler, class weights and losses (cheap; between
        two steps)."""
        snapshot, images = gathered.snapshot, gathered.images
        prepared, inferred, held, train_paint = gathered.prepared, gathered.inferred, gathered.held, gathered.train_paint
        self.stroke_fit.new_strokes()
        self._image_work, self._paint_work = images, gathered.paints
        self.image_works = [images[id(item.image)] for item in snapshot.images]
        self.config = cfg = self.config.replace(normalization=gathered.normalization)
        if snapshot.pins is not None:  # the user's pins travel with the paintings
            self.config = cfg = cfg.replace(pinned_weights=snapshot.pins)
        self.sampler = PatchSampler(
            prepared, cfg.mode, self.patch, random_fraction=cfg.random_fraction,
            augment=cfg.augment, rng=self.rng, image_floor=cfg.image_floor,
        )
        self.prepared = prepared
        self.held_out = held
        pins = dict(cfg.pinned_weights)
        computed = compute_weights(
            train_paint, cfg.mode, cfg.weight_method, n_classes=cfg.n_classes if cfg.mode == EXCLUSIVE else None,
            clamp=cfg.weight_clamp, pinned=pins, coverage=gathered.coverage,
        )
        if snapshot.weights is not None:
            if len(snapshot.weights) != cfg.n_classes:
                raise UserInputError(
                    f"{len(snapshot.weights)} class weights given for {cfg.n_classes} classes"
                )
            computed = ClassWeights(
                mode=computed.mode, method="given", counts=computed.counts,
                weights=tuple(snapshot.weights), absent_counts=computed.absent_counts,
                warnings=computed.warnings, coverage=computed.coverage,
            )
        self.weights = computed
        self.loss_fn = make_loss(cfg.mode, cfg.loss, computed.weights).to(self.device)
        # One term per rule, each with class weights from its own counts: thousands of inferred
        # pixels must not drown the painted ones (benchmarks/RESULTS.md, session 4), nor one
        # rule's many background pixels the other's fills (session 5).
        self.inferred_loss_fns: list[torch.nn.Module | None] = []
        for r in self.rules:
            labels = [e[r] for e in inferred if e.get(r) is not None]
            # (untempered: what a rule infers covers its extent by design, and is weighed as
            # before dense paintings were told apart from strokes)
            own = None if not labels else compute_weights(
                labels, cfg.mode, cfg.weight_method,
                n_classes=cfg.n_classes if cfg.mode == EXCLUSIVE else None, clamp=cfg.weight_clamp, coverage=0.0,
            )
            self.inferred_loss_fns.append(None if own is None else make_loss(cfg.mode, cfg.loss, own.weights).to(self.device))
        self.snapshot_version = snapshot.version
        return computed

    def _prepare(self, item: TrainingImage, work: _ImageWork) -> _PaintWork:
        """Targets, coordinates and implied labels of one image's paintings (what is held out
        for validation set aside)."""
        cfg = self.config
        train_item, held = split_holdout(item, cfg.mode)
        prepared = paint = None
        extra: dict[str, np.ndarray | None] = {}
        if train_item is not None:
            # what the implied-label rules infer: {rule: labels or None}
            extra = self._inferred(train_item, work)
            # object paint that lies on background (a spilled stroke) is not learnt
            if extra.get(SPILLED) is not None:
                train_item = dataclasses.replace(
                    train_item, paintings=learnt_paint(train_item.paintings, cfg.mode, extra[SPILLED]))
            stats = work.stats(cfg)
            prepared, _ = prepare_image(train_item, cfg.mode, cfg.n_classes, stats, cfg.percentiles,
                                        inferred=[extra[r] for r in self.rules],
                                        normalized=work.normalized(cfg))
            paint = train_item.paintings if cfg.mode == EXCLUSIVE else np.asarray(train_item.paintings)
        return _PaintWork(item.image, item.paintings, item.holdout, prepared, extra, paint, held,
                          painted_extent(paint, cfg.mode) if paint is not None else (0, 0))

    @property
    def rules(self) -> tuple[str, ...]:
        """The implied-label rules that are on (:data:`segstudio.core.implied.RULES` order)."""
        return rules_on(self.config.infer_outlines, self.config.infer_background)

    def _inferred(self, item: TrainingImage, work: _ImageWork | None = None) -> dict[str, np.ndarray | None]:
        """What each rule that is on infers from the paintings of ``item``
        (:func:`segstudio.core.implied.implied_labels`)."""
        cfg = self.config
        if not self.rules:
            return {}
        ndim = np.ndim(item.paintings) if cfg.mode == EXCLUSIVE else np.ndim(item.paintings[0])
        if work is None:
            work = _ImageWork(item.image, item.channel_axis)
        return implied_labels(
            item.paintings, item.image, cfg.mode, channel_axis=item.channel_axis,
            outlines=cfg.infer_outlines, background=cfg.infer_background, halo=cfg.outline_halo,
            smoothed=work.smoothed(ndim, cfg) if cfg.infer_background else None, textures=cfg.filter_texture,
        )

    def maybe_swap(self) -> WeightsUpdated | None:
        """Swap in the newest snapshot if it changed; returns the event to report.

        With ``swap_in_background``, after a preparation that took :data:`BACKGROUND_SWAP_S` or
        more, a newer snapshot is prepared in a thread and swapped in by the first call after it
        is ready (its error, if any, raised then); meanwhile the steps go on with the previous
        paintings.
        """
        if self._pending is not None:
            if not self._pending.done():
                return None
            pending, self._pending = self._pending, None
            return WeightsUpdated(self.iteration, self._apply(pending.result()))
        snap = self.source.latest()
        if snap is None:
            raise UserInputError("no image and paintings were given to train on")
        if snap.version == self.snapshot_version:
            return None
        if self.swap_in_background and self.snapshot_version >= 0 and self.gather_s >= BACKGROUND_SWAP_S:
            if self._swapper is None:
                self._swapper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segstudio-swap")
            self._pending = self._swapper.submit(self._gather, snap)
            return None
        weights = self.swap_snapshot(snap)
        return WeightsUpdated(self.iteration, weights)

    def close_swapper(self) -> None:
        """End the background preparation's thread (a preparation under way finishes first;
        its result is dropped)."""
        self._pending = None
        if self._swapper is not None:
            self._swapper.shutdown(wait=False, cancel_futures=True)
            self._swapper = None

    # -- step hooks ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass (a DistributedDataParallel wrapper overrides it)."""
        return self.model(x)

    def step(self) -> float:
        """One optimisation step (with gradient accumulation). Returns the mean loss."""
        cfg = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        hits = counts = None
        for _ in range(max(cfg.grad_accum, 1)):
            x, y, m = self.sampler.batch(self.batch_size)
            xt = torch.from_numpy(x).to(self.device, non_blocking=True)
            yt = torch.from_numpy(y).to(self.device, non_blocking=True)
            mt = None if m is None else torch.from_numpy(m).to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                logits = self.forward(xt)
            logits = logits.float()
            h, c = self.painted_hits(logits, yt, mt)
            hits, counts = (h, c) if hits is None else (hits + h, counts + c)
            if not self.sampler.n_rules:
                loss = self.loss_fn(logits, yt, mt)
            elif cfg.mode == EXCLUSIVE:  # (N, 1 + R, *spatial): the paint, then each rule's labels
                loss = self.loss_fn(logits, yt[:, 0])
                for r, fn in enumerate(self.inferred_loss_fns):
                    if fn is not None:
                        loss = loss + cfg.inferred_weight * fn(logits, yt[:, 1 + r])
            else:  # (N, (1 + R) K, *spatial): the paint's K channels, then each rule's K
                k = cfg.n_classes
                loss = self.loss_fn(logits, yt[:, :k], mt[:, :k])
                for r, fn in enumerate(self.inferred_loss_fns):
                    if fn is not None:
                        sl = slice(k * (1 + r), k * (2 + r))
                        loss = loss + cfg.inferred_weight * fn(logits, yt[:, sl], mt[:, sl])
            if self.pairwise is not None:
                loss = loss + cfg.pairwise_weight * self.pairwise(logits, xt[:, : self.sampler.image_channels])
            loss = loss / max(cfg.grad_accum, 1)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            total += float(loss.detach())
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.after_optimizer_step()
        self.update_ema()
        self.stroke_fit.update(hits, counts)  # once per step, over its accumulated batches
        return total

    def painted_hits(self, logits: torch.Tensor, yt: torch.Tensor,
                     mt: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """What a batch's logits get right on the painted pixels (the user's strokes, not the
        rules' labels): :func:`~segstudio.core.stroke_fit.stroke_hits` for :attr:`stroke_fit`."""
        cfg, k = self.config, self.config.n_classes
        if cfg.mode == EXCLUSIVE:
            return stroke_hits(logits, yt[:, 0] if self.sampler.n_rules else yt, None, cfg.mode)
        return stroke_hits(logits, yt[:, :k], None if mt is None else mt[:, :k], cfg.mode)

    def after_optimizer_step(self) -> None:
        """Hook between the optimizer step and the moving average (the distributed trainer
        averages BatchNorm running statistics here, so every rank averages the same weights)."""

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged weights towards the current ones (decay warmed up over the first
        steps, so that early previews are not dominated by the random start; see
        ``TrainConfig.ema_warmup``)."""
        if self.ema is None:
            return
        self._ema_steps += 1
        n = self._ema_steps
        d = min(self.config.ema_decay, (1.0 + n) / (self.config.ema_warmup + n))
        averaged: list[torch.Tensor] = []
        current: list[torch.Tensor] = []
        counters: list[torch.Tensor] = []
        counted: list[torch.Tensor] = []
        for k, v in self.model.state_dict().items():  # detached views of the live tensors
            e = self.ema[k]
            (averaged if e.dtype.is_floating_point else counters).append(e)
            (current if e.dtype.is_floating_point else counted).append(v)
        # one fused kernel per list on CUDA instead of one per tensor (the same arithmetic)
        if averaged:
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        if counters:
            torch._foreach_copy_(counters, counted)

    def preview_state(self) -> StateDict:
        """A detached CPU copy of :meth:`averaged_state`, for live predictions."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.averaged_state().items()}

    def averaged_state(self) -> StateDict:
        """The weights that predict: the moving average when on, else the current weights."""
        return self.model.state_dict() if self.ema is None else self.ema

    def preview_model(self) -> torch.nn.Module:
        """A copy of the network holding :meth:`averaged_state` (the training model is untouched)."""
        import copy

        model = copy.deepcopy(self.model)
        model.load_state_dict(self.averaged_state())
        return model.eval()

    def shrink_for_oom(self) -> str:
        """Halve the batch (or, at batch 1, the patch) after CUDA ran out of memory."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.optimizer.zero_grad(set_to_none=True)
        if self.batch_size > 1:
            self.batch_size //= 2
            what = f"batch size {self.batch_size}"
        else:
            div = self.model.divisor  # type: ignore[attr-defined]
            new = tuple(max(d * 2, (p // 2) // d * d) for p, d in zip(self.patch, div))
            if new == tuple(self.patch):
                raise UserInputError("out of memory even at batch 1 and the smallest patch")
            self.patch = new
            self.sampler.patch = new
            what = f"patch {'x'.join(map(str, new))}"
        return f"GPU out of memory: continuing with {what}"

    def validate(self) -> Validation | None:
        """Dice against the ground truth, if one was given."""
        if self.validation is None:
            return None
        from segstudio.core.metrics import dice_binary, hd95

        index, truth = self.validation
        image = self.image_works[index].normalized(self.config)
        result = predict_normalized(self.model, image, self.config, device=self.device, amp=self.amp)
        pred = result.labels
        dice: list[float] = []
        hds: list[float] = []
        for k in range(self.config.n_classes):
            if self.config.mode == MULTILABEL:
                p, t = pred[k] > 0, np.asarray(truth[k]) > 0
            else:
                p, t = pred == k + 1, np.asarray(truth) == k + 1
            dice.append(dice_binary(p, t))
            if self.config.spatial_dims == 3:
                hds.append(hd95(p, t, self.config.spacing))
        return Validation(self.iteration, tuple(dice), tuple(hds))

    def validate_held_out(self) -> Validation | None:
        """Dice per class on the painted pixels held out for validation (``None``: none are).

        Each image with held-out strokes is predicted over the box around them (with the
        network's context, so the pixels come out as in a whole-image prediction), with the
        averaged weights; a class without held-out paint gets NaN.
        """
        if not self.held_out:
            return None
        cfg = self.config
        model = self.model if self.ema is None else self.preview_model()
        inter = np.zeros(cfg.n_classes)
        sums = np.zeros(cfg.n_classes)
        present = np.zeros(cfg.n_classes, dtype=bool)
        for work, held in self.held_out:
            multi = cfg.mode == MULTILABEL
            painted = (held != 0).any(axis=0) if multi else held != 0
            box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(painted))
            image = work.normalized(cfg)
            ctx, crop = context_region(box, image.shape[1:], cfg)
            result = predict_normalized(model, image[(slice(None), *ctx)], cfg, device=self.device, amp=self.amp)
            pred = result.labels[(slice(None), *crop)] if multi else result.labels[crop]
            paint = held[(slice(None), *box)] if multi else held[box]
            for k in range(cfg.n_classes):
                if multi:
                    mask = paint[k] != 0
                    p, t = pred[k][mask] > 0, paint[k][mask] == PRESENT
                else:
                    mask = paint != 0
                    p, t = pred[mask] == k + 1, paint[mask] == k + 1
                present[k] |= bool(t.any())
                inter[k] += np.count_nonzero(p & t)
                sums[k] += np.count_nonzero(p) + np.count_nonzero(t)
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(present, 2.0 * inter / np.maximum(sums, 1), np.nan)
        if self.ema is not None:
            del model
        return Validation(self.iteration, tuple(float(d) for d in dice), kind=HELD_OUT)

    def checkpoint(self) -> Checkpoint | None:
        """Write the run directory (atomically)."""
        if self.run_dir is None or self._last_checkpoint_iteration == self.iteration:
            return None
        save_run(
            self.run_dir, self.config, self.model if self.ema is None else self.preview_model(),
            history=self.history,
            weights=None if self.weights is None else self.weights.weights,
            optimizer_state=self.optimizer.state_dict(), iteration=self.iteration,
        )
        self._last_checkpoint_iteration = self.iteration
        return Checkpoint(str(self.run_dir), self.iteration)

    def _done(self, started: float) -> str | None:
        cfg = self.config
        if cfg.iterations is not None and self.iteration >= cfg.iterations + (
            self.start_iteration if self.resume is not None else 0
        ):
            return "iterations"
        if cfg.minutes is not None and time.perf_counter() - started >= 60.0 * cfg.minutes:
            return "time"
        return None

    # -- the loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> Iterator[Event]:
        """The event generator.

        Setting ``stop`` ends training after the current iteration exactly like reaching the
        planned length does: a final checkpoint, a last ``Preview`` and ``Finished("stopped")``.
        Closing the generator also stops it (a final checkpoint is written, no more events).
        """
        try:
            yield from self._events(stop)
        finally:
            self.close_swapper()

    def _events(self, stop: threading.Event | None) -> Iterator[Event]:
        started = time.perf_counter()
        try:
            self.setup()
            swapped = self.maybe_swap()
        except Exception as e:  # noqa: BLE001 - every failure becomes an event
            yield _failed(e)
            return
        cfg = self.config
        yield Started(
            device=str(self.device), amp=None if self.amp is None else str(self.amp).removeprefix("torch."),
            parameters=sum(p.numel() for p in self.model.parameters()),
            start_iteration=self.iteration, run_dir=None if self.run_dir is None else str(self.run_dir),
        )
        if swapped is not None:
            yield swapped
        total = None
        if cfg.iterations is not None:
            total = cfg.iterations + (self.start_iteration if self.resume is not None else 0)
        base_elapsed = self.elapsed
        last_ckpt = time.perf_counter()
        # The first preview comes early (a rough prediction soon beats a good one late).
        last_preview = last_ckpt - max(cfg.preview_every_s - FIRST_PREVIEW_S, 0.0)
        reason = "stopped"
        try:
            while (reason := self._done(started) or ("stopped" if stop is not None and stop.is_set() else "")) == "":
                t0 = time.perf_counter()
                swapped = self.maybe_swap()
                if swapped is not None:
                    yield swapped
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = lr = lr_at(cfg, self.iteration - self.start_iteration, t0 - started)
                try:
                    with self.turns:
                        loss = self.step()
                except RuntimeError as e:
                    if not is_oom(e):
                        raise
                    yield Notice(self.shrink_for_oom())
                    continue
                self.iteration += 1
                now = time.perf_counter()
                self.elapsed = base_elapsed + (now - started)
                dt = now - t0
                if self.iteration % cfg.history_every == 0:
                    self.history.append(
                        {"iteration": self.iteration, "loss": loss, "seconds": round(self.elapsed, 3), "lr": lr}
                    )
                eta = None
                if total is not None and self.iteration > self.start_iteration:
                    rate = (now - started) / (self.iteration - self.start_iteration)
                    eta = rate * (total - self.iteration)
                if cfg.minutes is not None:
                    left = 60.0 * cfg.minutes - (now - started)
                    eta = left if eta is None else min(eta, left)
                yield Progress(
                    iteration=self.iteration, loss=loss, lr=lr, seconds=self.elapsed,
                    samples_per_s=self.batch_size * max(cfg.grad_accum, 1) / max(dt, 1e-9),
                    total=total, eta_s=eta, learnt=self.stroke_fit.shares(), learnt_steps=self.stroke_fit.steps,
                )
                if cfg.val_every and self.iteration % cfg.val_every == 0:
                    for val in (self.validate(), self.validate_held_out()):
                        if val is not None:
                            yield val
                if now - last_preview >= cfg.preview_every_s:
                    last_preview = now
                    yield Preview(self.iteration, self.preview_state())
                if now - last_ckpt >= cfg.checkpoint_every_s:
                    last_ckpt = now
                    ck = self.checkpoint()
                    if ck is not None:
                        yield ck
        except GeneratorExit:
            # Stopped by the consumer: keep what was learned, then let the generator close.
            self._safe_checkpoint()
            raise
        except Exception as e:  # noqa: BLE001
            yield _failed(e)
            return
        try:
            ck = self.checkpoint()
        except Exception as e:  # noqa: BLE001
            yield _failed(e)
            return
        if ck is not None:
            yield ck
        yield Preview(self.iteration, self.preview_state())
        yield Finished(self.iteration, self.elapsed, reason, None if self.run_dir is None else str(self.run_dir))

    def _safe_checkpoint(self) -> None:
        try:
            if hasattr(self, "model"):
                self.checkpoint()
        except Exception:  # noqa: BLE001 - never mask the close with a write error
            pass


def _failed(e: BaseException) -> Failed:
    user = isinstance(e, UserInputError)
    msg = str(e) if user else f"{type(e).__name__}: {e}"
    return Failed(message=msg, traceback=traceback.format_exc(), user_error=user)


def train(
    config: TrainConfig,
    source: SnapshotSource,
    run_dir: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Iterator[Event]:
    """Train and yield events. See :class:`Trainer` for the parameters."""
    return Trainer(config, source, run_dir, **kwargs).run()


def infer_config(
    image_shape: Sequence[int],
    paintings: np.ndarray,
    mode: str,
    *,
    channel_axis: int | None = None,
    n_classes: int | None = None,
    wide_context: bool = False,
    textures: bool = False,
    **overrides: Any,
) -> TrainConfig:
    """A :class:`TrainConfig` that fits an image and its paintings (rank, channels, classes).

    ``wide_context``: the input filters of :func:`segstudio.core.config.wide_context_filters`
    (unless ``overrides`` name ``input_filters``; a volume raises :class:`UserInputError`).
    ``textures``: region statistics at :data:`~segstudio.core.config.TEXTURE_SCALE` as well
    (unless ``overrides`` name ``filter_context``), with the inputs standardised
    (``input_norm``, unless named). A config with region statistics (*textures*, or
    ``filter_context`` in ``overrides``) smooths its predictions over
    :data:`~segstudio.core.config.TEXTURE_SMOOTHING` unless ``output_smoothing`` is named (and
    not ``None``); one without does not. Without ``loss`` in ``overrides`` (or with ``loss=None``),
    the mode's first loss (``ce`` exclusive, ``bce`` multi-label, as in the app)."""
    from segstudio.core.data import n_classes_of, spatial_shape
    from segstudio.core.losses import LOSS_NAMES

    if overrides.get("loss") is None:
        overrides["loss"] = LOSS_NAMES[mode][0] if mode in LOSS_NAMES else "ce"
    spatial = spatial_shape(image_shape, channel_axis)
    if wide_context:
        overrides.setdefault("input_filters", wide_context_filters(len(spatial)))
    if textures:
        overrides.setdefault("filter_context", (TEXTURE_SCALE,))
        overrides.setdefault("input_norm", True)
    if overrides.get("output_smoothing") is None:  # a textured network's predictions are smoothed
        overrides["output_smoothing"] = _config.TEXTURE_SMOOTHING if overrides.get("filter_context") else 0.0
    in_ch = 1 if channel_axis is None else int(image_shape[channel_axis])
    k = n_classes_of(mode, paintings, n_classes)
    if k < 1:
        raise UserInputError("nothing is painted yet; paint at least two classes")
    return TrainConfig(mode=mode, n_classes=k, spatial_dims=len(spatial), in_channels=in_ch, **overrides)
