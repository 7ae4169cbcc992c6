"""Budget: the 1:lambda split, the exact threshold, one unit per layer, infeasible targets."""

from __future__ import annotations

import numpy as np
import pytest

from ppruning.arch.base import LayerShape, ModelShape
from ppruning.errors import InfeasibleTargetError
from ppruning.units.budget import (
    Target,
    allocate,
    largest_feasible,
    make_budget,
    ranked_heights,
    split,
    uniform_allocation,
)
from ppruning.units.cost import pruned_part_total, unit_costs


def bert_base_shape(layers: int = 12) -> ModelShape:
    return ModelShape(768, tuple(LayerShape(12, 64, 1, 64, 3072) for _ in range(layers)), gated_ffn=False)


def _random_heights(rng: np.random.Generator, counts: list[int]) -> list[np.ndarray]:
    return [np.sort(rng.random(n - 1)) for n in counts]


def _brute_force_threshold(heights: list[np.ndarray], cost: np.ndarray, removal: float) -> float:
    """Raise the threshold through every candidate, as the reference's scan would with an infinitely fine step."""
    for t in np.unique(np.concatenate(heights)):
        removed = sum(cost[i] * np.count_nonzero(h <= t) for i, h in enumerate(heights))
        if removed >= removal:
            return float(t)
    raise AssertionError("unreachable target")


@pytest.mark.parametrize("seed", range(5))
def test_exact_threshold_search_gives_the_brute_force_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = [12, 12, 9, 12, 5]
    heights = _random_heights(rng, counts)
    cost = rng.uniform(1.0, 3.0, size=len(counts))
    removal = rng.uniform(0.05, 0.9) * float(sum(cost[i] * (n - 1) for i, n in enumerate(counts)))
    alloc = allocate(heights, cost, removal)
    t = _brute_force_threshold(heights, cost, removal)
    assert alloc.threshold == t
    expected = [np.count_nonzero(h <= t) for h in heights]
    assert alloc.removed.tolist() == expected


@pytest.mark.parametrize("seed", range(5))
def test_removed_cost_meets_the_budget_within_one_units_cost(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = [64, 64, 40, 64]
    heights = [np.round(h, 2) for h in _random_heights(rng, counts)]  # many ties
    cost = np.array([2.0, 2.0, 3.0, 2.0])
    removal = 100.0
    alloc = allocate(heights, cost, removal)
    removed_cost = float((alloc.removed * cost).sum())
    assert removal <= removed_cost < removal + cost.max()
    assert all(r <= n - 1 for r, n in zip(alloc.removed, counts, strict=True))  # >= 1 unit kept per layer


def test_zero_removal_takes_no_merges() -> None:
    alloc = allocate([np.array([0.1, 0.2])], np.array([1.0]), 0.0)
    assert alloc.removed.tolist() == [0]


def test_lambda_split_is_one_to_lambda() -> None:
    att, ffn = split(60.0, 5)
    assert att == pytest.approx(10.0) and ffn == pytest.approx(50.0)


def test_budget_totals_match_the_target() -> None:
    shape = bert_base_shape()
    budget = make_budget(Target(flops_reduction=0.3), shape, 128, lambda_val=5)
    total = pruned_part_total(shape, unit_costs(shape, "flops", 128))
    assert budget.total == pytest.approx(total)
    assert budget.head_removal + budget.neuron_removal == pytest.approx(0.3 * total)
    assert budget.neuron_removal == pytest.approx(5 * budget.head_removal)


@pytest.mark.parametrize("kind", ["flops", "params"])
def test_infeasible_target_names_the_largest_feasible_value(kind: str) -> None:
    shape = bert_base_shape(2)
    costs = unit_costs(shape, kind, 128)
    best = largest_feasible(shape, costs, 5)
    assert 0.5 < best < 1.0
    make_budget(Target(**{f"{kind}_reduction": best * 0.999}), shape, 128, 5)  # feasible: no error
    with pytest.raises(InfeasibleTargetError) as err:
        make_budget(Target(**{f"{kind}_reduction": min(0.99, best + 0.01)}), shape, 128, 5)
    assert f"{best:.4f}" in str(err.value)
    assert err.value.largest_feasible == pytest.approx(best)
    assert err.value.field == f"target.{kind}_reduction"


def test_largest_feasible_keeps_exactly_one_unit_per_layer_on_the_binding_side() -> None:
    shape = bert_base_shape(3)
    costs = unit_costs(shape, "flops", 128)
    best = largest_feasible(shape, costs, 5)
    budget = make_budget(Target(flops_reduction=best * (1 - 1e-12)), shape, 128, 5)
    # FFN is binding at lambda 5: its share is (nearly) every neuron but one per layer
    assert budget.neuron_removal == pytest.approx(3 * 3071 * costs.neuron[0], rel=1e-9)


def test_uniform_allocation_is_even_and_meets_the_budget() -> None:
    removed = uniform_allocation(np.array([12, 12, 12]), np.array([1.0, 1.0, 1.0]), 7.0)
    assert sorted(removed.tolist()) == [2, 2, 3]
    with pytest.raises(InfeasibleTargetError):
        uniform_allocation(np.array([2, 2]), np.array([1.0, 1.0]), 3.0)


def test_ranked_heights_never_remove_a_layers_best_unit() -> None:
    scores = [np.array([3.0, 1.0, 2.0]), np.array([5.0, 4.0])]
    alloc = allocate(ranked_heights(scores), np.array([1.0, 1.0]), 10.0 - 7.0)
    assert alloc.removed.tolist() == [2, 1]
