"""Architecture adapters, one module per model family, keyed on ``config.model_type``.

An adapter module defines an :class:`~ppruning.arch.base.ArchAdapter` subclass and
decorates it with :func:`register_adapter`; listing the module in ``_BUILTIN`` is all
it takes to support a new family.
"""

from __future__ import annotations

import importlib
from typing import Any

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.errors import UnsupportedModelError

__all__ = [
    "ArchAdapter",
    "LayerShape",
    "ModelShape",
    "adapter_class",
    "get_adapter",
    "register_adapter",
    "supported_model_types",
]

_BUILTIN = ("bert", "roberta", "distilbert", "gpt2", "llama", "opt")
_ADAPTERS: dict[str, type[ArchAdapter]] = {}
_loaded = False


def register_adapter(cls: type[ArchAdapter]) -> type[ArchAdapter]:
    """Class decorator: make ``cls`` the adapter for each of its ``model_types``."""
    for model_type in cls.model_types:
        if model_type in _ADAPTERS and _ADAPTERS[model_type] is not cls:
            raise RuntimeError(f"two adapters for model_type {model_type!r}")
        _ADAPTERS[model_type] = cls
    return cls


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        for name in _BUILTIN:
            importlib.import_module(f"ppruning.arch.{name}")
        _loaded = True


def supported_model_types() -> list[str]:
    _load_builtin()
    return sorted(_ADAPTERS)


def adapter_class(model_type: str) -> type[ArchAdapter]:
    """The adapter class for a ``config.model_type``; UnsupportedModelError lists the choices."""
    _load_builtin()
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
