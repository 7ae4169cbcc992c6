"""P-pruning (Wang et al., LREC-COLING 2024): module clustering and centroid selection.

Reads top to bottom as the paper's steps (docs/algorithms.md, P-pruning): collect unit outputs at
sampled tokens -> per-layer distances -> complete linkage -> one global threshold per
unit type from the budget -> keep each cluster's largest-magnitude member.
``allocation="uniform"`` instead cuts every layer's dendrograms at the same number of
clusters (as even as the same budget allows).

How many examples are read and how (``max_instances``, ``max_length``, ``batch_size``,
``sampling_tokens``) is the shared sampling block, ``ctx.sampling``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ppruning.methods.contract import MethodContext, MethodSpec
from ppruning.methods.ppruning.cluster import Dendrogram, cut, layer_dendrogram
from ppruning.methods.ppruning.collect import collect
from ppruning.methods.ppruning.params import ClusteringParams, PPruningParams
from ppruning.methods.ppruning.select import centroids
from ppruning.methods.ppruning.similarity import (
    dead_units,
    head_distances_square,
    mean_abs_activation,
    neuron_distances_square,
)
from ppruning.methods.registry import register_method
from ppruning.units.budget import allocate, uniform_removal
from ppruning.units.masks import Masks
from ppruning.units.select import keep_mask


@dataclass
class LayerClusters:
    """Per layer and unit type: the dendrogram and every unit's mean |activation|."""

    heads: list[Dendrogram]
    neurons: list[Dendrogram]
    head_magnitude: list[np.ndarray]
    neuron_magnitude: list[np.ndarray]


def cluster_layers(ctx: MethodContext, params: ClusteringParams) -> LayerClusters:
    """Collect activations and cluster every layer's heads and neurons (stages collect, cluster)."""
    assert ctx.examples is not None, "P-pruning's clustering runs on task inputs"
    acts = collect(
        ctx.model,
        ctx.adapter,
        ctx.examples,
        sampling_tokens=ctx.sampling.sampling_tokens,
        seed=ctx.seed,
        batch_size=ctx.sampling.batch_size,
        pad_token_id=ctx.pad_token_id,
        progress=ctx.progress,
        skip_first=1 if params.first_token == "exclude" else 0,
    )
    ctx.details["collection"] = {
        "first_token": "included" if params.first_token == "include" else "excluded",
        "sampled_tokens": len(acts.sample),
        "pooled_real_tokens": acts.sample.pooled_real_tokens,
        "examples_run": acts.examples_run,
        "examples_read": len(ctx.examples),
    }
    shape = ctx.shape
    result = LayerClusters([], [], [], [])
    ctx.progress.start_stage("cluster", total=shape.num_layers, message=f"distance_mode={params.distance_mode}")
    first = params.dead_units == "first"
    dead_counts: dict[str, list[int]] = {"heads": [], "neurons": []}
    for i, la in enumerate(shape.layers):
        ctx.progress.checkpoint()
        dead_h = dead_units(acts.heads[i], la.num_head_units)
        dead_n = dead_units(acts.neurons[i], la.ffn_size)
        dead_counts["heads"].append(int(dead_h.sum()))
        dead_counts["neurons"].append(int(dead_n.sum()))
        head_d = head_distances_square(acts.heads[i], la.num_head_units, params.head_matching)
        result.heads.append(layer_dendrogram(head_d, params.distance_mode, dead_h if first else None))
        result.head_magnitude.append(mean_abs_activation(acts.heads[i], la.num_head_units))
        del head_d
        neuron_d = neuron_distances_square(acts.neurons[i])
        result.neurons.append(layer_dendrogram(neuron_d, params.distance_mode, dead_n if first else None))
        result.neuron_magnitude.append(mean_abs_activation(acts.neurons[i], la.ffn_size))
        del neuron_d
        acts.heads[i] = acts.neurons[i] = None  # type: ignore[call-overload]  # free as we go
        ctx.progress.update(i + 1)
    ctx.details["dead_units"] = {"policy": params.dead_units, **dead_counts}
    return result


def removed_per_layer(ctx: MethodContext, clusters: LayerClusters, allocation: str) -> tuple[np.ndarray, np.ndarray]:
    """Merges to take per layer for heads and neurons: global thresholds (exact) or uniform counts."""
    if allocation == "uniform":
        return uniform_removal(ctx.budget, ctx.shape)
    budget = ctx.budget
    heads = allocate([d.heights for d in clusters.heads], budget.costs.head, budget.head_removal)
    neurons = allocate([d.heights for d in clusters.neurons], budget.costs.neuron, budget.neuron_removal)
    ctx.details["thresholds"] = {"heads": heads.threshold, "neurons": neurons.threshold}
    return heads.removed, neurons.removed


def compute_masks(ctx: MethodContext) -> Masks:
    params: PPruningParams = ctx.params
    clusters = cluster_layers(ctx, params)
    removed_heads, removed_neurons = removed_per_layer(ctx, clusters, params.allocation)
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        labels = cut(clusters.heads[i], int(removed_heads[i]))
        head_rows.append(keep_mask(la.num_head_units, centroids(labels, clusters.head_magnitude[i])))
        labels = cut(clusters.neurons[i], int(removed_neurons[i]))
        neuron_rows.append(keep_mask(la.ffn_size, centroids(labels, clusters.neuron_magnitude[i])))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))


SPEC = register_method(
    MethodSpec(
        name="ppruning",
        summary="P-pruning: cluster heads and FFN neurons by output similarity on unlabeled task inputs, "
        "keep one centroid per cluster (structured, before fine-tuning, forward passes only).",
        kind="structured",
        needs="inputs",
        params_model=PPruningParams,
        run=compute_masks,
        stages=("collect", "cluster", "select"),
        version="2",  # dead units go first by default
    )
)
