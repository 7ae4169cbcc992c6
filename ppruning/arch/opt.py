"""OPT decoders: ``decoder.layers[l]`` with ``self_attn.{q,k,v,out}_proj`` and ``fc1/fc2``.

OPT's attention reshapes with ``view(bsz, -1, self.num_heads, head_dim)``, so
``num_heads`` must be the kept count after surgery.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.registry import register_adapter


@register_adapter
class OPTAdapter(ArchAdapter):
    model_types = ("opt",)
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="decoder.layers",
        head_dim="self_attn.head_dim",
        query="self_attn.q_proj",
        key="self_attn.k_proj",
        value="self_attn.v_proj",
        attn_out="self_attn.out_proj",
        ffn_in=("fc1",),
        ffn_out="fc2",
        head_count_attrs=("self_attn.num_heads",),
    )
    size_fields: ClassVar[SizeFields] = SizeFields("hidden_size", "num_attention_heads", None, "ffn_dim")
    is_decoder = True

    def ffn_output_adds_to_residual(self) -> bool:
        """Pre-norm unless ``do_layer_norm_before`` is off (OPT-350m normalises after the sum)."""
        return bool(getattr(self.model.config, "do_layer_norm_before", True))

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = config.hidden_size // config.num_attention_heads
        layer = LayerShape(config.num_attention_heads, head_dim, 1, head_dim, config.ffn_dim)
        bias = bool(getattr(config, "enable_bias", True))
        return ModelShape(
            config.hidden_size, (layer,) * config.num_hidden_layers, gated_ffn=False, attention_bias=bias, ffn_bias=bias
        )
