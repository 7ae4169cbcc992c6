"""From a target to per-layer unit counts: the split, feasibility and the exact threshold.

docs/algorithms.md, shared vocabulary (budget, allocation).

The removed cost (target * F, F = attention + FFN cost) is split 1 : ``lambda_val``
between attention and FFN. Each unit type then gets one global threshold, raised until
the removed cost meets that type's share. Removing one unit of layer l costs c_l;
sorting every layer's merge heights together and taking them in order is raising the
threshold, so the smallest sufficient threshold is found exactly by a binary search
(``searchsorted``) over the cumulative cost of the sorted merges. Merges of exactly
equal height are taken one at a time (layer order, then merge order), so the removed
cost never exceeds the target by a unit's cost or more; the reference instead scans
thresholds in steps of 0.0005 and overshoots by a step.

A layer of n units has n - 1 merges, so at least one unit per layer always stays; a
target that would need more is infeasible and is rejected before any forward pass with
the largest feasible value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ppruning.arch.base import ModelShape
from ppruning.errors import InfeasibleTargetError
from ppruning.units.cost import UnitCosts, attention_total, ffn_total, head_counts, neuron_counts, unit_costs

_REL_TOL = 1e-9

#: Which units a budget may remove: heads and neurons split 1 : lambda_val, or FFN neurons alone.
BudgetScope = Literal["attention+ffn", "ffn"]


class Target(BaseModel):
    """Exactly one of the two: the fraction of attention+FFN FLOPs or of their parameters removed."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    flops_reduction: float | None = Field(default=None, gt=0.0, lt=1.0)
    params_reduction: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.flops_reduction is None) == (self.params_reduction is None):
            raise ValueError("give exactly one of 'flops_reduction' or 'params_reduction'")
        return self

    @property
    def kind(self) -> Literal["flops", "params"]:
        return "flops" if self.flops_reduction is not None else "params"

    @property
    def value(self) -> float:
        return self.flops_reduction if self.flops_reduction is not None else self.params_reduction  # type: ignore[return-value]


@dataclass(frozen=True)
class Budget:
    """How much cost each unit type must lose."""

    kind: str  # 'flops' | 'params'
    target: float
    lambda_val: float
    total: float  # F: attention + FFN cost before pruning
    head_removal: float
    neuron_removal: float
    costs: UnitCosts
    scope: BudgetScope = "attention+ffn"


@dataclass(frozen=True)
class Allocation:
    """Units removed per layer for one unit type, and the threshold that removes them."""

    removed: np.ndarray  # [layers]
    threshold: float  # height of the last merge taken (-inf when none)
    removed_cost: float
    target_cost: float


def split(target_removal: float, lambda_val: float) -> tuple[float, float]:
    """(attention, FFN) shares of ``target_removal`` in the ratio 1 : lambda_val."""
    return target_removal / (1.0 + lambda_val), target_removal * lambda_val / (1.0 + lambda_val)


def largest_feasible(shape: ModelShape, costs: UnitCosts, lambda_val: float) -> float:
    """The largest target fraction reachable with one head unit and one neuron kept per layer."""
    heads, neurons = head_counts(shape), neuron_counts(shape)
    total = attention_total(shape, costs) + ffn_total(shape, costs)
    max_att = float(((heads - 1) * costs.head).sum())
    max_ffn = float(((neurons - 1) * costs.neuron).sum())
    limits = []
    if lambda_val >= 0:
        limits.append(max_att * (1.0 + lambda_val))
    if lambda_val > 0:
        limits.append(max_ffn * (1.0 + lambda_val) / lambda_val)
    return min(limits) / total


def largest_feasible_ffn_only(shape: ModelShape, costs: UnitCosts) -> float:
    """The largest target fraction the FFN alone can remove, keeping one neuron per layer."""
    total = attention_total(shape, costs) + ffn_total(shape, costs)
    return float(((neuron_counts(shape) - 1) * costs.neuron).sum()) / total


def make_budget(
    target: Target, shape: ModelShape, seq_len: float, lambda_val: float, scope: BudgetScope = "attention+ffn"
) -> Budget:
    """Split ``target`` into per-type removals, or raise :class:`InfeasibleTargetError`.

    ``scope="ffn"`` (methods that slice the FFN only): the whole removal falls on the
    neurons, ``lambda_val`` plays no part, and the target is feasible up to what the FFN
    holds beyond one neuron per layer. The target keeps its meaning either way: a fraction
    of attention + FFN cost.
    """
    costs = unit_costs(shape, target.kind, seq_len)
    total = attention_total(shape, costs) + ffn_total(shape, costs)
    if scope == "ffn":
        return _ffn_only_budget(target, shape, costs, total, lambda_val)
    best = largest_feasible(shape, costs, lambda_val)
    if target.value > best * (1.0 + _REL_TOL):
        field = f"target.{target.kind}_reduction"
        raise InfeasibleTargetError(
            f"{target.kind}_reduction={target.value!r} is infeasible for this model with lambda_val={lambda_val:g}: "
            f"keeping one head and one neuron per layer allows at most {best:.4f}; "
            f"lower the target to {best:.4f} or less (or change lambda_val)",
            largest_feasible=best,
            field=field,
        )
    head, neuron = split(target.value * total, lambda_val)
    return Budget(target.kind, target.value, lambda_val, total, head, neuron, costs)


