"""Models of pruned checkpoints whose layers differ in size.

This file is copied next to the weights of such a checkpoint and loaded by
``AutoModel*.from_pretrained(..., trust_remote_code=True)``; it imports only torch and
transformers, never the library that pruned the model, and names no model family.

Every class is the stock transformers class of its family under the prefix ``Pruned``,
made on first use (``PrunedBertForSequenceClassification`` from
``BertForSequenceClassification``). After the stock constructor has built full-size
layers, each layer's attention projections and FFN are rebuilt at the sizes the config
lists per layer (kept heads are the first ones, as they were saved), and the attention
modules are told their head counts, so that ``from_pretrained`` loads the saved tensors
into exactly matching shapes. Where the projections and those attributes live is the
family's layout, carried by the config (``pruned_layout``, written by the library from
the family's adapter).
"""

from __future__ import annotations

from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoModel
from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

from .configuration_pruned import LAYOUT_KEY, pruned_config_class


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    owner, _, name = path.rpartition(".")
    return (root.get_submodule(owner) if owner else root), name


def _resized(
    root: nn.Module, path: str, transposed: bool, outputs: int | None = None, inputs: int | None = None
) -> None:
    """Rebuild the projection at ``path`` (uninitialised) with ``outputs`` x ``inputs`` features."""
    owner, name = _parent(root, path)
    old = getattr(owner, name)
    like = {"device": old.weight.device, "dtype": old.weight.dtype}
    if transposed:  # GPT-2's Conv1D: weight [nx, nf], resized in place
        nx = inputs if inputs is not None else old.weight.shape[0]
        nf = outputs if outputs is not None else old.weight.shape[1]
        old.weight = nn.Parameter(torch.empty(nx, nf, **like))
        if nf != old.bias.shape[0]:
            old.bias = nn.Parameter(torch.zeros(nf, **like))
        old.nx, old.nf = nx, nf
        return
    new = nn.Linear(
        inputs if inputs is not None else old.in_features,
        outputs if outputs is not None else old.out_features,
        bias=old.bias is not None,
        **like,
    )
    setattr(owner, name, new)


def _set(root: nn.Module, paths: list[str], value: int) -> None:
    for path in paths:
        owner, name = _parent(root, path)
        setattr(owner, name, value)


def _layers(config: Any) -> list[tuple[int, int, int | None]]:
    """(query heads, KV heads, FFN size) of every layer."""
    n = config.num_hidden_layers
    heads = config.layer_num_attention_heads or [config.num_attention_heads] * n
    kv = getattr(config, "layer_num_key_value_heads", None) or heads
    ffn = config.layer_ffn_size or [None] * n
    return list(zip(heads, kv, ffn, strict=True))


def _shrink(model: nn.Module) -> None:
    """Rebuild every layer at the sizes its config lists, where the config's layout says."""
    layout = getattr(model.config, LAYOUT_KEY)
    transposed = bool(layout["transposed"])
    blocks = model.base_model.get_submodule(layout["blocks"])
    for block, (heads, kv_heads, ffn) in zip(blocks, _layers(model.config), strict=True):
        owner, name = _parent(block, layout["head_dim"])
        head_dim = int(getattr(owner, name))
        q_width, kv_width = heads * head_dim, kv_heads * head_dim
        if layout["qkv"] is not None:
            _resized(block, layout["qkv"], transposed, outputs=q_width + 2 * kv_width)
        else:
            _resized(block, layout["query"], transposed, outputs=q_width)
            _resized(block, layout["key"], transposed, outputs=kv_width)
            _resized(block, layout["value"], transposed, outputs=kv_width)
        _resized(block, layout["attn_out"], transposed, inputs=q_width)
        _set(block, layout["head_count_attrs"], heads)
        _set(block, layout["head_width_attrs"], q_width)
        if ffn is not None:
            for path in layout["ffn_in"]:
                _resized(block, path, transposed, outputs=ffn)
            _resized(block, layout["ffn_out"], transposed, inputs=ffn)
            _set(block, layout["ffn_size_attrs"], ffn)


def _pruned(name: str, stock: type) -> type:
    """``stock`` whose constructor cuts every layer to the sizes the config lists."""
    config_class = pruned_config_class(stock.config_class)

    def __init__(self: nn.Module, config: Any, *args: Any, **kwargs: Any) -> None:
        # Some task heads build their backbone with ``AutoModel.from_config(config)``; the
        # config class may be another copy of this file's (transformers imports each remote
        # file on its own), so map that very class to the pruned backbone first.
        backbone = __getattr__("Pruned" + MODEL_MAPPING_NAMES[config.stock_type])
        AutoModel.register(type(config), backbone, exist_ok=True)
        stock.__init__(self, config, *args, **kwargs)
        _shrink(self)

    return type(name, (stock,), {"__init__": __init__, "config_class": config_class, "__module__": __name__,
                                 "__qualname__": name})


def __getattr__(name: str) -> type:
    """``Pruned<Stock>``, made from transformers' model class ``<Stock>`` on first use (PEP 562)."""
    if name in globals():
        return globals()[name]
    stock = getattr(transformers, name[len("Pruned") :], None) if name.startswith("Pruned") else None
    if not (isinstance(stock, type) and issubclass(stock, transformers.PreTrainedModel)):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _pruned(name, stock)
    globals()[name] = cls
    return cls
