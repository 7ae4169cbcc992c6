"""``flap``: FLAP (An et al., AAAI 2024), fluctuation-based structured pruning with bias compensation.

docs/algorithms.md, decoder baselines, FLAP. From one pass of the dense model over the
calibration inputs:

1. **Fluctuation.** For an output projection W [d, channels] (attention output, FFN down)
   and its input channel j over the N calibration tokens, the *weighted input feature
   variance* S_j = var_n(x_n,j) * ||W_:,j||^2 (sample variance, N - 1): how much the
   channel's contribution to the residual stream moves around its mean; a channel that
   barely moves can be replaced by its mean at little loss.
2. **Standardised scores.** Each layer's channel scores are standardised per unit type
   ((S - mean) / std over the layer's channels), so layers and unit types compare on one
   scale; a head unit scores the mean of its ``head_unit_width`` channels.
3. **Allocation.** ``global`` (the paper's AL-AM, the default): one ranking of every head
   unit and neuron of every layer, taken lowest first, each weighted by its cost (a head
   unit costs what its Q, K, V rows and O columns cost), until the budget's total removal is
   met, so the split between attention and FFN is FLAP's own (``lambda_val`` plays no part;
   the report says so). ``per-type``: one ranking per unit type, the budget's 1 :
   ``lambda_val`` split. ``uniform``: the same counts in every layer. Every layer keeps a
   head unit and a neuron (the harness's floor).
4. **Bias compensation.** A removed channel's mean contribution is added to the output
   projection's bias: delta = W_:,removed @ mean(x_removed), per layer and unit type; it
   travels with the masks (``bias_delta_attention`` / ``bias_delta_ffn``) and surgery
   applies it. Where a projection has no bias (Llama, Mistral, Qwen2) it is, by default
   (``auto``), not applied and the report says so per unit type; ``add`` gives the
   projection one where the family's stock config has a flag for it (Llama's
   ``attention_bias`` / ``mlp_bias``, which also give Q, K, V / gate, up zero biases: a few
   parameters more, and the checkpoint still loads with a stock config).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ppruning.arch.base import ArchAdapter
from ppruning.methods.baselines.calibration import (
    ChannelMoments,
    LayerMoments,
    keep_highest,
    removal_per_type,
    run_calibration,
)
from ppruning.methods.contract import MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.units.budget import allocate, ranked_heights, uniform_removal
from ppruning.units.masks import Masks


class FLAPParams(MethodParams):
    allocation: Literal["global", "per-type", "uniform"] = Field(
        default="global",
        description="One cost-weighted ranking of heads and neurons over all layers (the paper's AL-AM), "
        "one ranking per unit type (budget split 1 : lambda_val), or the same counts in every layer.",
    )
    bias_compensation: Literal["auto", "add", "off"] = Field(
        default="auto",
        description="Add the removed channels' mean contribution to the output projections' bias where they have "
        "one (auto); also give them one where the stock config can (add: Llama's attention_bias / mlp_bias, "
        "zero biases on Q, K, V and gate, up too); or not at all (off).",
    )


def fluctuation(weight: torch.Tensor, moments: ChannelMoments) -> torch.Tensor:
    """S_j = var(x_j) * ||W_:,j||^2 per input channel j of ``weight`` [out, in] (float64)."""
    col_sq = weight.detach().double().pow(2).sum(dim=0)
    return moments.variance.to(col_sq.device) * col_sq


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """(s - mean) / std over one layer's channels (std with N - 1, as torch.std); all zero when constant."""
    centred = scores - scores.mean()
    std = scores.std() if scores.numel() > 1 else torch.zeros((), dtype=scores.dtype)
    return centred / std if float(std) > 0 else torch.zeros_like(scores)


