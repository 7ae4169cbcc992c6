"""The ``magnitude`` baseline: keep the heads and neurons with the largest weight norms.

docs/algorithms.md, baselines.

A head's score is the norm of its columns of the attention output projection; a neuron's
is its FFN-out column norm times its FFN-in row norm (product over gate and up for gated
FFNs). Counts are uniform (as even as the budget allows over the layers), or
``allocation="global"`` ranks every unit of a type against the others (the smallest go
first). The budget, the one-unit-per-layer floor and the materialisation are every
method's, so the comparison is like for like.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ppruning.arch.base import ArchAdapter
from ppruning.methods.contract import MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.units.budget import allocate, ranked_heights, uniform_removal
from ppruning.units.masks import Masks
from ppruning.units.select import keep_mask, top_k


class MagnitudeParams(MethodParams):
    allocation: Literal["uniform", "global"] = Field(
        default="uniform", description="Per-layer counts as even as possible, or one global ranking per unit type."
    )


def magnitude_scores(adapter: ArchAdapter, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(head-unit scores, neuron scores) of one layer from weight norms."""
    la = adapter.layer_shape(layer)
    w_o = adapter.weight_out_in(adapter.head_output_module(layer)).detach().float()  # [d, units*width]
    col_sq = (w_o**2).sum(dim=0).reshape(la.num_head_units, la.head_unit_width)
    heads = col_sq.sum(dim=1).sqrt()
    neurons = adapter.weight_out_in(adapter.neuron_output_module(layer)).detach().float().norm(dim=0)
    for module in adapter.neuron_input_modules(layer):
        neurons = neurons * adapter.weight_out_in(module).detach().float().norm(dim=1)
    return heads.double().cpu().numpy(), neurons.double().cpu().numpy()


def magnitude_masks(ctx: MethodContext) -> Masks:
    params: MagnitudeParams = ctx.params
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    scores = [magnitude_scores(ctx.adapter, i) for i in range(ctx.shape.num_layers)]
    head_scores, neuron_scores = [s[0] for s in scores], [s[1] for s in scores]
    if params.allocation == "global":
        b = ctx.budget
        removed_heads = allocate(ranked_heights(head_scores), b.costs.head, b.head_removal).removed
        removed_neurons = allocate(ranked_heights(neuron_scores), b.costs.neuron, b.neuron_removal).removed
    else:
        removed_heads, removed_neurons = uniform_removal(ctx.budget, ctx.shape)
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        head_rows.append(keep_mask(la.num_head_units, top_k(head_scores[i], la.num_head_units - removed_heads[i])))
        neuron_rows.append(keep_mask(la.ffn_size, top_k(neuron_scores[i], la.ffn_size - removed_neurons[i])))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))


MAGNITUDE = register_method(
    MethodSpec(
        name="magnitude",
        summary="Baseline: keep the heads and neurons with the largest weight norms.",
        kind="structured",
        needs="weights",
        params_model=MagnitudeParams,
        run=magnitude_masks,
    )
)
