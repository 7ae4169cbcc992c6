"""P-pruning (Wang et al., LREC-COLING 2024): module clustering and centroid selection.

Reads top to bottom as the paper's steps (ALGORITHMS.md): collect unit outputs at
sampled tokens -> per-layer distances -> complete linkage -> one global threshold per
unit type from the budget -> keep each cluster's largest-magnitude member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from pydantic import Field

from ppruning.budget import Allocation, allocate
from ppruning.cluster import Dendrogram, cut, layer_dendrogram
from ppruning.collect import collect
from ppruning.methods.registry import MethodInfo, MethodParams, register_method
from ppruning.select import centroids, keep_mask
from ppruning.similarity import head_distances_square, mean_abs_activation, neuron_distances_square

if TYPE_CHECKING:
    from ppruning.masks import Masks
    from ppruning.pipeline import PruneContext


class PPruningParams(MethodParams):
    """P-pruning's parameters (the reference's defaults)."""

    max_instances: int = Field(default=3000, ge=1, le=1_000_000, description="Task examples read (train split).")
    sampling_tokens: int = Field(
        default=200, ge=2, le=100_000, description="Real token positions sampled, shared by every layer."
    )
    lambda_val: float = Field(
        default=5.0, ge=0.0, le=1000.0, description="Removed cost split 1 : lambda_val between attention and FFN."
    )
    distance_mode: Literal["condensed", "reference"] = Field(
        default="condensed",
        description="'condensed': linkage on D; 'reference': the reference's Chebyshev over rows of D.",
    )
    head_matching: Literal["greedy", "hungarian"] = Field(
        default="greedy", description="Matching of head dimensions: greedy (reference) or exact (Hungarian)."
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="Examples per forward pass during collection.")
    max_length: int | None = Field(default=None, ge=8, le=65536, description="Token limit; default the task's.")

    @property
    def uses_data(self) -> bool:
        return True


@dataclass
class LayerClusters:
    """Per layer and unit type: the dendrogram and every unit's mean |activation|."""

    heads: list[Dendrogram]
    neurons: list[Dendrogram]
    head_magnitude: list[np.ndarray]
    neuron_magnitude: list[np.ndarray]


def cluster_layers(ctx: PruneContext, params: PPruningParams) -> LayerClusters:
    """Collect activations and cluster every layer's heads and neurons (stages collect, cluster)."""
    acts = collect(
        ctx.model,
        ctx.adapter,
        ctx.examples,
        sampling_tokens=params.sampling_tokens,
        seed=ctx.config.seed,
        batch_size=params.batch_size,
        pad_token_id=ctx.pad_token_id,
        progress=ctx.progress,
    )
    ctx.details["collection"] = {
        "sampled_tokens": len(acts.sample),
        "pooled_real_tokens": acts.sample.pooled_real_tokens,
        "examples_run": acts.examples_run,
        "examples_read": len(ctx.examples),
    }
    shape = ctx.shape
    result = LayerClusters([], [], [], [])
    ctx.progress.start_stage("cluster", total=shape.num_layers, message=f"distance_mode={params.distance_mode}")
    for i, la in enumerate(shape.layers):
        ctx.progress.checkpoint()
        head_d = head_distances_square(acts.heads[i], la.num_head_units, params.head_matching)
        result.heads.append(layer_dendrogram(head_d, params.distance_mode))
        result.head_magnitude.append(mean_abs_activation(acts.heads[i], la.num_head_units))
        del head_d
        neuron_d = neuron_distances_square(acts.neurons[i])
        result.neurons.append(layer_dendrogram(neuron_d, params.distance_mode))
        result.neuron_magnitude.append(mean_abs_activation(acts.neurons[i], la.ffn_size))
        del neuron_d
        acts.heads[i] = acts.neurons[i] = None  # type: ignore[call-overload]  # free as we go
        ctx.progress.update(i + 1)
    return result


def allocate_clusters(ctx: PruneContext, clusters: LayerClusters) -> tuple[Allocation, Allocation]:
    """Merges per layer for heads and neurons: the exact global thresholds the budget asks for."""
    budget = ctx.budget
    heads = allocate([d.heights for d in clusters.heads], budget.costs.head, budget.head_removal)
    neurons = allocate([d.heights for d in clusters.neurons], budget.costs.neuron, budget.neuron_removal)
    ctx.details["thresholds"] = {"heads": heads.threshold, "neurons": neurons.threshold}
    return heads, neurons


def compute_masks(ctx: PruneContext) -> Masks:
    from ppruning.masks import Masks

    params = PPruningParams.model_validate(ctx.config.params)
    clusters = cluster_layers(ctx, params)
    heads, neurons = allocate_clusters(ctx, clusters)
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        labels = cut(clusters.heads[i], int(heads.removed[i]))
        head_rows.append(keep_mask(la.num_head_units, centroids(labels, clusters.head_magnitude[i])))
        labels = cut(clusters.neurons[i], int(neurons.removed[i]))
        neuron_rows.append(keep_mask(la.ffn_size, centroids(labels, clusters.neuron_magnitude[i])))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))


INFO = register_method(
    MethodInfo(
        name="ppruning",
        summary="P-pruning: cluster heads and FFN neurons by output similarity on unlabeled task inputs, "
        "keep one centroid per cluster (structured, before fine-tuning, forward passes only).",
        kind="structured",
        data="unlabeled",
        params_model=PPruningParams,
        compute_masks=compute_masks,
    )
)
