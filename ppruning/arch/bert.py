"""BERT (and the families that share its module layout, e.g. RoBERTa).

Layer ``l`` is ``encoder.layer[l]``: ``attention.self.{query,key,value}`` produce the
heads, ``attention.output.dense`` projects them back (its input: the head outputs),
``intermediate.dense`` is FFN-in and ``output.dense`` FFN-out (its input: the neuron
outputs). The self-attention module reshapes with ``view(..., -1, head_size)``, so
after surgery only ``num_attention_heads``/``all_head_size`` need updating.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.registry import register_adapter


@register_adapter
class BertAdapter(ArchAdapter):
    model_types = ("bert",)
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="encoder.layer",
        head_dim="attention.self.attention_head_size",
        query="attention.self.query",
        key="attention.self.key",
        value="attention.self.value",
        attn_out="attention.output.dense",
        ffn_in=("intermediate.dense",),
        ffn_out="output.dense",
        head_count_attrs=("attention.self.num_attention_heads",),
        head_width_attrs=("attention.self.all_head_size",),
    )
    size_fields: ClassVar[SizeFields] = SizeFields("hidden_size", "num_attention_heads", None, "intermediate_size")
    reads_mlm_head = True

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        heads = config.num_attention_heads
        head_dim = config.hidden_size // heads
        layer = LayerShape(heads, head_dim, 1, head_dim, config.intermediate_size)
        return ModelShape(config.hidden_size, (layer,) * config.num_hidden_layers, gated_ffn=False)

    def mlm_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.cls(hidden)
