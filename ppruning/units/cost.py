"""The cost model: what one head unit or FFN neuron costs, and what a model costs in total.

Per-unit costs come from :class:`~ppruning.arch.base.ModelShape` (docs/algorithms.md, shared
vocabulary): a head costs 4*L*d*d_h + 2*L^2*d_h multiply-accumulates and 4*d*d_h
parameters (+ biases), a neuron 2*L*d and 2*d (3*d gated). The *pruned part* is
attention + FFN, the only thing a budget is measured against. Embeddings, norms and task
heads are not pruned; they are reported separately (``other``), so a user sees both the
ratio the target promised and what the whole model gains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch import nn

from ppruning.arch.base import ModelShape
from ppruning.arch.registry import get_adapter

CostKind = Literal["flops", "params"]


@dataclass(frozen=True)
class UnitCosts:
    """Cost of one head unit and of one neuron, per layer (layers may differ after surgery)."""

    kind: CostKind
    head: np.ndarray  # [layers]
    neuron: np.ndarray  # [layers]


def unit_costs(shape: ModelShape, kind: CostKind, seq_len: float) -> UnitCosts:
    """Per-layer unit costs in MACs at ``seq_len`` tokens (``flops``) or in parameters."""
    layers = range(shape.num_layers)
    if kind == "flops":
        head = [shape.head_unit_macs(seq_len, layer=i) for i in layers]
        neuron = [shape.neuron_macs(seq_len) for _ in layers]
    elif kind == "params":
        head = [shape.head_unit_params(layer=i) for i in layers]
        neuron = [shape.neuron_params(layer=i) for i in layers]
    else:  # pragma: no cover - guarded by the Literal
        raise ValueError(f"unknown cost kind {kind!r}")
    return UnitCosts(kind, np.asarray(head, dtype=np.float64), np.asarray(neuron, dtype=np.float64))


def head_counts(shape: ModelShape) -> np.ndarray:
    return np.asarray([la.num_head_units for la in shape.layers], dtype=np.int64)


def neuron_counts(shape: ModelShape) -> np.ndarray:
    return np.asarray([la.ffn_size for la in shape.layers], dtype=np.int64)


def attention_total(shape: ModelShape, costs: UnitCosts) -> float:
    return float((head_counts(shape) * costs.head).sum())


def ffn_total(shape: ModelShape, costs: UnitCosts) -> float:
    return float((neuron_counts(shape) * costs.neuron).sum())


def pruned_part_total(shape: ModelShape, costs: UnitCosts) -> float:
    """Attention + FFN cost: the quantity ``flops_reduction`` / ``params_reduction`` refer to."""
    return attention_total(shape, costs) + ffn_total(shape, costs)


def linear_macs_per_token(model: nn.Module) -> int:
    """Multiply-accumulates per token of every dense projection (as the family's adapter names them).

    Used to price what is *not* pruned (task heads, the LM head, a pooler) without knowing
    the architecture: total projection MACs minus the attention/FFN projections the cost
    model already counts. A pooler runs on one token, not L; we count it at L (a small
    overestimate, stated in the report).
    """
    adapter = get_adapter(model)
    total = 0
    seen: set[int] = set()
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() != 2 or id(module) in seen:
            continue
        if adapter.is_projection(module):
            seen.add(id(module))
            total += int(weight.shape[0]) * int(weight.shape[1])
    return total


def _projection_macs_per_token(shape: ModelShape) -> float:
    """The attention/FFN projection MACs per token (the L-linear part of the cost model)."""
    total = 0.0
    for la in shape.layers:
        q_width = la.query_heads_per_unit * la.head_dim
        total += la.num_head_units * 2 * shape.hidden_size * (q_width + la.head_dim)
        total += la.ffn_size * shape.neuron_macs(1.0)
    return total


def model_costs(model: nn.Module, shape: ModelShape, seq_len: float) -> dict[str, Any]:
    """Parameters and MACs of the whole model, of its pruned part (attention + FFN) and the rest.

    Parameters are counted exactly from the tensors (tied weights once); the pruned part's
    from the cost model; ``other`` is the difference. MACs are per sequence of ``seq_len``.
    """
    params_total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    p_costs = unit_costs(shape, "params", seq_len)
    f_costs = unit_costs(shape, "flops", seq_len)
    part_params = pruned_part_total(shape, p_costs)
    part_flops = pruned_part_total(shape, f_costs)
    other_flops = max(0.0, seq_len * (linear_macs_per_token(model) - _projection_macs_per_token(shape)))
    return {
        "seq_len": float(seq_len),
        "params": {
            "total": int(params_total),
            "pruned_part": int(part_params),
            "attention": int(attention_total(shape, p_costs)),
            "ffn": int(ffn_total(shape, p_costs)),
            "other": int(params_total - part_params),
        },
        "flops": {
            "total": float(part_flops + other_flops),
            "pruned_part": float(part_flops),
            "attention": float(attention_total(shape, f_costs)),
            "ffn": float(ffn_total(shape, f_costs)),
            "other": float(other_flops),
        },
    }
