"""Removing whole decoder layers from a model, in place, so a stock config describes the result.

docs/algorithms.md, decoder baselines, ShortGPT. The family's block list (the adapter's
``layout.blocks``) is replaced by the kept blocks in their order, and everything that
counts or numbers the layers follows: ``config.num_hidden_layers`` (every family maps its
own field, ``n_layer`` for GPT-2, to that name), per-layer config lists such as
``layer_types``, and each kept block's ``layer_idx`` attributes, which index the KV cache
(a cache is built with one slot per configured layer, and a block reads and writes the
slot of its ``layer_idx``). The result saves with ``save_pretrained`` and loads with the
stock class; no weight of a kept layer changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ppruning.arch import ArchAdapter, get_adapter

#: Config fields holding one entry per layer, sliced to the kept layers.
PER_LAYER_CONFIG_LISTS = ("layer_types",)


@torch.no_grad()
def drop_layers(model: nn.Module, removed: Sequence[int], adapter: ArchAdapter | None = None) -> nn.Module:
    """Remove the blocks ``removed`` (indices into the current blocks) from ``model`` and return it."""
    adapter = adapter or get_adapter(model)
    blocks = adapter.layers()
    gone = set(int(i) for i in removed)
    if any(not 0 <= i < len(blocks) for i in gone) or len(gone) >= len(blocks):
        raise ValueError(f"cannot remove layers {sorted(gone)} of {len(blocks)} (one must stay)")
    kept = [i for i in range(len(blocks)) if i not in gone]
    owner_path, _, name = adapter.layout.blocks.rpartition(".")
    owner = adapter.backbone.get_submodule(owner_path) if owner_path else adapter.backbone
    setattr(owner, name, nn.ModuleList([blocks[i] for i in kept]))
    for new_index, block in enumerate(adapter.layers()):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_index
    config = model.config
    for key in PER_LAYER_CONFIG_LISTS:
        values = getattr(config, key, None)
        if isinstance(values, list | tuple) and len(values) == len(blocks):
            setattr(config, key, [values[i] for i in kept])
    config.num_hidden_layers = len(kept)
    return model
