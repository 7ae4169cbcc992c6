"""A tiny random model for any ``config.model_type`` the adapter registry supports.

The method x adapter test matrix reads the registries, so a new adapter is covered
without editing a test: its stock config is built with ``AutoConfig.for_model`` and
shrunk through the standard names (``hidden_size``, ``num_hidden_layers``,
``num_attention_heads``, which every config maps to its own fields) and whichever FFN
size field it has. Grouped-query families get two KV groups of two query heads.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel

from ppruning.arch import adapter_class
from tests.support.tiny_models import bert_tokenizer, bpe_tokenizer

#: Names configs use for the FFN width, tried in order.
FFN_FIELDS = ("intermediate_size", "ffn_dim", "n_inner", "hidden_dim")
HIDDEN, LAYERS, HEADS, FFN = 32, 3, 4, 64


def tiny_config(model_type: str, vocab_size: int, pad_token_id: int, bos: int | None, eos: int | None):
    config = AutoConfig.for_model(model_type)
    config.hidden_size, config.num_hidden_layers, config.num_attention_heads = HIDDEN, LAYERS, HEADS
    ffn = next((name for name in FFN_FIELDS if hasattr(config, name)), None)
    if ffn is None:
        raise AssertionError(f"no FFN size field on the {model_type!r} config; extend FFN_FIELDS")
    setattr(config, ffn, FFN)
    for name, value in (("num_key_value_heads", 2), ("head_dim", HIDDEN // HEADS), ("word_embed_proj_dim", HIDDEN)):
        if hasattr(config, name):
            setattr(config, name, value)
    for name, value in (("max_position_embeddings", 130), ("n_positions", 130), ("sliding_window", None)):
        if hasattr(config, name):
            setattr(config, name, value)
    config.vocab_size, config.pad_token_id, config.num_labels = vocab_size, pad_token_id, 2
    config.bos_token_id, config.eos_token_id = bos, eos
    values = config.to_dict()
    values.pop("layer_types", None)  # per-layer attention kinds sized for the stock depth: derive again
    config = type(config)(**values)
    shape = adapter_class(model_type).shape_from_config(config)
    assert shape.layers[0].ffn_size == FFN and shape.num_layers == LAYERS, (model_type, shape)
    return config


def save_tiny(model_type: str, path: Path) -> Path:
    """Save a tiny random ``model_type`` base model and a tokenizer; a task loads its own head on top."""
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(path) if model_type in ("bert", "distilbert") else bpe_tokenizer()
    pad = tokenizer.pad_token_id
    config = tiny_config(model_type, len(tokenizer), pad, tokenizer.bos_token_id, tokenizer.eos_token_id)
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
