"""Labels the paintings imply: every implied-label rule in one place.

Two rules, each switched in the training config and each learnt in the trainer's second loss
term (never written into the user's paintings):

* ``infer_outlines``: what closed traced outlines imply (:mod:`segstudio.core.outlines`);
* ``infer_background``: unpainted pixels that look like the painted background
  (:mod:`segstudio.core.background`); where both apply, the outline rule wins. With it, object
  paint that lies on such background (a stroke run on past an object's edge:
  :func:`~segstudio.core.background.spilled_paint`, read with it:
  :func:`~segstudio.core.background.background_and_spill`) is left out of what is learnt from the
  paint (:data:`SPILLED`, :func:`learnt_paint`); it is never relabelled.

Each rule is its own loss term with class weights from its own counts: the background rule
labels thousands of pixels of one class, and pooled with the outline rule's fills it would
weigh the fills up and the background down. The trainer learns from :func:`implied_labels`,
and the app overlays :func:`merged` of the same result when the user asks to see what was
inferred, so what is shown is what is learnt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segstudio.core.annotations import EXCLUSIVE, UNPAINTED, stack_multilabel
from segstudio.core.background import background_and_spill, smoothed_intensity
from segstudio.core.outlines import DEFAULT_HALO, infer_from_outlines, infer_multilabel

__all__ = ["RULES", "SPILLED", "implied_labels", "learnt_paint", "merged", "rules_on"]


#: The rules, in the order the trainer stacks their targets (the first wins where they overlap).
RULES: tuple[str, ...] = ("outlines", "background")
#: The key of :func:`implied_labels`'s result that holds the spilled object paint (a boolean
#: mask of the spatial shape, or ``None``), with the background rule on.
SPILLED = "spilled"


def rules_on(outlines: bool, background: bool) -> tuple[str, ...]:
    """The names of the rules that are on, in :data:`RULES` order."""
    return tuple(r for r, on in zip(RULES, (outlines, background)) if on)


def implied_labels(
    paintings: np.ndarray,
    image: np.ndarray,
    mode: str,
    *,
    channel_axis: int | None = None,
    outlines: bool = True,
    background: bool = False,
    halo: tuple[int, int] | None = DEFAULT_HALO,
    smoothed: np.ndarray | None = None,
    offsets: Sequence[Sequence[float]] = (),
    textures: bool = False,
    uneven: bool = False,
) -> dict[str, np.ndarray | None]:
    """What each rule that is on infers for the unpainted pixels.

    Parameters
    ----------
    paintings
        Exclusive ``(*spatial)`` (``0`` unpainted, ``1..K``) or multi-label ``(C, *spatial)``
        (``0``/``1`` present/``2`` absent), or a list of per-class layers.
    image
        The image (the spatial shape, plus ``channel_axis`` if it has channels).
    mode
        ``"exclusive"`` or ``"multilabel"``.
    outlines, background
        Which rules are on (``TrainConfig.infer_outlines``, ``TrainConfig.infer_background``).
    halo
        The outline rule's background band (``TrainConfig.outline_halo``).
    smoothed
        :func:`~segstudio.core.background.smoothed_intensity` of ``image`` (with the
        ``offsets`` and ``uneven`` given here), if the caller keeps it (it depends on the image
        only); it then carries them.
    offsets
        A volume's per-slice offsets (*level slices*,
        :attr:`segstudio.core.data.Normalization.offsets`): the background rule reads the
        levelled image, as the network does (ignored with ``smoothed``).
    textures
        *Textures* is on for this image (``TrainConfig.filter_texture``): the background rule's
        threshold stays nearer the painted background
        (:func:`~segstudio.core.background.towards_objects`).
    uneven
        The run takes the background for uneven (*wide context* on a 2-D image, *level slices*
        on a volume; :func:`~segstudio.core.config.uneven_background`): the background rule
        reads the image against its local background
        (:data:`~segstudio.core.background.UNEVEN_SIGMA`).

    Returns
    -------
    dict
        ``{rule: labels or None}`` for the rules that are on, in :data:`RULES` order: labels in
        the paintings' form (exclusive labels, or ``(C, *spatial)`` 0/1/2), ``0`` where the rule
        says nothing, ``None`` where it says nothing at all. A pixel an earlier rule labels is
        left to it. With the background rule on, also :data:`SPILLED`: the object paint that
        lies on background (:func:`~segstudio.core.background.spilled_paint`), which is not
        learnt (:func:`learnt_paint`), or ``None`` where there is none.
    """
    exclusive = mode == EXCLUSIVE
    paint = np.asarray(paintings) if exclusive else stack_multilabel(paintings)
    out: dict[str, np.ndarray | None] = {}
    taken = np.zeros(paint.shape, bool)
    if outlines:
        infer = infer_from_outlines if exclusive else infer_multilabel
        labels = infer(paint, image, channel_axis=channel_axis, halo=halo)
        taken |= labels != UNPAINTED
        out["outlines"] = labels if labels.any() else None
    if background:
        if smoothed is None:
            smoothed = smoothed_intensity(image, channel_axis, paint.ndim if exclusive else paint.ndim - 1, offsets,
                                          uneven)
        labels, spilled = background_and_spill(paint, image, mode=mode, channel_axis=channel_axis, smoothed=smoothed,
                                               textures=textures)
        labels[taken] = UNPAINTED
        out["background"] = labels if labels.any() else None
        out[SPILLED] = spilled if spilled.any() else None
    return out


def learnt_paint(paintings: np.ndarray, mode: str, spilled: np.ndarray | None) -> np.ndarray:
    """The paintings as the trainer learns them: unpainted where ``spilled`` (every channel in
    multi-label mode), a copy; the paintings themselves where nothing spilled."""
    if spilled is None or not spilled.any():
        return paintings
    stacked = paintings if mode == EXCLUSIVE else stack_multilabel(paintings)
    paint = np.array(stacked) if stacked is paintings else stacked
    if mode == EXCLUSIVE:
        paint[spilled] = UNPAINTED
    else:
        paint[:, spilled] = UNPAINTED
    return paint


def merged(implied: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """All rules' labels in one array (for display), or ``None`` when none says anything."""
    out = None
    for rule in RULES:
        labels = implied.get(rule)
        if labels is not None:
            out = labels.copy() if out is None else np.where(out == UNPAINTED, labels, out)
    return out
