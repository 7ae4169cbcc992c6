"""Architecture adapters, one module per model family, keyed on ``config.model_type``.

An adapter module defines an :class:`~ppruning.arch.base.ArchAdapter` subclass that
declares every fact about its family (its block layout and size fields, whether it is a
decoder, its head size and position conventions, its masked-LM head) and decorates it with
:func:`~ppruning.arch.registry.register_adapter`; importing the module below is all it
takes to support a new family: the methods, surgery and the portable checkpoint format
read the adapter.
"""

from ppruning.arch import bert, distilbert, gpt2, llama, opt, qwen2, roberta  # noqa: F401 - each registers its adapter
from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import (
    adapter_class,
    get_adapter,
    register_adapter,
    supported_model_types,
    unregister_adapter,
)

__all__ = [
    "ArchAdapter",
    "LayerShape",
    "ModelShape",
    "adapter_class",
    "get_adapter",
    "register_adapter",
    "supported_model_types",
    "unregister_adapter",
]
