"""Training configuration: one frozen dataclass that holds every default.

A run directory's ``config.json`` is :meth:`TrainConfig.to_dict`; it is all that is needed to
rebuild the model and its input normalisation.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segstudio.core.annotations import EXCLUSIVE, check_mode
from segstudio.core.background import UNEVEN_BACKGROUND
from segstudio.core.data import (
    DEFAULT_IMAGE_FLOOR,
    DEFAULT_PERCENTILES,
    AugmentConfig,
    Normalization,
    check_level_slices,
)
from segstudio.core.errors import UserInputError
from segstudio.core.outlines import DEFAULT_HALO
from segstudio.core.weights import DEFAULT_CLAMP, DEFAULT_METHOD

CONFIG_VERSION = 1

#: Model size presets shown in the GUI: channels per U-Net level.
MODEL_PRESETS: dict[str, tuple[int, ...]] = {
    "fast": (8, 16),
    "balanced": (16, 32, 64, 128),
    "accurate": (32, 64, 128, 256),
}
DEFAULT_PRESET = "fast"

#: Default scales of the fixed input filters per image rank (see :mod:`segstudio.core.features`).
#: Measured on sparse strokes (benchmarks/RESULTS.md): filters help, but large scales (4, 8)
#: widen the context the net can use to tell painted background (far from objects) from
#: everything else, which paints a halo around objects; σ = 1 measured best in 2D, σ = 1, 2 in 3D.
DEFAULT_INPUT_FILTERS: dict[int, tuple[float, ...]] = {2: (1.0,), 3: (1.0, 2.0)}
#: The extra filter scale of *wide context* (:func:`wide_context_filters`): for a 2D image whose
#: background varies more than the objects' contrast (benchmarks/RESULTS.md, *A wider filter for
#: uneven backgrounds*: the *dim* family in 2D 0.79 -> 0.86 with casual strokes; worse on
#: textures and on isolated blobs, so not for every image; worse in 3D, so 2D only).
WIDE_CONTEXT_SIGMA = 4.0
#: The choices of *wide context*: ``auto`` (the default) uses it for a 2D painting whose
#: background strokes vary in brightness more than the classes differ from them
#: (:func:`use_wide_context`), ``on`` and ``off`` always and never.
WIDE_CONTEXT_CHOICES = ("auto", "on", "off")


def wide_context_choice(value: bool | str | None) -> str:
    """The *wide context* choice a setting names (see :data:`WIDE_CONTEXT_CHOICES`).

    ``True`` is ``"on"`` and ``False`` or ``None`` ``"auto"``: projects written before ``auto``
    existed stored a checkbox, unticked by default.

    Raises
    ------
    UserInputError
        For anything else.
    """
    if value is True:
        return "on"
    if value is False or value is None:
        return "auto"
    if isinstance(value, str) and value.lower() in WIDE_CONTEXT_CHOICES:
        return value.lower()
    raise UserInputError(f"wide context must be one of {', '.join(WIDE_CONTEXT_CHOICES)}, got {value!r}")


def use_wide_context(choice: bool | str | None, spatial_dims: int, unevenness: float | None) -> bool:
    """Whether a run uses *wide context* (:func:`wide_context_filters`).

    ``"on"``: always (a volume then raises in :func:`wide_context_filters`). ``"auto"``: on a 2D
    image whose painted background varies more than the classes differ from it, that is when
    ``unevenness`` (:func:`segstudio.core.background.background_unevenness` of the paintings;
    ``None``: not known) exceeds :data:`~segstudio.core.background.UNEVEN_BACKGROUND`. On the
    quality matrix's 2D paintings (seeds 0-2) that is every painting of the uneven *dim* family
    (1.17-64) and two vessel paintings of 24 (1.01, 1.20); nuclei, cells and tissue stay at most
    0.52 (benchmarks/RESULTS.md, *Wide context on its own*).
    """
    choice = wide_context_choice(choice)
    if choice != "auto":
        return choice == "on"
    return spatial_dims == 2 and unevenness is not None and unevenness > UNEVEN_BACKGROUND


def wide_context_filters(spatial_dims: int) -> tuple[float, ...]:
    """The input filter scales of *wide context*: the 2D defaults plus :data:`WIDE_CONTEXT_SIGMA`.

    Raises
    ------
    UserInputError
        For a volume (measured worse there).
    """
    if spatial_dims != 2:
        raise UserInputError("wide context is for 2D images (on volumes it measured worse): turn it off")
    return (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)


def has_wide_context(input_filters: Sequence[float], spatial_dims: int) -> bool:
    """Whether a run's input filters are *wide context*'s (:func:`wide_context_filters`)."""
    return spatial_dims == 2 and tuple(float(s) for s in input_filters) == wide_context_filters(2)


def uneven_background(wide_context: bool, level_slices: bool, spatial_dims: int) -> bool:
    """Whether a run takes its image's background for uneven: *wide context* on a 2-D image,
    *level slices* on a volume (each as the run decided it: a trainer from its config, via
    :func:`has_wide_context`; the app's overlay from the settings before a run). The background
    rule then reads the image against its local background
    (:data:`segstudio.core.background.UNEVEN_SIGMA`)."""
    return (spatial_dims == 2 and bool(wide_context)) or (spatial_dims == 3 and bool(level_slices))


#: The region scale of *textures* (pixels along the finest axis): the input filters' local
#: mean, standard deviation and structure-tensor anisotropy over about this radius
#: (:mod:`segstudio.core.features`). Measured on the quality matrix's textured tissue (every
#: habit, 2D and 3D): foreground Dice +0.144 on average on seed 0 (both modes) and +0.216 on
#: seed 1 (exclusive), at least the forest on every class in 13 of seed 0's 20 cells (7
#: without); forced on the object families (nuclei, cells, dim, vessels) -0.01 on average, so
#: *auto* turns it on only where the paintings say textures (:func:`use_textures`; benchmarks/RESULTS.md, *Region statistics for
#: textures*).
TEXTURE_SCALE = 8.0
#: With *textures* on, predictions smooth the class probabilities over this σ (pixels along
#: the finest axis; ``TrainConfig.output_smoothing``): a texture class holds for a region, and
#: a few strokes teach the network grain-scale decisions that leave a mosaic of classes at the
#: scale of the grains (benchmarks/RESULTS.md, *Smoothing textured predictions*).
TEXTURE_SMOOTHING = 4.0
#: The *texture gain* above which *textures* on ``auto`` is on
#: (:func:`segstudio.core.textures.texture_gain`). On the quality matrix's exclusive paintings
#: of seeds 0-5 (outline, casual, sloppy; 2D and 3D) it was above 0.3 on 31 of 36 textured
#: tissue paintings, 9 of 36 *dim* ones and none of the 108 nuclei, cells and vessel ones
#: (benchmarks/RESULTS.md, *Region statistics for textures*).
TEXTURE_GAIN = 0.3
#: The choices of *textures*: ``auto`` (the default) uses them when the paintings' classes
#: differ more in texture than in brightness (:func:`use_textures`), ``on`` and ``off`` always
#: and never.
TEXTURES_CHOICES = ("auto", "on", "off")


def _auto_on_off(value: bool | str | None, name: str) -> str:
    """An auto / on / off choice a setting names: ``True`` is ``"on"``, ``False`` ``"off"``,
    ``None`` ``"auto"``; anything else raises :class:`UserInputError` naming ``name``."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and value.lower() in ("auto", "on", "off"):
        return value.lower()
    raise UserInputError(f"{name} must be one of auto, on, off, got {value!r}")


def textures_choice(value: bool | str | None) -> str:
    """The *textures* choice a setting names (see :data:`TEXTURES_CHOICES`): ``True`` is
    ``"on"``, ``False`` ``"off"``, ``None`` ``"auto"``.

    Raises
    ------
    UserInputError
        For anything else.
    """
    return _auto_on_off(value, "textures")


def use_textures(choice: bool | str | None, gain: float | None) -> bool:
    """Whether a run adds the region statistics (:data:`TEXTURE_SCALE`).

    ``"on"`` / ``"off"``: always / never. ``"auto"``: when ``gain``
    (:func:`segstudio.core.textures.texture_gain` of the paintings; ``None``: not known) exceeds
    :data:`TEXTURE_GAIN`.
    """
    choice = textures_choice(choice)
    if choice != "auto":
        return choice == "on"
    return gain is not None and gain > TEXTURE_GAIN


#: The *slice unevenness* (:func:`segstudio.core.background.slice_unevenness`) above which
#: *level slices* on ``auto`` is on. On the quality matrix's 3D paintings of seeds 0-5 (outline,
#: casual, sloppy, corrections) it was 0.99-23 on the *dim* family, whose background runs along
#: z (all but two above 1.1: seed 4 casual 1.10, seed 5 sloppy 0.99), at most 1.08 on tissue
#: (seed 0's corrections painting; the others at most 0.83), where levelling measured worse
#: (background Dice down in every seed-0 cell), and at most 0.19 on nuclei, cells and vessels
#: (benchmarks/RESULTS.md, *Level slices*). The margin above tissue is thin.
SLICE_UNEVENNESS = 1.1
#: The choices of *level slices*: ``auto`` (the default) levels a volume whose background's
#: level runs along z more than the classes differ (:func:`use_level_slices`), ``on`` and
#: ``off`` always and never.
LEVEL_SLICES_CHOICES = ("auto", "on", "off")


def level_slices_choice(value: bool | str | None) -> str:
    """The *level slices* choice a setting names (see :data:`LEVEL_SLICES_CHOICES`): ``True`` is
    ``"on"``, ``False`` ``"off"``, ``None`` ``"auto"``.

    Raises
    ------
    UserInputError
        For anything else.
    """
    return _auto_on_off(value, "level slices")


def use_level_slices(choice: bool | str | None, spatial_dims: int, unevenness: float | None) -> bool:
    """Whether a run levels its volumes per slice (:func:`segstudio.core.data.slice_offsets`).

    ``"on"``: always (a 2D image then raises in :class:`TrainConfig`). ``"off"``: never.
    ``"auto"``: on a volume whose ``unevenness``
    (:func:`segstudio.core.background.slice_unevenness` of the paintings; ``None``: not known)
    exceeds :data:`SLICE_UNEVENNESS`.
    """
    choice = level_slices_choice(choice)
    if choice != "auto":
        return choice == "on"
    return spatial_dims == 3 and unevenness is not None and unevenness > SLICE_UNEVENNESS


#: The training settings that are auto / on / off choices, each with the function that reads
#: one from what a user, a project or a command line gave (:func:`wide_context_choice`,
#: :func:`textures_choice`, :func:`level_slices_choice`; each raises :class:`UserInputError`
#: for anything else).
AUTO_CHOICES: dict[str, Callable[[bool | str | None], str]] = {
    "wide_context": wide_context_choice,
    "textures": textures_choice,
    "level_slices": level_slices_choice,
}


#: How the input filters' derivatives are scaled: per physical unit (new runs) or per voxel
#: (runs written before; see :mod:`segstudio.core.features`).
FILTER_UNITS: tuple[str, ...] = ("physical", "voxel")

#: What the pairwise regulariser's gate compares neighbours by
#: (:class:`segstudio.core.regularizers.PairwiseAffinityLoss`).
PAIRWISE_GUIDES: tuple[str, ...] = ("intensity", "texture")

#: Default U-Net normalisation. InstanceNorm normalises every patch by its own statistics and
#: so discards absolute intensity, the strongest cue sparse strokes give; BatchNorm keeps it
#: (benchmarks/RESULTS.md: 3D nucleus Dice 0.35 -> 0.50, 2D 0.74 -> 0.82 at equal steps).
DEFAULT_NORM = "batch"

#: The fields that define the network's architecture (and so which weights fit it).
NETWORK_FIELDS: tuple[str, ...] = (
    "model", "features", "input_filters", "filter_units", "filter_texture", "filter_context", "input_norm",
    "norm", "downsample",
)

#: The largest *downsample* factor accepted (:attr:`TrainConfig.downsample`).
MAX_DOWNSAMPLE = 8


def is_downsample(value: Any) -> bool:
    """Whether ``value`` is a *downsample* factor (:attr:`TrainConfig.downsample`): a whole
    number, not a bool, from 1 to :data:`MAX_DOWNSAMPLE` (what a project may have stored is
    read through this too)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and 1 <= value <= MAX_DOWNSAMPLE


def reduction_factors(downsample: int, spatial_dims: int, spacing: Sequence[float] | None) -> tuple[int, ...]:
    """Per spatial axis, the factor by which a run with *downsample* ``downsample`` shrinks the
    image before its network (:attr:`TrainConfig.downsample`).

    The finest axes shrink by ``downsample``; a coarser axis by as much as keeps its voxels no
    larger than ``downsample`` times the finest spacing (rounded down, at least 1), so that a
    volume of spacing (2, 0.5, 0.5) shrinks by (1, 2, 2) at 2, (1, 4, 4) at 4 and (2, 8, 8) at
    8: the shrunk voxels approach a cube, as nnU-Net's resampling to a target spacing does.
    """
    if downsample == 1:
        return (1,) * spatial_dims
    given = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * spatial_dims
    finest = min(given)
    return tuple(max(1, int(downsample * finest / s + 1e-6)) for s in given)

#: Default training patch per image rank.
DEFAULT_PATCH: dict[int, tuple[int, ...]] = {2: (128, 128), 3: (16, 64, 64)}
#: 2D batch 4: twice the steps of batch 8 in the same time, which measured better in 60 s.
DEFAULT_BATCH: dict[int, int] = {2: 4, 3: 2}

#: Default class colours (napari-friendly, distinguishable, colour-blind aware first three).
DEFAULT_COLORS: tuple[str, ...] = (
    "#3a86ff", "#ffbe0b", "#fb5607", "#8338ec", "#06d6a0", "#ef476f", "#118ab2", "#bdb2ff",
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data.

    Attributes
    ----------
    mode
        ``"exclusive"`` or ``"multilabel"``.
    n_classes
        Number of classes (exclusive: K of values 1..K; multilabel: channels).
    class_names, class_colors
        Display names and ``#rrggbb`` colours, one per class.
    spatial_dims, in_channels
        Image rank (2 or 3) and channel count.
    spacing
        Physical voxel size per spatial axis; drives anisotropic pooling.
    downsample
        The network works on the image shrunk by this factor along its finest axes (coarser
        ones as :func:`reduction_factors` says; a mean over blocks) and its logits are enlarged
        back (linear interpolation), inside the model: training learns at the painted pixels
        of the full-size image, and predictions, previews and exports come out at full size.
        For objects much larger than the network's reach (a nucleus 100 px across; the
        network sees about 23 px, ``predictor.receptive_radius``): on 2-D nuclei 96-160 px
        across, 4 raised foreground Dice in 10 of 12 cells and instance F1 in 9 (casual
        strokes 0.37 -> 0.98); on nuclei 50-80 px across 2 was mixed (F1 better in 4 of
        12 cells, worse in 6; benchmarks/RESULTS.md, *Downsample, built in*). A training
        step takes 1.1-1.3× (2) and 2.2-2.6× (4) as long on a CPU, whole-image prediction
        6-14× less (``benchmarks/downsample_speed.py``). Every size in pixels of a run with a
        factor (``patch_size``, the input filters, *textures* and *smoothing*) is in pixels of
        the shrunk image; the *auto* choices (wide context, textures, level slices) are still
        read from the paintings at full size. 1: off.
    model, features
        Registered model name and channels per level.
    input_filters
        Scales (pixels along the finest axis) of the fixed multiscale filters
        (:mod:`segstudio.core.features`) that the network sees next to the image; ``()`` = the
        image only; ``None`` = :data:`DEFAULT_INPUT_FILTERS` for the rank. Part of the model:
        stored in ``config.json``, applied inside the network.
    filter_units
        Derivatives of the input filters per ``"physical"`` unit (default) or per ``"voxel"``
        (runs written before; see :mod:`segstudio.core.features`).
    filter_texture
        Add the Hessian's anisotropy (ridges and fibres against grains) to every input filter
        scale: one more channel per scale (:mod:`segstudio.core.features`). Off: level on the
        quality matrix (benchmarks/RESULTS.md, *Ridge filters*).
    filter_context
        Region scales (pixels along the finest axis) of the input filters: per scale the local
        mean, standard deviation and structure-tensor anisotropy, three channels that are the
        same for a texture's grains and its gaps (:mod:`segstudio.core.features`); ``()`` =
        none.
    input_norm
        Standardise the input filters' channels with a BatchNorm (running statistics, no learnt
        scale) before the network, so that channels of small spread (the region statistics)
        start on an equal footing with the image; on with *textures*, where without it the
        network told the textures apart only after 120-250 steps (benchmarks/RESULTS.md,
        *Standardised inputs with textures*). Part of the model; runs written before it have
        it off.
    norm
        Normalisation layer of the U-Net (``"instance"``, ``"batch"`` or ``"none"``).
    patch_size, batch_size
        Training patch (per spatial axis) and patches per step; ``None`` = rank default.
    iterations, minutes
        Stop after this many iterations or minutes, whichever first; both ``None`` = until
        stopped.
    lr, weight_decay, warmup, min_lr_ratio
        AdamW with linear warm-up then cosine decay to ``lr * min_lr_ratio`` over the planned
        length (iterations or minutes); constant after warm-up when training until stopped.
    loss, weight_method, weight_clamp, pinned_weights
        Loss name (see :mod:`segstudio.core.losses`) and class-weight rules.
    device, amp, grad_accum
        ``auto``/``cpu``/``cuda``/``mps``; mixed precision on CUDA; gradient accumulation steps.
    seed
        Seed for numpy and torch (deterministic on CPU).
    random_fraction, augment, percentiles
        Sampler and augmentation settings; normalisation percentiles.
    level_slices
        Volumes: level each image per slice before the percentile scaling
        (:func:`segstudio.core.data.slice_offsets`), in training and in every prediction
        (the offsets are computed per image, as the percentiles). Runs written before it
        have it off.
    image_floor
        Across several images, patches are drawn from each in proportion to its painted pixels,
        but at least this fraction of an equal share (:class:`~segstudio.core.data.PatchSampler`).
    infer_outlines, outline_halo, inferred_weight
        Exclusive mode: also learn what closed traced outlines imply (their inside, and a
        background band ``outline_halo`` pixels outside; :mod:`segstudio.core.outlines`), as a
        second loss term with its own class weights, scaled by ``inferred_weight``. Runs
        written before this existed load with it off.
    infer_background
        Also learn unpainted pixels that look like the painted background as background
        (:mod:`segstudio.core.background`), in the same second loss term.
    pairwise_weight, pairwise_radius, pairwise_sigma, pairwise_guide
        Weight of the image-gated pairwise regulariser on every pixel
        (:class:`segstudio.core.regularizers.PairwiseAffinityLoss`; 0 = off), its in-plane window
        radius in pixels, its gate's scale (normalised image units) and what the gate compares:
        ``"intensity"`` or the local ``"texture"`` statistics. Off (weight 0): level on the
        quality matrix with either guide (benchmarks/RESULTS.md, *The pairwise regulariser with
        a texture guide*).
    output_smoothing
        σ (pixels along the finest axis, per axis by the spacing) over which predictions, live
        previews and exports smooth the class probabilities (0: not at all;
        :meth:`segstudio.core.features.FilteredNetwork.smooth`); training learns the network's
        own logits. :func:`segstudio.core.trainer.infer_config` sets
        :data:`TEXTURE_SMOOTHING` with *textures*. Runs written before it have 0.
    ema_decay, ema_warmup
        Exponential moving average of the weights (per step; 0 = off). Live previews and the
        saved model use the averaged weights, which change smoothly while training goes on.
        At step ``n`` the average moves by ``1 - d`` towards the current weights, with
        ``d = min(ema_decay, (1 + n) / (ema_warmup + n))``: the average is short at first, so
        that the random start soon weighs nothing, and lengthens with ``n``, the sooner the
        smaller ``ema_warmup`` is (> 1; with 3, ``d`` is 0.75 at step 5, 0.9 at step 17 and
        reaches ``ema_decay`` 0.95 at step 37; with 10, the value before 2026-12-02 and timm's,
        it took until step 170, and the early previews swung with the steps;
        benchmarks/RESULTS.md, *Early previews in 3D*).
    checkpoint_every_s, preview_every_s, val_every, history_every
        Timings of side effects.
    num_threads
        CPU threads for torch (``None`` = torch's default).
    normalization
        Statistics of the (first) training image, filled in by the trainer.
    """

    mode: str = EXCLUSIVE
    n_classes: int = 2
    class_names: tuple[str, ...] = ()
    class_colors: tuple[str, ...] = ()
    spatial_dims: int = 2
    in_channels: int = 1
    spacing: tuple[float, ...] | None = None
    downsample: int = 1
    model: str = "unet"
    features: tuple[int, ...] = MODEL_PRESETS[DEFAULT_PRESET]
    input_filters: tuple[float, ...] | None = None
    filter_units: str = "physical"
    filter_texture: bool = False
    filter_context: tuple[float, ...] = ()
    input_norm: bool = False
    norm: str = DEFAULT_NORM
    patch_size: tuple[int, ...] | None = None
    batch_size: int | None = None
    iterations: int | None = 500
    minutes: float | None = None
    lr: float = 5e-3
    weight_decay: float = 1e-4
    warmup: int = 5
    min_lr_ratio: float = 0.05
    loss: str = "ce"
    weight_method: str = DEFAULT_METHOD
    weight_clamp: tuple[float, float] = DEFAULT_CLAMP
    pinned_weights: tuple[tuple[int, float], ...] = ()
    device: str = "auto"
    amp: bool = True
    grad_accum: int = 1
    seed: int | None = None
    random_fraction: float = 0.1
    image_floor: float = DEFAULT_IMAGE_FLOOR
    infer_outlines: bool = True
    outline_halo: tuple[int, int] | None = DEFAULT_HALO
    inferred_weight: float = 1.0
    infer_background: bool = True
    pairwise_weight: float = 0.0
    pairwise_radius: int = 2
    pairwise_sigma: float = 0.1
    pairwise_guide: str = "intensity"
    output_smoothing: float = 0.0
    ema_decay: float = 0.95
    ema_warmup: float = 3.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    level_slices: bool = False
    checkpoint_every_s: float = 30.0
    preview_every_s: float = 2.0
    val_every: int = 50
    history_every: int = 1
    num_threads: int | None = None
    normalization: Normalization | None = None
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.spatial_dims not in (2, 3):
            raise UserInputError(f"images must be 2D or 3D, got {self.spatial_dims} spatial dimensions")
        filters = DEFAULT_INPUT_FILTERS[self.spatial_dims] if self.input_filters is None else self.input_filters
        object.__setattr__(self, "input_filters", tuple(float(s) for s in filters))
        object.__setattr__(self, "filter_context", tuple(float(s) for s in self.filter_context))
        if self.filter_units not in FILTER_UNITS:
            raise UserInputError(
                f"filter_units must be one of {', '.join(FILTER_UNITS)}, got {self.filter_units!r}"
            )
        if not self.inferred_weight >= 0:
            raise UserInputError(f"inferred_weight must be a number >= 0, got {self.inferred_weight}")
        if not self.output_smoothing >= 0:
            raise UserInputError(f"output_smoothing must be a number >= 0, got {self.output_smoothing}")
        if not self.pairwise_weight >= 0:
            raise UserInputError(f"pairwise_weight must be a number >= 0, got {self.pairwise_weight}")
        if self.pairwise_guide not in PAIRWISE_GUIDES:
            raise UserInputError(f"pairwise_guide must be {' or '.join(PAIRWISE_GUIDES)}, got {self.pairwise_guide!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserInputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.ema_warmup > 1.0:
            raise UserInputError(f"ema_warmup must be a number > 1, got {self.ema_warmup}")
        if self.n_classes < 1:
            raise UserInputError("at least one class is needed")
        if not is_downsample(self.downsample):
            raise UserInputError(f"downsample must be a whole number from 1 to {MAX_DOWNSAMPLE}, got {self.downsample!r}")
        object.__setattr__(self, "downsample", int(self.downsample))
        if self.level_slices:
            check_level_slices(self.spatial_dims)
        if self.patch_size is not None and len(self.patch_size) != self.spatial_dims:
            raise UserInputError(
                f"--patch needs {self.spatial_dims} numbers for a {self.spatial_dims}D image, "
                f"got {len(self.patch_size)}"
            )
        if self.iterations is not None and self.iterations < 0:
            raise UserInputError("iterations must be >= 0")

    @property
    def patch(self) -> tuple[int, ...]:
        """The training patch size (explicit or the rank default)."""
        return tuple(self.patch_size) if self.patch_size else DEFAULT_PATCH[self.spatial_dims]

    @property
    def reduction(self) -> tuple[int, ...]:
        """Per spatial axis, the factor the network's input is shrunk by (:attr:`downsample`,
        :func:`reduction_factors`); all 1 without."""
        return reduction_factors(self.downsample, self.spatial_dims, self.spacing)

    @property
    def network_spacing(self) -> tuple[float, ...] | None:
        """The voxel size of the image the network sees: :attr:`spacing` times
        :attr:`reduction` (``None`` where no spacing was given: the shrink is then the same on
        every axis)."""
        if self.spacing is None:
            return None
        return tuple(float(s) * f for s, f in zip(self.spacing, self.reduction))

    @property
    def sample_patch(self) -> tuple[int, ...]:
        """The training patch cut from the full-size image: :attr:`patch` (the network's, in
        pixels of the shrunk image) times :attr:`reduction`."""
        return tuple(p * f for p, f in zip(self.patch, self.reduction))

    @property
    def batch(self) -> int:
        """The batch size (explicit or the rank default)."""
        return int(self.batch_size) if self.batch_size else DEFAULT_BATCH[self.spatial_dims]

    @property
    def names(self) -> tuple[str, ...]:
        """Class names, filled with ``class k`` where none was given."""
        given = list(self.class_names)
        return tuple(given[i] if i < len(given) else f"class {i + 1}" for i in range(self.n_classes))

    @property
    def colors(self) -> tuple[str, ...]:
        """Class colours, filled from :data:`DEFAULT_COLORS`."""
        given = list(self.class_colors)
        return tuple(
            given[i] if i < len(given) else DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
            for i in range(self.n_classes)
        )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``config.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored, newer versions refused."""
        version = int(data.get("version", CONFIG_VERSION))
        if version > CONFIG_VERSION:
            raise UserInputError(
                f"this run was written by a newer segstudio (config version {version}); please upgrade"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        tuple_fields = (
            "class_names", "class_colors", "features", "patch_size", "weight_clamp", "percentiles", "spacing",
            "input_filters", "outline_halo", "filter_context",
        )
        # Runs written before input filters existed had none (whatever today's default is).
        kw.setdefault("input_filters", ())
        kw.setdefault("norm", "instance")
        kw.setdefault("filter_units", "voxel")
        kw.setdefault("filter_texture", False)
        kw.setdefault("infer_outlines", False)
        kw.setdefault("infer_background", False)
        kw.setdefault("ema_decay", 0.0)
        for key in tuple_fields:
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        if "pinned_weights" in kw:
            kw["pinned_weights"] = tuple((int(i), float(w)) for i, w in kw["pinned_weights"])
        if isinstance(kw.get("augment"), Mapping):
            kw["augment"] = AugmentConfig(**kw["augment"])
        norm = kw.get("normalization")
        if isinstance(norm, Mapping):
            kw["normalization"] = Normalization(
                percentiles=tuple(norm["percentiles"]), lo=tuple(norm["lo"]), hi=tuple(norm["hi"]),
                offsets=tuple(tuple(float(v) for v in o) for o in norm.get("offsets", ())),
            )
        return cls(**kw)
