"""Models of pruned checkpoints whose layers differ in size.

This file is copied next to the weights of such a checkpoint and loaded by
``AutoModel*.from_pretrained(..., trust_remote_code=True)``; it imports only torch and
transformers, never the library that pruned the model.

Every class is the stock transformers class of its family. After the stock constructor
has built full-size layers, each layer's attention projections and FFN are rebuilt at
the sizes the config lists per layer (kept heads are the first ones, as they were
saved), and the attention modules are told their head counts, so that
``from_pretrained`` loads the saved tensors into exactly matching shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModel,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    DistilBertForMaskedLM,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
    GPT2ForQuestionAnswering,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaForCausalLM,
    LlamaForQuestionAnswering,
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    LlamaModel,
    MistralForCausalLM,
    MistralForQuestionAnswering,
    MistralForSequenceClassification,
    MistralForTokenClassification,
    MistralModel,
    OPTForCausalLM,
    OPTForQuestionAnswering,
    OPTForSequenceClassification,
    OPTModel,
    Qwen2ForCausalLM,
    Qwen2ForQuestionAnswering,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
    Qwen2Model,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
)

from .configuration_pruned import (
    PrunedBertConfig,
    PrunedDistilBertConfig,
    PrunedGPT2Config,
    PrunedLlamaConfig,
    PrunedMistralConfig,
    PrunedOPTConfig,
    PrunedQwen2Config,
    PrunedRobertaConfig,
)


def _resized(module: nn.Module, name: str, out_features: int | None = None, in_features: int | None = None) -> None:
    """Replace ``module.<name>`` (an ``nn.Linear``) by an uninitialised one of the new size."""
    old = getattr(module, name)
    new = nn.Linear(
        in_features if in_features is not None else old.in_features,
        out_features if out_features is not None else old.out_features,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    setattr(module, name, new)


def _resized_conv1d(conv: nn.Module, nx: int | None = None, nf: int | None = None) -> None:
    """GPT-2's ``Conv1D`` (weight [nx, nf]) resized in place."""
    nx = nx if nx is not None else conv.weight.shape[0]
    nf = nf if nf is not None else conv.weight.shape[1]
    like = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    conv.weight = nn.Parameter(torch.empty(nx, nf, **like))
    if nf != conv.bias.shape[0]:
        conv.bias = nn.Parameter(torch.zeros(nf, **like))
    conv.nx, conv.nf = nx, nf


def _layers(config: Any) -> list[tuple[int, int, int]]:
    """(query heads, KV heads, FFN size) of every layer."""
    n = config.num_hidden_layers
    heads = config.layer_num_attention_heads or [config.num_attention_heads] * n
    kv = getattr(config, "layer_num_key_value_heads", None) or heads
    ffn = config.layer_ffn_size or [None] * n
    return list(zip(heads, kv, ffn, strict=True))


def _shrink_bert(model: nn.Module) -> None:
    for block, (heads, _, ffn) in zip(model.base_model.encoder.layer, _layers(model.config), strict=True):
        attn = block.attention.self
        width = heads * attn.attention_head_size
        for name in ("query", "key", "value"):
            _resized(attn, name, out_features=width)
        _resized(block.attention.output, "dense", in_features=width)
        attn.num_attention_heads, attn.all_head_size = heads, width
        if ffn is not None:
            _resized(block.intermediate, "dense", out_features=ffn)
            _resized(block.output, "dense", in_features=ffn)


def _shrink_distilbert(model: nn.Module) -> None:
    for block, (heads, _, ffn) in zip(model.base_model.transformer.layer, _layers(model.config), strict=True):
        attn = block.attention
        width = heads * attn.attention_head_size
        for name in ("q_lin", "k_lin", "v_lin"):
            _resized(attn, name, out_features=width)
        _resized(attn, "out_lin", in_features=width)
        attn.n_heads = heads
        if ffn is not None:
            _resized(block.ffn, "lin1", out_features=ffn)
            _resized(block.ffn, "lin2", in_features=ffn)