def _ffn_only_budget(target: Target, shape: ModelShape, costs: UnitCosts, total: float, lambda_val: float) -> Budget:
    best = largest_feasible_ffn_only(shape, costs)
    if target.value > best * (1.0 + _REL_TOL):
        share = ffn_total(shape, costs) / total
        raise InfeasibleTargetError(
            f"{target.kind}_reduction={target.value:g} is infeasible for a method that prunes the FFN only: "
            f"the FFN is {share:.1%} of this model's attention+FFN {target.kind}, so keeping one neuron per layer "
            f"allows at most {best:.4f}; lower the target to {best:.4f} or less",
            largest_feasible=best,
            field=f"target.{target.kind}_reduction",
        )
    return Budget(target.kind, target.value, lambda_val, total, 0.0, target.value * total, costs, scope="ffn")


def allocate(heights: Sequence[np.ndarray], unit_cost: np.ndarray, removal: float) -> Allocation:
    """Per-layer merges to take so the removed cost first reaches ``removal``.

    ``heights[l]`` are layer l's merge heights (ascending, n_l - 1 of them);
    ``unit_cost[l]`` is what one unit of layer l costs. Taking a merge removes one unit.
    """
    num_layers = len(heights)
    layer_of = np.concatenate([np.full(len(h), i, dtype=np.int64) for i, h in enumerate(heights)] or [[]])
    all_heights = np.concatenate([np.asarray(h, dtype=np.float64) for h in heights] or [[]])
    order = np.argsort(all_heights, kind="stable")  # ties: layer order, then merge order
    layer_of, all_heights = layer_of[order].astype(np.int64), all_heights[order]
    cumulative = np.cumsum(np.asarray(unit_cost, dtype=np.float64)[layer_of])
    if removal <= 0:
        k = 0
    else:
        k = int(np.searchsorted(cumulative, removal * (1.0 - _REL_TOL), side="left")) + 1
        if k > len(cumulative):
            reachable = float(cumulative[-1]) if len(cumulative) else 0.0
            raise InfeasibleTargetError(
                f"cannot remove {removal:.4g} cost units; at most {reachable:.4g} keep one unit per layer",
                largest_feasible=float("nan"),
            )
    removed = np.bincount(layer_of[:k], minlength=num_layers)
    return Allocation(
        removed=removed,
        threshold=float(all_heights[k - 1]) if k else float("-inf"),
        removed_cost=float(cumulative[k - 1]) if k else 0.0,
        target_cost=float(removal),
    )


def ranked_heights(scores: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Turn per-unit scores (low = remove first) into merge-like heights: all but each layer's best.

    Lets score-based methods (magnitude) reuse :func:`allocate` for a global allocation.
    """
    return [np.sort(np.asarray(s, dtype=np.float64))[:-1] for s in scores]


def uniform_removal(budget: Budget, shape: ModelShape) -> tuple[np.ndarray, np.ndarray]:
    """(heads, neurons) removed per layer, spread as evenly as the budget allows (``allocation="uniform"``)."""
    heads = uniform_allocation(head_counts(shape), budget.costs.head, budget.head_removal)
    neurons = uniform_allocation(neuron_counts(shape), budget.costs.neuron, budget.neuron_removal)
    return heads, neurons


def uniform_allocation(counts: np.ndarray, unit_cost: np.ndarray, removal: float) -> np.ndarray:
    """Remove units round-robin over the layers (as evenly as possible) until ``removal`` is met."""
    counts = np.asarray(counts, dtype=np.int64)
    removed = np.zeros_like(counts)
    spent = 0.0
    while spent < removal * (1.0 - _REL_TOL):
        progressed = False
        for layer in range(len(counts)):
            if spent >= removal * (1.0 - _REL_TOL):
                break
            if counts[layer] - removed[layer] > 1:
                removed[layer] += 1
                spent += float(unit_cost[layer])
                progressed = True
        if not progressed:
            raise InfeasibleTargetError(
                f"cannot remove {removal:.4g} cost units keeping one unit per layer", largest_feasible=float("nan")
            )
    return removed
