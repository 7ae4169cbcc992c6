"""The adapter registry: ``config.model_type`` -> adapter class; a leaf that imports no adapter.

Adapter modules decorate their class with :func:`register_adapter`; the package
``ppruning.arch`` lists and imports them, so this module never imports them back.
"""

from __future__ import annotations

from typing import Any

from ppruning.arch.base import ArchAdapter
from ppruning.errors import UnsupportedModelError

_ADAPTERS: dict[str, type[ArchAdapter]] = {}


def register_adapter(cls: type[ArchAdapter]) -> type[ArchAdapter]:
    """Class decorator: make ``cls`` the adapter for each of its ``model_types``."""
    for model_type in cls.model_types:
        if model_type in _ADAPTERS and _ADAPTERS[model_type] is not cls:
            raise RuntimeError(f"two adapters for model_type {model_type!r}")
        _ADAPTERS[model_type] = cls
    return cls


def unregister_adapter(cls: type[ArchAdapter]) -> None:
    """Forget ``cls`` (a test's throw-away family)."""
    for model_type in cls.model_types:
        if _ADAPTERS.get(model_type) is cls:
            del _ADAPTERS[model_type]


def supported_model_types() -> list[str]:
    return sorted(_ADAPTERS)


def adapter_class(model_type: str) -> type[ArchAdapter]:
    """The adapter class for a ``config.model_type``; UnsupportedModelError lists the choices."""
    try:
        return _ADAPTERS[model_type]
    except KeyError:
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported; supported model types: {', '.join(supported_model_types())}",
            field="model.id",
        ) from None


def get_adapter(model: Any) -> ArchAdapter:
    """The adapter wrapping ``model`` (a base model or any task-head model of a supported family)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UnsupportedModelError("the model has no config.model_type; pass a Hugging Face transformers model")
    return adapter_class(model_type)(model)