def _shrink_gpt2(model: nn.Module) -> None:
    for block, (heads, _, ffn) in zip(model.base_model.h, _layers(model.config), strict=True):
        attn = block.attn
        width = heads * attn.head_dim
        _resized_conv1d(attn.c_attn, nf=3 * width)
        _resized_conv1d(attn.c_proj, nx=width)
        attn.split_size, attn.num_heads = width, heads
        if ffn is not None:
            _resized_conv1d(block.mlp.c_fc, nf=ffn)
            _resized_conv1d(block.mlp.c_proj, nx=ffn)


def _shrink_opt(model: nn.Module) -> None:
    for block, (heads, _, ffn) in zip(model.base_model.decoder.layers, _layers(model.config), strict=True):
        attn = block.self_attn
        width = heads * attn.head_dim
        for name in ("q_proj", "k_proj", "v_proj"):
            _resized(attn, name, out_features=width)
        _resized(attn, "out_proj", in_features=width)
        attn.num_heads = heads
        if ffn is not None:
            _resized(block, "fc1", out_features=ffn)
            _resized(block, "fc2", in_features=ffn)


def _shrink_llama(model: nn.Module) -> None:
    """Llama, Mistral, Qwen2: whole KV groups are kept, so the group size never changes."""
    for block, (heads, kv_heads, ffn) in zip(model.base_model.layers, _layers(model.config), strict=True):
        attn = block.self_attn
        _resized(attn, "q_proj", out_features=heads * attn.head_dim)
        _resized(attn, "k_proj", out_features=kv_heads * attn.head_dim)
        _resized(attn, "v_proj", out_features=kv_heads * attn.head_dim)
        _resized(attn, "o_proj", in_features=heads * attn.head_dim)
        if ffn is not None:
            for name in ("gate_proj", "up_proj"):
                _resized(block.mlp, name, out_features=ffn)
            _resized(block.mlp, "down_proj", in_features=ffn)
            block.mlp.intermediate_size = ffn


def _pruned(stock: type, config_class: type, shrink: Callable[[nn.Module], None]) -> type:
    """``stock`` whose constructor cuts every layer to the sizes the config lists."""

    def __init__(self: nn.Module, config: Any, *args: Any, **kwargs: Any) -> None:
        # Some task heads build their backbone with ``AutoModel.from_config(config)``; the
        # config class may be another copy of this file's (transformers imports each remote
        # file on its own), so map that very class to the pruned backbone first.
        AutoModel.register(type(config), BACKBONES[type(config).__name__], exist_ok=True)
        stock.__init__(self, config, *args, **kwargs)
        shrink(self)

    name = "Pruned" + stock.__name__
    return type(name, (stock,), {"__init__": __init__, "config_class": config_class, "__module__": __name__,
                                 "__qualname__": name})


PrunedBertModel = _pruned(BertModel, PrunedBertConfig, _shrink_bert)
PrunedBertForSequenceClassification = _pruned(BertForSequenceClassification, PrunedBertConfig, _shrink_bert)
PrunedBertForQuestionAnswering = _pruned(BertForQuestionAnswering, PrunedBertConfig, _shrink_bert)
PrunedBertForTokenClassification = _pruned(BertForTokenClassification, PrunedBertConfig, _shrink_bert)
PrunedBertForMaskedLM = _pruned(BertForMaskedLM, PrunedBertConfig, _shrink_bert)

PrunedRobertaModel = _pruned(RobertaModel, PrunedRobertaConfig, _shrink_bert)
PrunedRobertaForSequenceClassification = _pruned(RobertaForSequenceClassification, PrunedRobertaConfig, _shrink_bert)
PrunedRobertaForQuestionAnswering = _pruned(RobertaForQuestionAnswering, PrunedRobertaConfig, _shrink_bert)
PrunedRobertaForTokenClassification = _pruned(RobertaForTokenClassification, PrunedRobertaConfig, _shrink_bert)
PrunedRobertaForMaskedLM = _pruned(RobertaForMaskedLM, PrunedRobertaConfig, _shrink_bert)

