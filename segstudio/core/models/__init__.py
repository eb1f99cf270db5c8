"""Network architectures, built by name through a small registry.

>>> from segstudio.core.models import build_model
>>> net = build_model("unet", spatial_dims=2, in_channels=1, out_channels=3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from segstudio.core.models.unet import UNet, pooling_plan

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that makes a model factory available to :func:`build_model` by name."""

    def deco(factory: ModelFactory) -> ModelFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def available_models() -> tuple[str, ...]:
    """Names accepted by :func:`build_model`."""
    return tuple(sorted(_REGISTRY))


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. ``kwargs`` go to the model's factory."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(available_models())}") from None
    return factory(**kwargs)


register_model("unet")(UNet)

__all__ = ["UNet", "available_models", "build_model", "pooling_plan", "register_model"]
