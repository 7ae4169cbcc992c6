"""Masking units without cutting them: forward pre-hooks on the output projections.

A head unit's output is a block of input columns of the attention output projection,
a neuron's output one input column of the FFN down projection; multiplying those
inputs by the mask is exactly "this unit contributes nothing". The pruned model must
equal the masked one (the surgery invariant), and collection uses the same hook points.
Reconstruction's scales multiply the same inputs, and its bias corrections are added to
the projections' outputs by a forward hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ppruning.arch import ArchAdapter, get_adapter
from ppruning.units.masks import Masks, validate_masks


def _scale_input_hook(column_mask: torch.Tensor) -> Any:
    cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = column_mask.to(device=x.device, dtype=x.dtype)
        return (x * cache[key], *args[1:])

    return hook


def _add_output_hook(delta: torch.Tensor) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return output + delta.to(device=output.device, dtype=output.dtype)

    return hook


@contextmanager
def apply_masks(model: nn.Module, masks: Masks, adapter: ArchAdapter | None = None) -> Iterator[ArchAdapter]:
    """Within the block, ``model`` behaves as if the masked-out units were zero (and kept ones scaled).

    Hooks are removed on exit, also when the block raises. Yields the adapter.
    """
    adapter = adapter or get_adapter(model)
    shape = adapter.shape()
    validate_masks(masks, shape, allow_empty_layers=True)
    handles = []
    try:
        for i, layer in enumerate(shape.layers):
            head_out, neuron_out = adapter.head_output_module(i), adapter.neuron_output_module(i)
            head_cols = masks.head_columns(i, layer.head_unit_width)
            handles.append(head_out.register_forward_pre_hook(_scale_input_hook(head_cols)))
            handles.append(neuron_out.register_forward_pre_hook(_scale_input_hook(masks.neuron_columns(i))))
            if masks.bias_delta_attention is not None:
                handles.append(head_out.register_forward_hook(_add_output_hook(masks.bias_delta_attention[i])))
            if masks.bias_delta_ffn is not None:
                handles.append(neuron_out.register_forward_hook(_add_output_hook(masks.bias_delta_ffn[i])))
        yield adapter
    finally:
        for h in handles:
            h.remove()
