"""Model registry: ``@register_model`` factories looked up by name (timm's shape)."""

from __future__ import annotations

import warnings
from typing import Protocol, TypeVar

from models._base import ConvBNModel

__all__ = ["ModelFactory", "create_model", "list_models", "register_model"]


class ModelFactory(Protocol):
    """A registered model constructor."""

    __name__: str

    def __call__(self, *, num_classes: int, in_channels: int = 3) -> ConvBNModel: ...


_F = TypeVar("_F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


def register_model(fn: _F) -> _F:
    """Register ``fn`` under its ``__name__``; re-registering a name warns and replaces it."""
    name = fn.__name__
    if name in _MODELS:
        warnings.warn(f"Model {name!r} is already registered; overwriting it", stacklevel=2)
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, *, num_classes: int, in_channels: int = 3) -> ConvBNModel:
    """Build the registered model ``name``.

    Raises:
        ValueError: if ``name`` is not registered.

    Example:
        >>> model = create_model("resnet20", num_classes=10)
        >>> len(model.conv_params())
        21
    """
    try:
        factory = _MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; available: {list_models()}") from None
    return factory(num_classes=num_classes, in_channels=in_channels)
