"""GPT-2: ``h[l]`` with a fused ``attn.c_attn`` (q|k|v side by side) and ``mlp.c_fc/c_proj``.

Every projection is a ``Conv1D`` whose weight is [in, out] (the transpose of
``nn.Linear``). The attention splits ``c_attn``'s output with ``split_size`` and then
reshapes with ``view(..., -1, head_dim)``, so after surgery ``split_size`` must be the
kept width; ``num_heads`` is updated too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.registry import register_adapter
from ppruning.arch.slicing import keep_conv1d_inputs, keep_conv1d_outputs, unit_columns


@register_adapter
class GPT2Adapter(ArchAdapter):
    model_types = ("gpt2",)

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        d = config.n_embd
        head_dim = d // config.n_head
        ffn = config.n_inner if config.n_inner is not None else 4 * d
        layer = LayerShape(config.n_head, head_dim, 1, head_dim, ffn)
        return ModelShape(d, (layer,) * config.n_layer, gated_ffn=False)

    def layers(self) -> Sequence[nn.Module]:
        return self.backbone.h

    def hidden_size(self) -> int:
        return self.model.config.n_embd

    def stores_transposed(self, module: nn.Module) -> bool:
        # by name: importing transformers' Conv1D here would load transformers wherever an adapter is named
        return type(module).__name__ == "Conv1D"

    def layer_shape(self, layer: int) -> LayerShape:
        block = self.layers()[layer]
        head_dim = block.attn.head_dim
        heads = block.attn.split_size // head_dim
        return LayerShape(heads, head_dim, 1, head_dim, block.mlp.c_fc.nf)

    def head_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].attn.c_proj

    def neuron_output_module(self, layer: int) -> nn.Module:
        return self.layers()[layer].mlp.c_proj

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        return [self.layers()[layer].mlp.c_fc]

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        attn = self.layers()[layer].attn
        width = attn.split_size
        cols = unit_columns(keep, attn.head_dim)
        # q, k and v blocks of the fused projection each lose the same head columns
        keep_conv1d_outputs(attn.c_attn, torch.cat([cols, cols + width, cols + 2 * width]))
        keep_conv1d_inputs(attn.c_proj, cols)
        attn.split_size = int(cols.numel())
        attn.num_heads = len(keep)

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        mlp = self.layers()[layer].mlp
        cols = unit_columns(keep, 1)
        keep_conv1d_outputs(mlp.c_fc, cols)
        keep_conv1d_inputs(mlp.c_proj, cols)
