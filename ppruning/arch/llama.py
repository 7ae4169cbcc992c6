"""Llama-style decoders with grouped-query attention and a gated FFN.

A head unit is one KV group: one K head, one V head and the ``num_attention_heads /
num_key_value_heads`` query heads that read them (adjacent in ``q_proj``, as
``repeat_kv`` expands them). HF attention needs equal group sizes, so units are whole
groups and the ratio (``num_key_value_groups``) never changes; the attention reshapes
with ``view(..., -1, head_dim)``, so nothing else needs updating. Neurons are rows of
``gate_proj`` and ``up_proj`` and columns of ``down_proj`` (whose input is
``act(gate) * up``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import register_adapter
from ppruning.arch.slicing import keep_attention_units, keep_linear_inputs, keep_linear_outputs, unit_columns


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


@register_adapter
class LlamaAdapter(ArchAdapter):
    model_types = ("llama", "mistral", "qwen2")
    gated_ffn = True

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = _head_dim(config)
        kv = config.num_key_value_heads or config.num_attention_heads
        group = config.num_attention_heads // kv
        layer = LayerShape(kv, group * head_dim, group, head_dim, config.intermediate_size)
        return ModelShape(
            config.hidden_size,
            (layer,) * config.num_hidden_layers,
            gated_ffn=True,
            attention_bias=bool(getattr(config, "attention_bias", False)),
            ffn_bias=bool(getattr(config, "mlp_bias", False)),
        )

    def layers(self) -> Sequence[nn.Module]:
        return self.backbone.layers

    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def attention_bias(self) -> bool:
        return self.layers()[0].self_attn.k_proj.bias is not None

    def ffn_bias(self) -> bool:
        return self.layers()[0].mlp.up_proj.bias is not None

    def layer_shape(self, layer: int) -> LayerShape:
        block = self.layers()[layer]
        attn = block.self_attn
        head_dim = attn.head_dim
        group = attn.num_key_value_groups
        kv = attn.k_proj.out_features // head_dim
        return LayerShape(kv, group * head_dim, group, head_dim, block.mlp.up_proj.out_features)

    def head_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].self_attn.o_proj

    def neuron_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].mlp.down_proj

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        return [self.layers()[layer].mlp.gate_proj, self.layers()[layer].mlp.up_proj]

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        attn = self.layers()[layer].self_attn
        q_cols = unit_columns(keep, attn.num_key_value_groups * attn.head_dim)
        kv_cols = unit_columns(keep, attn.head_dim)
        keep_attention_units(attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, q_cols, kv_cols)

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        mlp = self.layers()[layer].mlp
        cols = unit_columns(keep, 1)
        keep_linear_outputs(mlp.gate_proj, cols)
        keep_linear_outputs(mlp.up_proj, cols)
        keep_linear_inputs(mlp.down_proj, cols)
        mlp.intermediate_size = int(cols.numel())
