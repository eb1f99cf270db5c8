"""Labels the paintings imply: every implied-label rule in one place.

Two rules, each switched in the training config and each learnt in the trainer's second loss
term (never written into the user's paintings):

* ``infer_outlines``: what closed traced outlines imply (:mod:`segstudio.core.outlines`);
* ``infer_background``: unpainted pixels that look like the painted background
  (:mod:`segstudio.core.background`); where both apply, the outline rule wins.

The trainer learns from :func:`implied_labels`, and the app overlays the same function's result
when the user asks to see what was inferred, so what is shown is what is learnt.
"""

from __future__ import annotations

import numpy as np

from segstudio.core.annotations import EXCLUSIVE, UNPAINTED, stack_multilabel
from segstudio.core.background import infer_background, infer_background_multilabel, smoothed_intensity
from segstudio.core.outlines import DEFAULT_HALO, infer_from_outlines, infer_multilabel

__all__ = ["implied_labels"]


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
) -> np.ndarray | None:
    """The labels the rules that are on infer for the unpainted pixels, or ``None`` if none.

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
        :func:`~segstudio.core.background.smoothed_intensity` of ``image``, if the caller
        keeps it (it depends on the image only).

    Returns
    -------
    numpy.ndarray or None
        In the paintings' form (exclusive labels, or ``(C, *spatial)`` 0/1/2), ``0`` where
        nothing is inferred; ``None`` when no rule is on or nothing is inferred.
    """
    if not (outlines or background):
        return None
    exclusive = mode == EXCLUSIVE
    paint = np.asarray(paintings) if exclusive else stack_multilabel(paintings)
    out = np.zeros_like(paint)
    if outlines:
        infer = infer_from_outlines if exclusive else infer_multilabel
        out = infer(paint, image, channel_axis=channel_axis, halo=halo)
    if background:
        if smoothed is None:
            smoothed = smoothed_intensity(image, channel_axis, paint.ndim if exclusive else paint.ndim - 1)
        bg = (infer_background(paint, image, channel_axis=channel_axis, smoothed=smoothed) if exclusive
              else infer_background_multilabel(paint, image, channel_axis=channel_axis, smoothed=smoothed))
        out = np.where(out == UNPAINTED, bg, out)
    return out if out.any() else None
