"""Physically remove pruned units from any supported model, in place.

One mechanism for every method: a method yields :class:`~ppruning.units.masks.Masks`, this
module cuts the coupled parameters (Q, K, V rows and biases with the output
projection's columns; FFN-in/gate/up rows with FFN-out columns) through the model's
adapter, then records the per-layer structure in ``model.config`` so the result
reloads with :func:`ppruning.load_pruned`. Masks that carry reconstruction's scales and
bias corrections have them applied to the output projections first, so masks plus scales
reproduce the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from ppruning.arch import ArchAdapter, get_adapter
from ppruning.model.heap import release_free_memory
from ppruning.units.masks import Masks, validate_masks


@torch.no_grad()
def prune_model(model: nn.Module, masks: Masks, adapter: ArchAdapter | None = None) -> nn.Module:
    """Cut the units ``masks`` marks 0 out of ``model`` (in place) and return it.

    ``masks`` must match the model's current shape and keep at least one head unit and
    one neuron in every layer (MaskShapeError otherwise). Layers that keep everything
    are not cut (their scales, if any, still apply).
    """
    adapter = adapter or get_adapter(model)
    before = adapter.shape()
    validate_masks(masks, before)
    if masks.has_scales:
        apply_scales(model, masks, adapter)
    for i, layer in enumerate(before.layers):
        heads = masks.kept_head_units(i)
        if len(heads) < layer.num_head_units:
            adapter.prune_head_units(i, heads)
        neurons = masks.kept_neurons(i)
        if len(neurons) < layer.ffn_size:
            adapter.prune_neurons(i, neurons)
        release_free_memory()  # the layer's cut weights are freed: keep the process's footprint falling
    from ppruning.arch.base import STRUCTURE_KEY

    first_cut = getattr(model.config, STRUCTURE_KEY, None) is None
    adapter.record_structure(original=before if first_cut else None)
    return model


@torch.no_grad()
def apply_scales(model: nn.Module, masks: Masks, adapter: ArchAdapter) -> None:
    """Multiply the kept units' output-projection columns by their scales; add the bias corrections.

    Runs on the full (not yet cut) model, before :func:`prune_model` removes
    the pruned columns; pruned columns are left as they are.
    """
    shape = adapter.shape()
    for i, la in enumerate(shape.layers):
        pairs = (
            (
                adapter.head_output_module(i),
                masks.head_scale,
                masks.head_mask,
                la.head_unit_width,
                masks.bias_delta_attention,
            ),
            (adapter.neuron_output_module(i), masks.neuron_scale, masks.neuron_mask, 1, masks.bias_delta_ffn),
        )
        for module, scale, mask, width, delta in pairs:
            if scale is not None:
                s = torch.where(mask[i] > 0.5, scale[i], torch.ones_like(scale[i])).repeat_interleave(width)
                w = adapter.weight_out_in(module)
                w.mul_(s.to(w.device, w.dtype).unsqueeze(0))
            if delta is not None:
                if module.bias is None:
                    raise ValueError(f"layer {i}: the output projection has no bias to add a correction to")
                module.bias.add_(delta[i].to(module.bias.device, module.bias.dtype))


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
