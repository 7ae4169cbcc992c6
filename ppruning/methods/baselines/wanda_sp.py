"""``wanda-sp``: Wanda's score (weight magnitude times input norm) summed per structured unit.

docs/algorithms.md, decoder baselines, Wanda-sp. The structured form of Wanda (Sun et al.,
ICLR 2024) that FLAP (An et al., AAAI 2024) compares against: for the output projection W
[d, channels] of a unit type and the calibration activations X [tokens, channels] of its
input, channel j scores sum_i |W_ij| * ||X_:,j||_2; a head unit scores the sum over its
``head_unit_width`` channels, a neuron its one channel. Only the output projections are
scored, as in the authors' code. Per-layer counts are uniform (the paper's: every layer
loses the same share) or, with ``allocation="global"``, one ranking per unit type over all
layers. No compensation of its own: the library's (``reconstruct``) applies as to any
structured method.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ppruning.arch.base import ArchAdapter
from ppruning.methods.baselines.calibration import LayerMoments, keep_highest, removal_per_type, run_calibration
from ppruning.methods.contract import MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.units.budget import uniform_removal
from ppruning.units.masks import Masks


class WandaSPParams(MethodParams):
    allocation: Literal["uniform", "global"] = Field(
        default="uniform",
        description="The same count removed in every layer (the paper's), or one ranking per unit type over layers.",
    )


def channel_scores(weight: torch.Tensor, sq_norm: torch.Tensor) -> torch.Tensor:
    """sum_i |W_ij| * ||X_j||, per input channel j of a projection ``weight`` [out, in]."""
    return weight.detach().double().abs().sum(dim=0) * sq_norm.to(weight.device, torch.float64).sqrt()


def wanda_sp_scores(adapter: ArchAdapter, moments: LayerMoments, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(head-unit scores, neuron scores) of one layer."""
    la = adapter.layer_shape(layer)
    w_o = adapter.weight_out_in(adapter.head_output_module(layer))
    heads = channel_scores(w_o, moments.heads[layer].sq_norm).reshape(la.num_head_units, la.head_unit_width).sum(1)
    w_down = adapter.weight_out_in(adapter.neuron_output_module(layer))
    neurons = channel_scores(w_down, moments.neurons[layer].sq_norm)
    return heads.cpu().numpy(), neurons.cpu().numpy()


def masks_from_scores(
    ctx: MethodContext, head_scores: list[np.ndarray], neuron_scores: list[np.ndarray], allocation: str
) -> Masks:
    """Keep the highest-scoring units at uniform counts, or at the counts one ranking per unit type gives."""
    if allocation == "global":
        removed_heads, removed_neurons = removal_per_type(ctx, head_scores, neuron_scores)
    else:
        removed_heads, removed_neurons = uniform_removal(ctx.budget, ctx.shape)
    return keep_highest(ctx, head_scores, neuron_scores, removed_heads, removed_neurons)


def wanda_sp_masks(ctx: MethodContext) -> Masks:
    params: WandaSPParams = ctx.params
    moments = run_calibration(ctx, "wanda-sp")
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    scores = [wanda_sp_scores(ctx.adapter, moments, i) for i in range(ctx.shape.num_layers)]
    return masks_from_scores(ctx, [s[0] for s in scores], [s[1] for s in scores], params.allocation)


WANDA_SP = register_method(
    MethodSpec(
        name="wanda-sp",
        summary="Baseline (Wanda-sp, as FLAP compares with it): units by |W| times input activation norm "
        "on the output projections, summed per head unit and neuron.",
        kind="structured",
        needs="inputs",
        params_model=WandaSPParams,
        run=wanda_sp_masks,
        stages=("collect", "select"),
    )
)
