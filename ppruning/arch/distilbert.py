"""DistilBERT: ``transformer.layer[l]`` with ``attention.{q,k,v,out}_lin`` and ``ffn.lin1/lin2``.

The attention reshapes with ``view(..., -1, attention_head_size)``; ``n_heads`` is
updated after surgery for anything that reads it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.registry import register_adapter


@register_adapter
class DistilBertAdapter(ArchAdapter):
    model_types = ("distilbert",)
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="transformer.layer",
        head_dim="attention.attention_head_size",
        query="attention.q_lin",
        key="attention.k_lin",
        value="attention.v_lin",
        attn_out="attention.out_lin",
        ffn_in=("ffn.lin1",),
        ffn_out="ffn.lin2",
        head_count_attrs=("attention.n_heads",),
    )
    size_fields: ClassVar[SizeFields] = SizeFields("dim", "n_heads", None, "hidden_dim")
    reads_mlm_head = True

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = config.dim // config.n_heads
        layer = LayerShape(config.n_heads, head_dim, 1, head_dim, config.hidden_dim)
        return ModelShape(config.dim, (layer,) * config.n_layers, gated_ffn=False)

    def mlm_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        model = self.model
        return model.vocab_projector(model.vocab_layer_norm(model.activation(model.vocab_transform(hidden))))