def flap_scores(adapter: ArchAdapter, moments: LayerMoments, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(head-unit scores, neuron scores) of one layer: standardised fluctuation, heads averaged over their channels."""
    la = adapter.layer_shape(layer)
    w_o = adapter.weight_out_in(adapter.head_output_module(layer))
    heads = standardise(fluctuation(w_o, moments.heads[layer])).reshape(la.num_head_units, la.head_unit_width)
    w_down = adapter.weight_out_in(adapter.neuron_output_module(layer))
    neurons = standardise(fluctuation(w_down, moments.neurons[layer]))
    return heads.mean(dim=1).cpu().numpy(), neurons.cpu().numpy()


def joint_removal(
    ctx: MethodContext, head_scores: list[np.ndarray], neuron_scores: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """FLAP's AL-AM: heads and neurons of every layer in one ranking, removed lowest first by cost."""
    b, n = ctx.budget, ctx.shape.num_layers
    heights = ranked_heights(head_scores) + ranked_heights(neuron_scores)  # 2n groups: heads, then neurons
    costs = np.concatenate([b.costs.head, b.costs.neuron])
    removed = allocate(heights, costs, b.head_removal + b.neuron_removal).removed
    return removed[:n], removed[n:]


def bias_delta(weight: torch.Tensor, moments: ChannelMoments, kept_columns: torch.Tensor) -> torch.Tensor:
    """W_:,removed @ mean(x_removed): the removed channels' mean contribution to the projection's output."""
    removed = (kept_columns < 0.5).to(weight.device)
    mean = moments.mean.to(weight.device) * removed
    return (weight.detach().double() @ mean).float().cpu()


def compensation(ctx: MethodContext, moments: LayerMoments, masks: Masks) -> Masks:
    """The masks with FLAP's bias corrections, for each unit type whose output projection has a bias."""
    adapter, shape = ctx.adapter, ctx.shape
    notes: dict[str, str] = {}
    deltas: dict[str, torch.Tensor | None] = {}
    add = ctx.params.bias_compensation == "add"
    for kind, module_of, columns_of, store in (
        ("attention", adapter.head_output_module, masks.head_columns, moments.heads),
        ("ffn", adapter.neuron_output_module, lambda i, w: masks.neuron_columns(i), moments.neurons),
    ):
        added = add and getattr(module_of(0), "bias", None) is None and adapter.add_output_bias(kind)
        if getattr(module_of(0), "bias", None) is None:
            deltas[kind] = None
            notes[kind] = (
                f"not applied: {ctx.adapter.model.config.model_type}'s {kind} output projection has no bias "
                + (
                    "and its config has no flag to add one"
                    if add
                    else "(bias_compensation: 'add' gives it one where the stock config can)"
                )
            )
            continue
        rows = []
        for i, la in enumerate(shape.layers):
            weight = adapter.weight_out_in(module_of(i))
            rows.append(bias_delta(weight, store[i], columns_of(i, la.head_unit_width)))
        deltas[kind] = torch.stack(rows)
        notes[kind] = "applied: the removed channels' mean contribution added to the output projection's bias"
        if added:
            flag = adapter.bias_flags[kind][0]
            notes[kind] += f" (a bias added: config.{flag} = true, zero biases on the other projections it governs)"
    ctx.details["bias_compensation"] = notes
    return Masks(
        masks.head_mask,
        masks.neuron_mask,
        bias_delta_attention=deltas["attention"],
        bias_delta_ffn=deltas["ffn"],
    )


def flap_masks(ctx: MethodContext) -> Masks:
    params: FLAPParams = ctx.params
    moments = run_calibration(ctx, "flap")
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    scores = [flap_scores(ctx.adapter, moments, i) for i in range(ctx.shape.num_layers)]
    head_scores, neuron_scores = [s[0] for s in scores], [s[1] for s in scores]
    if params.allocation == "global":
        removed_heads, removed_neurons = joint_removal(ctx, head_scores, neuron_scores)
        ctx.details["allocation"] = "global over layers and unit types (AL-AM); lambda_val not used"
    elif params.allocation == "per-type":
        removed_heads, removed_neurons = removal_per_type(ctx, head_scores, neuron_scores)
    else:
        removed_heads, removed_neurons = uniform_removal(ctx.budget, ctx.shape)
    masks = keep_highest(ctx, head_scores, neuron_scores, removed_heads, removed_neurons)
    if params.bias_compensation == "off":
        ctx.details["bias_compensation"] = "off (bias_compensation: 'off')"
        return masks
    return compensation(ctx, moments, masks)


FLAP = register_method(
    MethodSpec(
        name="flap",
        summary="FLAP (An et al., AAAI 2024): units by the weighted variance of their outputs on calibration "
        "inputs, standardised for one ranking over layers and unit types; the removed units' mean output is "
        "added to the output projection's bias.",
        kind="structured",
        needs="inputs",
        params_model=FLAPParams,
        run=flap_masks,
        stages=("collect", "select"),
    )
)
