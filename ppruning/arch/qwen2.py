"""Qwen2: Llama's module layout, with biases on the Q, K and V projections.

Its config has no field for those biases (the modelling code always builds them), so the
shape read from a config alone says so here; the output projection and the FFN have none, and
no config flag adds one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ppruning.arch.base import ModelShape
from ppruning.arch.llama import LlamaAdapter
from ppruning.arch.registry import register_adapter


@register_adapter
class Qwen2Adapter(LlamaAdapter):
    model_types = ("qwen2",)
    #: Qwen2's config has no flag for output-projection or FFN biases: none can be added.
    bias_flags: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        return dataclasses.replace(super().shape_from_config(config), attention_bias=True)
