"""Baselines with P-pruning's budget machinery: ``random`` (seeded) and ``magnitude``.

Both remove the same cost split 1 : lambda_val as P-pruning, keep at least one unit per
layer and go through the same materialisation, so every comparison is like for like.

- ``random``: per layer a uniformly random choice of units, at *uniform* counts (as even
  as the budget allows over the layers, no data needed) or at the per-layer counts
  *P-pruning* would keep (``allocation="ppruning"``: runs P-pruning's collection and
  clustering for the counts, then ignores which units it chose).
- ``magnitude``: keep the units with the largest weight norms: a head's columns of the
  attention output projection; a neuron's FFN-out column norm times its FFN-in row norm
  (product over gate and up for gated FFNs). Counts are uniform, or ``allocation="global"``
  ranks every unit of a type against the others (the smallest go first).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.budget import allocate, ranked_heights, uniform_removal
from ppruning.masks import Masks
from ppruning.methods.contract import MethodContext, MethodParams, MethodSpec
from ppruning.methods.ppruning_method import ClusteringParams, cluster_layers, removed_per_layer
from ppruning.methods.registry import register_method
from ppruning.select import keep_mask, random_k, top_k

# --------------------------------------------------------------------------- random


class RandomParams(ClusteringParams):
    """``allocation="ppruning"`` finds the counts with P-pruning's clustering; ``uniform`` needs only lambda_val."""

    allocation: Literal["uniform", "ppruning"] = Field(
        default="uniform", description="Per-layer counts: as even as possible, or those P-pruning would keep."
    )

    @model_validator(mode="before")
    @classmethod
    def _counts_is_allocation(cls, data: Any) -> Any:
        """Older specs named the field ``counts``."""
        if isinstance(data, dict) and "counts" in data:
            data = dict(data)
            counts = data.pop("counts")
            if data.setdefault("allocation", counts) != counts:
                raise ValueError("give 'allocation' only ('counts' is its older name)")
        return data


def _random_uses_data(params: RandomParams) -> bool:
    return params.allocation == "ppruning"


def _random_stages(params: RandomParams) -> tuple[str, ...]:
    return ("collect", "cluster", "select") if _random_uses_data(params) else ("select",)


def random_masks(ctx: MethodContext) -> Masks:
    params: RandomParams = ctx.params
    if params.allocation == "ppruning":
        removed_heads, removed_neurons = removed_per_layer(ctx, cluster_layers(ctx, params), "global")
    else:
        removed_heads, removed_neurons = uniform_removal(ctx.budget, ctx.shape)
    generator = torch.Generator().manual_seed(ctx.seed)
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        n_h, n_f = la.num_head_units, la.ffn_size
        head_rows.append(keep_mask(n_h, random_k(n_h, n_h - int(removed_heads[i]), generator)))
        neuron_rows.append(keep_mask(n_f, random_k(n_f, n_f - int(removed_neurons[i]), generator)))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))


# --------------------------------------------------------------------------- magnitude


class MagnitudeParams(MethodParams):
    allocation: Literal["uniform", "global"] = Field(
        default="uniform", description="Per-layer counts as even as possible, or one global ranking per unit type."
    )


def _weight_as_out_in(module: nn.Module) -> torch.Tensor:
    """The weight as [out_features, in_features] (GPT-2's Conv1D stores [in, out])."""
    w = module.weight.detach().float()
    return w.T if type(module).__name__ == "Conv1D" else w


def magnitude_scores(adapter: ArchAdapter, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(head-unit scores, neuron scores) of one layer from weight norms."""
    la = adapter.layer_shape(layer)
    w_o = _weight_as_out_in(adapter.head_output_module(layer))  # [d, units*width]
    col_sq = (w_o**2).sum(dim=0).reshape(la.num_head_units, la.head_unit_width)
    heads = col_sq.sum(dim=1).sqrt()
    neurons = _weight_as_out_in(adapter.neuron_output_module(layer)).norm(dim=0)
    for module in adapter.neuron_input_modules(layer):
        neurons = neurons * _weight_as_out_in(module).norm(dim=1)
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


RANDOM = register_method(
    MethodSpec(
        name="random",
        summary="Baseline: seeded random heads and neurons per layer, at uniform counts or at P-pruning's counts.",
        kind="structured",
        needs="weights",
        params_model=RandomParams,
        run=random_masks,
        stages_for=_random_stages,
        reads_data_for=_random_uses_data,
        version="2",  # allocation="ppruning": dead units go first by default
    )
)

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
