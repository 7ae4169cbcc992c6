"""DistilBERT: ``transformer.layer[l]`` with ``attention.{q,k,v,out}_lin`` and ``ffn.lin1/lin2``.

The attention reshapes with ``view(..., -1, attention_head_size)``; ``n_heads`` is
updated after surgery for anything that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import register_adapter
from ppruning.arch.slicing import keep_attention_units, keep_linear_inputs, keep_linear_outputs, unit_columns


@register_adapter
class DistilBertAdapter(ArchAdapter):
    model_types = ("distilbert",)

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = config.dim // config.n_heads
        layer = LayerShape(config.n_heads, head_dim, 1, head_dim, config.hidden_dim)
        return ModelShape(config.dim, (layer,) * config.n_layers, gated_ffn=False)

    def layers(self) -> Sequence[nn.Module]:
        return self.backbone.transformer.layer

    def hidden_size(self) -> int:
        return self.model.config.dim

    def layer_shape(self, layer: int) -> LayerShape:
        block = self.layers()[layer]
        head_dim = block.attention.attention_head_size
        heads = block.attention.q_lin.out_features // head_dim
        return LayerShape(heads, head_dim, 1, head_dim, block.ffn.lin1.out_features)

    def head_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].attention.out_lin

    def neuron_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].ffn.lin2

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        return [self.layers()[layer].ffn.lin1]

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        attn = self.layers()[layer].attention
        cols = unit_columns(keep, attn.attention_head_size)
        keep_attention_units(attn.q_lin, attn.k_lin, attn.v_lin, attn.out_lin, cols)
        attn.n_heads = len(keep)

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        ffn = self.layers()[layer].ffn
        cols = unit_columns(keep, 1)
        keep_linear_outputs(ffn.lin1, cols)
        keep_linear_inputs(ffn.lin2, cols)
