"""Architecture adapters, one module per model family, keyed on ``config.model_type``.

An adapter module defines an :class:`~ppruning.arch.base.ArchAdapter` subclass and
decorates it with :func:`~ppruning.arch.registry.register_adapter`; importing the
module below is all it takes to support a new family.
"""

from ppruning.arch import bert, distilbert, gpt2, llama, opt, roberta  # noqa: F401 - each registers its adapter
from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import adapter_class, get_adapter, register_adapter, supported_model_types

__all__ = [
    "ArchAdapter",
    "LayerShape",
    "ModelShape",
    "adapter_class",
    "get_adapter",
    "register_adapter",
    "supported_model_types",
]
