"""What the user chose for the session: mode, classes, weight method and training settings.

Plain state with checks (no Qt, no layers): the controller changes it and tells the other parts.
It also turns the choices into what core needs: a :class:`~segstudio.core.config.TrainConfig`,
the pinned weights, and the fields of a :class:`~segstudio.core.project.Project`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from segstudio.core.annotations import EXCLUSIVE, check_mode
from segstudio.core.config import (
    AUTO_CHOICES,
    DEFAULT_COLORS,
    DEFAULT_PRESET,
    MODEL_PRESETS,
    TrainConfig,
    is_downsample,
    use_level_slices,
    use_textures,
    use_wide_context,
)
from segstudio.core.errors import UserInputError
from segstudio.core.losses import LOSS_NAMES
from segstudio.core.project import Project, ProjectClass, default_classes
from segstudio.core.trainer import infer_config
from segstudio.core.weights import DEFAULT_METHOD

LENGTHS = ("iterations", "minutes", "until stopped")
DEVICES = ("auto", "cpu", "cuda")
PREVIEW_REGIONS = ("view", "image")
#: Key of the settings overrides (expert ``TrainConfig`` fields) in ``project.json``.
OVERRIDES_KEY = "overrides"


@dataclass(frozen=True)
class TrainSettings:
    """What the training group of the widget sets."""

    preset: str = DEFAULT_PRESET
    loss: str | None = None  # None: the first loss of the mode
    device: str = "auto"
    length: str = "iterations"
    iterations: int = 500
    minutes: float = 5.0
    live_preview: bool = True
    preview_every_s: float = 2.0
    preview_region: str = "view"
    probabilities: bool = False  # whole-image predictions also show per-class probabilities
    infer_outlines: bool = True  # learn the labels closed traced outlines imply (core.outlines)
    infer_background: bool = True  # learn unpainted look-alikes of the painted background (core.background)
    wide_context: str = "auto"  # an extra, wider input filter: auto, on, off (core.config.use_wide_context)
    textures: str = "auto"  # region statistics in the input filters: auto, on, off (core.config.use_textures)
    smooth_textures: bool = True  # with textures, predictions smooth the class probabilities (core.config.TEXTURE_SMOOTHING)
    level_slices: str = "auto"  # volumes levelled per z slice: auto, on, off (core.config.use_level_slices)
    downsample: int = 1  # the network works on the image shrunk this many times (core.config.TrainConfig.downsample)


def default_color(k: int, used: Sequence[str] | None = None) -> str:
    """The default colour of class ``k`` (0-based); with ``used``, the first default colour
    not used yet (where there is one)."""
    fallback = DEFAULT_COLORS[k % len(DEFAULT_COLORS)]
    return fallback if used is None else next((c for c in DEFAULT_COLORS if c not in used), fallback)


class Settings:
    """The session's choices; every change is checked, and a refused one raises
    :class:`UserInputError` with the message to show."""

    def __init__(self) -> None:
        self.mode: str = EXCLUSIVE
        self.classes: tuple[ProjectClass, ...] = default_classes()
        self.weight_method: str = DEFAULT_METHOD
        self.train = TrainSettings()
        #: Extra ``TrainConfig`` fields (tests: tiny models; experts: patch/batch).
        self.overrides: dict[str, Any] = {}

    # ------------------------------------------------------------------ classes
    def add_class(self, name: str | None = None, color: str | None = None) -> int:
        """Append a class; returns its index."""
        k = len(self.classes)
        color = color or default_color(k, [c.color for c in self.classes])
        self.classes = (*self.classes, ProjectClass(name or f"class {k + 1}", color))
        return k

    def remove_class(self, index: int) -> None:
        """Remove class ``index`` (later classes move down by one)."""
        if len(self.classes) <= 1:
            raise UserInputError("at least one class is needed")
        self._check_index(index)
        self.classes = self.classes[:index] + self.classes[index + 1:]

    def rename_class(self, index: int, name: str) -> bool:
        """Rename class ``index``; ``False`` when nothing changed (empty name, same name)."""
        name = name.strip()
        if not name or not 0 <= index < len(self.classes) or self.classes[index].name == name:
            return False
        self._update(index, name=name)
        return True

    def set_class_color(self, index: int, color: str) -> bool:
        if not 0 <= index < len(self.classes):
            return False
        self._update(index, color=color)
        return True

    def set_pin(self, index: int, weight: float | None) -> bool:
        """Pin class ``index``'s weight (``None`` unpins)."""
        if not 0 <= index < len(self.classes):
            return False
        if weight is not None and (not math.isfinite(weight) or weight < 0):
            raise UserInputError("a pinned weight must be a number >= 0")
        self._update(index, pinned=None if weight is None else float(weight))
        return True

    def pins(self) -> dict[int, float]:
        """``{class_index: weight}`` of the pinned classes."""
        return {i: c.pinned for i, c in enumerate(self.classes) if c.pinned is not None}

    def adopt(self, names: Sequence[str] | None, count: int) -> None:
        """Take the classes of adopted paint layers: their ``names`` (kept colours), or at least
        ``count`` classes."""
        if names:
            old = self.classes
            self.classes = tuple(ProjectClass(str(n), old[i].color if i < len(old) else default_color(i))
                                 for i, n in enumerate(names))
        while len(self.classes) < count:
            self.add_class()

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.classes):
            raise UserInputError(f"there is no class {index + 1}")

    def _update(self, index: int, **changes: Any) -> None:
        classes = list(self.classes)
        classes[index] = replace(classes[index], **changes)
        self.classes = tuple(classes)

    # ------------------------------------------------------------------ mode and training
    def set_mode(self, mode: str) -> bool:
        """Switch the mode (a loss of the other mode goes back to the default); ``False``
        when it is the mode already."""
        check_mode(mode)
        if mode == self.mode:
            return False
        self.mode = mode
        if self.train.loss is not None and self.train.loss not in LOSS_NAMES[mode]:
            self.train = replace(self.train, loss=None)
        return True

    def loss_name(self) -> str:
        loss = self.train.loss
        return loss if loss in LOSS_NAMES[self.mode] else LOSS_NAMES[self.mode][0]

    @property
    def weight_clamp(self) -> tuple[float, float]:
        """The weight range the trainer clamps to (the config's, unless overridden)."""
        return tuple(self.overrides.get("weight_clamp", TrainConfig.weight_clamp))  # type: ignore[return-value]

    def build_config(self, image_shape: Sequence[int], *, channel_axis: int | None,
                     spacing: tuple[float, ...], unevenness: float | None = None,
                     wide_context: bool | None = None, texture_gain: float | None = None,
                     textures: bool | None = None, slice_unevenness: float | None = None,
                     level_slices: bool | None = None) -> TrainConfig:
        """The ``TrainConfig`` for an image (its shape, channel axis, spacing) and the classes.

        *Wide context* follows the setting (:func:`~segstudio.core.config.use_wide_context`,
        ``auto`` by the painted background's ``unevenness``), unless ``wide_context`` decides it;
        *textures* likewise (:func:`~segstudio.core.config.use_textures`, ``auto`` by the
        paintings' ``texture_gain``), unless ``textures`` decides it; *level slices* likewise
        (:func:`~segstudio.core.config.use_level_slices`, ``auto`` by ``slice_unevenness``),
        unless ``level_slices`` decides it. The one that does not apply to the image's
        dimensions (wide context on a volume, level slices on a 2-D image) is off, whatever the
        setting says: the widget greys it out there, and the setting waits for an image it
        applies to.
        """
        s = self.train
        dims = len(spacing)
        if level_slices is None:
            level_slices = use_level_slices(s.level_slices if dims == 3 else "off", dims, slice_unevenness)
        if wide_context is None:
            wide_context = use_wide_context(s.wide_context if dims == 2 else "off", dims, unevenness)
        if textures is None:
            textures = use_textures(s.textures, texture_gain)
        kw: dict[str, Any] = {
            "class_names": tuple(c.name for c in self.classes),
            "class_colors": tuple(c.color for c in self.classes),
            "features": MODEL_PRESETS[s.preset],
            "loss": self.loss_name(),
            "device": s.device,
            "weight_method": self.weight_method,
            "pinned_weights": tuple(sorted(self.pins().items())),
            "spacing": spacing,
            "iterations": s.iterations if s.length == "iterations" else None,
            "minutes": s.minutes if s.length == "minutes" else None,
            "preview_every_s": s.preview_every_s,
            "infer_outlines": s.infer_outlines,
            "infer_background": s.infer_background,
            "wide_context": wide_context,
            "textures": textures,
            "level_slices": level_slices,
            "downsample": s.downsample,
            "output_smoothing": None if s.smooth_textures else 0.0,  # None: as textures decide
            **self.overrides,
        }
        # The paintings are not read: the number of classes is given.
        return infer_config(image_shape, None, self.mode, channel_axis=channel_axis,  # type: ignore[arg-type]
                            n_classes=len(self.classes), **kw)

    # ------------------------------------------------------------------ projects
    def project_fields(self) -> dict[str, Any]:
        """The fields of a :class:`Project` these settings fill."""
        plain = {k: v for k, v in self.overrides.items() if isinstance(v, (int, float, str, bool, list, tuple))}
        return {"mode": self.mode, "classes": self.classes, "weight_method": self.weight_method,
                "training": {**asdict(self.train), OVERRIDES_KEY: plain}}

    def load_project(self, project: Project) -> None:
        """Take mode, classes, weight method and training settings from a project."""
        self.mode = project.mode
        self.classes = tuple(project.classes) or self.classes
        self.weight_method = project.weight_method
        known = {f.name for f in fields(TrainSettings)}
        train = {k: v for k, v in project.training.items() if k in known}
        for key, read in AUTO_CHOICES.items():  # wide context was a checkbox: ticked "on", unticked "auto"
            if key in train:
                try:
                    train[key] = read(train[key])
                except UserInputError:  # a hand-edited value: the default, the project still opens
                    train[key] = "auto"
        if not is_downsample(train.get("downsample", 1)):
            train.pop("downsample", None)  # a hand-edited value: none
        self.train = replace(TrainSettings(), **train)
        saved: Mapping[str, Any] = project.training.get(OVERRIDES_KEY, {})
        self.overrides.update({k: tuple(v) if isinstance(v, list) else v for k, v in dict(saved).items()})
