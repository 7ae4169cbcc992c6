"""Configurations of pruned checkpoints whose layers differ in size.

This file is copied next to the weights of such a checkpoint and loaded by
``AutoConfig.from_pretrained(..., trust_remote_code=True)``; it imports only
transformers, never the library that pruned the model.

Each class is the stock configuration of its family under a ``model_type`` of its own
(``pruned_bert``, ``pruned_llama``, ...). On disk the stock size fields hold one value
per layer (``"intermediate_size": [1536, 1210, 980, ...]``), so a stock class reading the
config rejects it instead of building full-size layers and re-initialising them at
random. In memory those fields hold scalars the stock constructors accept (the widest
layer; for heads the count that gives the recorded ``head_dim``) and the per-layer
values are in ``layer_num_attention_heads``, ``layer_num_key_value_heads`` (grouped-query
families) and ``layer_ffn_size``.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    BertConfig,
    DistilBertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Qwen2Config,
    RobertaConfig,
)

#: stock model_type -> (hidden size field, query heads field, KV heads field or None, FFN size field)
SIZE_FIELDS: dict[str, tuple[str, str, str | None, str]] = {
    "bert": ("hidden_size", "num_attention_heads", None, "intermediate_size"),
    "roberta": ("hidden_size", "num_attention_heads", None, "intermediate_size"),
    "distilbert": ("dim", "n_heads", None, "hidden_dim"),
    "gpt2": ("n_embd", "n_head", None, "n_inner"),
    "opt": ("hidden_size", "num_attention_heads", None, "ffn_dim"),
    "llama": ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"),
    "mistral": ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"),
    "qwen2": ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"),
}
PREFIX = "pruned_"


def scalar_sizes(stock_type: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Split per-layer size lists out of config ``values``: (values with scalars, per-layer lists)."""
    hidden, heads, kv_heads, ffn = SIZE_FIELDS[stock_type]
    values = dict(values)
    layers: dict[str, list[int]] = {}
    if isinstance(values.get(ffn), list):
        layers["layer_ffn_size"] = [int(n) for n in values[ffn]]
        values[ffn] = max(layers["layer_ffn_size"])
    if isinstance(values.get(heads), list):
        layers["layer_num_attention_heads"] = [int(n) for n in values[heads]]
        if kv_heads is None:  # the head size is hidden / heads: keep it the recorded one
            values[heads] = int(values[hidden]) // int(values["head_dim"])
        else:
            layers["layer_num_key_value_heads"] = [int(n) for n in values[kv_heads]]
            values[kv_heads] = max(layers["layer_num_key_value_heads"])
            group = layers["layer_num_attention_heads"][0] // layers["layer_num_key_value_heads"][0]
            values[heads] = values[kv_heads] * group
    return values, layers


class _PerLayerSizes:
    """Writes the per-layer lists back into the stock fields when the config is saved."""

    stock_type = ""

    def _keep_layers(self, layers: dict[str, list[int]]) -> None:
        for key in ("layer_num_attention_heads", "layer_num_key_value_heads", "layer_ffn_size"):
            setattr(self, key, layers.get(key))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        _, heads, kv_heads, ffn = SIZE_FIELDS[self.stock_type]
        for key, field in (("layer_num_attention_heads", heads), ("layer_num_key_value_heads", kv_heads),
                           ("layer_ffn_size", ffn)):
            per_layer = out.pop(key, None)
            if per_layer is not None and field is not None:
                out[field] = list(per_layer)
        return out


class PrunedBertConfig(_PerLayerSizes, BertConfig):
    model_type = PREFIX + "bert"
    stock_type = "bert"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedRobertaConfig(_PerLayerSizes, RobertaConfig):
    model_type = PREFIX + "roberta"
    stock_type = "roberta"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedDistilBertConfig(_PerLayerSizes, DistilBertConfig):
    model_type = PREFIX + "distilbert"
    stock_type = "distilbert"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedGPT2Config(_PerLayerSizes, GPT2Config):
    model_type = PREFIX + "gpt2"
    stock_type = "gpt2"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedOPTConfig(_PerLayerSizes, OPTConfig):
    model_type = PREFIX + "opt"
    stock_type = "opt"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedLlamaConfig(_PerLayerSizes, LlamaConfig):
    model_type = PREFIX + "llama"
    stock_type = "llama"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedMistralConfig(_PerLayerSizes, MistralConfig):
    model_type = PREFIX + "mistral"
    stock_type = "mistral"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


class PrunedQwen2Config(_PerLayerSizes, Qwen2Config):
    model_type = PREFIX + "qwen2"
    stock_type = "qwen2"

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(self.stock_type, kwargs)
        super().__init__(**kwargs)
        self._keep_layers(layers)


CONFIGS = {cls.stock_type: cls for cls in (
    PrunedBertConfig, PrunedRobertaConfig, PrunedDistilBertConfig, PrunedGPT2Config, PrunedOPTConfig,
    PrunedLlamaConfig, PrunedMistralConfig, PrunedQwen2Config,
)}
