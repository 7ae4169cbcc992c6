"""OPT decoders: ``decoder.layers[l]`` with ``self_attn.{q,k,v,out}_proj`` and ``fc1/fc2``.

OPT's attention reshapes with ``view(bsz, -1, self.num_heads, head_dim)``, so
``num_heads`` must be the kept count after surgery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import register_adapter
from ppruning.arch.slicing import keep_attention_units, keep_linear_inputs, keep_linear_outputs, unit_columns


@register_adapter
class OPTAdapter(ArchAdapter):
    model_types = ("opt",)

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = config.hidden_size // config.num_attention_heads
        layer = LayerShape(config.num_attention_heads, head_dim, 1, head_dim, config.ffn_dim)
        bias = bool(getattr(config, "enable_bias", True))
        return ModelShape(
            config.hidden_size, (layer,) * config.num_hidden_layers, gated_ffn=False, attention_bias=bias, ffn_bias=bias
        )

    def layers(self) -> Sequence[nn.Module]:
        return self.backbone.decoder.layers

    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def attention_bias(self) -> bool:
        return self.layers()[0].self_attn.k_proj.bias is not None

    def ffn_bias(self) -> bool:
        return self.layers()[0].fc1.bias is not None

    def layer_shape(self, layer: int) -> LayerShape:
        block = self.layers()[layer]
        head_dim = block.self_attn.head_dim
        heads = block.self_attn.q_proj.out_features // head_dim
        return LayerShape(heads, head_dim, 1, head_dim, block.fc1.out_features)

    def head_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].self_attn.out_proj

    def neuron_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].fc2

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        return [self.layers()[layer].fc1]

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        attn = self.layers()[layer].self_attn
        cols = unit_columns(keep, attn.head_dim)
        keep_attention_units(attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, cols)
        attn.num_heads = len(keep)

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        block = self.layers()[layer]
        cols = unit_columns(keep, 1)
        keep_linear_outputs(block.fc1, cols)
        keep_linear_inputs(block.fc2, cols)