PrunedDistilBertModel = _pruned(DistilBertModel, PrunedDistilBertConfig, _shrink_distilbert)
PrunedDistilBertForSequenceClassification = _pruned(
    DistilBertForSequenceClassification, PrunedDistilBertConfig, _shrink_distilbert
)
PrunedDistilBertForQuestionAnswering = _pruned(
    DistilBertForQuestionAnswering, PrunedDistilBertConfig, _shrink_distilbert
)
PrunedDistilBertForTokenClassification = _pruned(
    DistilBertForTokenClassification, PrunedDistilBertConfig, _shrink_distilbert
)
PrunedDistilBertForMaskedLM = _pruned(DistilBertForMaskedLM, PrunedDistilBertConfig, _shrink_distilbert)

PrunedGPT2Model = _pruned(GPT2Model, PrunedGPT2Config, _shrink_gpt2)
PrunedGPT2LMHeadModel = _pruned(GPT2LMHeadModel, PrunedGPT2Config, _shrink_gpt2)
PrunedGPT2ForSequenceClassification = _pruned(GPT2ForSequenceClassification, PrunedGPT2Config, _shrink_gpt2)
PrunedGPT2ForQuestionAnswering = _pruned(GPT2ForQuestionAnswering, PrunedGPT2Config, _shrink_gpt2)
PrunedGPT2ForTokenClassification = _pruned(GPT2ForTokenClassification, PrunedGPT2Config, _shrink_gpt2)

PrunedOPTModel = _pruned(OPTModel, PrunedOPTConfig, _shrink_opt)
PrunedOPTForCausalLM = _pruned(OPTForCausalLM, PrunedOPTConfig, _shrink_opt)
PrunedOPTForSequenceClassification = _pruned(OPTForSequenceClassification, PrunedOPTConfig, _shrink_opt)
PrunedOPTForQuestionAnswering = _pruned(OPTForQuestionAnswering, PrunedOPTConfig, _shrink_opt)

PrunedLlamaModel = _pruned(LlamaModel, PrunedLlamaConfig, _shrink_llama)
PrunedLlamaForCausalLM = _pruned(LlamaForCausalLM, PrunedLlamaConfig, _shrink_llama)
PrunedLlamaForSequenceClassification = _pruned(LlamaForSequenceClassification, PrunedLlamaConfig, _shrink_llama)
PrunedLlamaForQuestionAnswering = _pruned(LlamaForQuestionAnswering, PrunedLlamaConfig, _shrink_llama)
PrunedLlamaForTokenClassification = _pruned(LlamaForTokenClassification, PrunedLlamaConfig, _shrink_llama)

PrunedMistralModel = _pruned(MistralModel, PrunedMistralConfig, _shrink_llama)
PrunedMistralForCausalLM = _pruned(MistralForCausalLM, PrunedMistralConfig, _shrink_llama)
PrunedMistralForSequenceClassification = _pruned(MistralForSequenceClassification, PrunedMistralConfig, _shrink_llama)
PrunedMistralForQuestionAnswering = _pruned(MistralForQuestionAnswering, PrunedMistralConfig, _shrink_llama)
PrunedMistralForTokenClassification = _pruned(MistralForTokenClassification, PrunedMistralConfig, _shrink_llama)

PrunedQwen2Model = _pruned(Qwen2Model, PrunedQwen2Config, _shrink_llama)
PrunedQwen2ForCausalLM = _pruned(Qwen2ForCausalLM, PrunedQwen2Config, _shrink_llama)
PrunedQwen2ForSequenceClassification = _pruned(Qwen2ForSequenceClassification, PrunedQwen2Config, _shrink_llama)
PrunedQwen2ForQuestionAnswering = _pruned(Qwen2ForQuestionAnswering, PrunedQwen2Config, _shrink_llama)
PrunedQwen2ForTokenClassification = _pruned(Qwen2ForTokenClassification, PrunedQwen2Config, _shrink_llama)

#: The pruned backbone of every family, by config class name.
BACKBONES = {
    cls.config_class.__name__: cls
    for cls in (PrunedBertModel, PrunedRobertaModel, PrunedDistilBertModel, PrunedGPT2Model, PrunedOPTModel,
                PrunedLlamaModel, PrunedMistralModel, PrunedQwen2Model)
}
