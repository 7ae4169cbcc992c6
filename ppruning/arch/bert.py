"""BERT (and the families that share its module layout, e.g. RoBERTa).

Layer ``l`` is ``encoder.layer[l]``: ``attention.self.{query,key,value}`` produce the
heads, ``attention.output.dense`` projects them back (its input: the head outputs),
``intermediate.dense`` is FFN-in and ``output.dense`` FFN-out (its input: the neuron
outputs). The self-attention module reshapes with ``view(..., -1, head_size)``, so
after surgery only ``num_attention_heads``/``all_head_size`` need updating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import register_adapter
from ppruning.arch.slicing import keep_attention_units, keep_linear_inputs, keep_linear_outputs, unit_columns


@register_adapter
class BertAdapter(ArchAdapter):
    model_types = ("bert",)

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        heads = config.num_attention_heads
        head_dim = config.hidden_size // heads
        layer = LayerShape(heads, head_dim, 1, head_dim, config.intermediate_size)
        return ModelShape(config.hidden_size, (layer,) * config.num_hidden_layers, gated_ffn=False)

    def layers(self) -> Sequence[nn.Module]:
        return self.backbone.encoder.layer

    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def layer_shape(self, layer: int) -> LayerShape:
        block = self.layers()[layer]
        attn = block.attention.self
        head_dim = attn.attention_head_size
        heads = attn.query.out_features // head_dim
        return LayerShape(heads, head_dim, 1, head_dim, block.intermediate.dense.out_features)

    def head_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].attention.output.dense

    def neuron_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].output.dense

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        return [self.layers()[layer].intermediate.dense]

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        block = self.layers()[layer]
        attn = block.attention.self
        cols = unit_columns(keep, attn.attention_head_size)
        keep_attention_units(attn.query, attn.key, attn.value, block.attention.output.dense, cols)
        attn.num_attention_heads = len(keep)
        attn.all_head_size = int(cols.numel())

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        block = self.layers()[layer]
        cols = unit_columns(keep, 1)
        keep_linear_outputs(block.intermediate.dense, cols)
        keep_linear_inputs(block.output.dense, cols)
