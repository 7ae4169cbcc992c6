"""Llama-style decoders (Llama, Mistral; Qwen2 in its own module) with grouped-query attention and a gated FFN.

A head unit is one KV group: one K head, one V head and the ``num_attention_heads /
num_key_value_heads`` query heads that read them (adjacent in ``q_proj``, as
``repeat_kv`` expands them). HF attention needs equal group sizes, so units are whole
groups and the ratio (``num_key_value_groups``) never changes; the attention reshapes
with ``view(..., -1, head_dim)`` and reads ``head_dim`` from the config, so nothing else
needs updating. Neurons are rows of ``gate_proj`` and ``up_proj`` and columns of
``down_proj`` (whose input is ``act(gate) * up``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.registry import register_adapter


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


@register_adapter
class LlamaAdapter(ArchAdapter):
    model_types = ("llama", "mistral")
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="layers",
        head_dim="self_attn.head_dim",
        query="self_attn.q_proj",
        key="self_attn.k_proj",
        value="self_attn.v_proj",
        attn_out="self_attn.o_proj",
        ffn_in=("mlp.gate_proj", "mlp.up_proj"),
        ffn_out="mlp.down_proj",
        ffn_size_attrs=("mlp.intermediate_size",),
    )
    size_fields: ClassVar[SizeFields] = SizeFields(
        "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"
    )
    gated_ffn = True
    is_decoder = True
    explicit_head_dim = True
    bias_flags: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "attention": (
            "attention_bias",
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
        ),
        "ffn": ("mlp_bias", ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")),
    }

    def ffn_output_adds_to_residual(self) -> bool:
        """Pre-norm: ``h + mlp(norm(h))``."""
        return True

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
