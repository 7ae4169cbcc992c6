"""GPT-2: ``h[l]`` with a fused ``attn.c_attn`` (q|k|v side by side) and ``mlp.c_fc/c_proj``.

Every projection is a ``Conv1D`` whose weight is [in, out] (the transpose of
``nn.Linear``). The attention splits ``c_attn``'s output with ``split_size`` and then
reshapes with ``view(..., -1, head_dim)``, so after surgery ``split_size`` must be the
kept width; ``num_heads`` is updated too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.registry import register_adapter


@register_adapter
class GPT2Adapter(ArchAdapter):
    model_types = ("gpt2",)
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="h",
        head_dim="attn.head_dim",
        qkv="attn.c_attn",
        attn_out="attn.c_proj",
        ffn_in=("mlp.c_fc",),
        ffn_out="mlp.c_proj",
        transposed=True,
        head_count_attrs=("attn.num_heads",),
        head_width_attrs=("attn.split_size",),
    )
    size_fields: ClassVar[SizeFields] = SizeFields("n_embd", "n_head", None, "n_inner")
    is_decoder = True

    def ffn_output_adds_to_residual(self) -> bool:
        """Pre-norm: ``h + mlp(ln_2(h))`` (dropout is off in eval)."""
        return True

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        d = config.n_embd
        head_dim = d // config.n_head
        ffn = config.n_inner if config.n_inner is not None else 4 * d
        layer = LayerShape(config.n_head, head_dim, 1, head_dim, ffn)
        return ModelShape(d, (layer,) * config.n_layer, gated_ffn=False)
