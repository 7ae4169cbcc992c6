"""Whole-layer removal: what a depth-pruning method decides, and how a target becomes a count of layers.

docs/algorithms.md, decoder baselines, ShortGPT. A :class:`LayerDrop` names the decoder
layers to remove (indices of the unpruned model). Every layer of an unpruned model costs
the same (attention + FFN, FLOPs or parameters alike), so removing n of L layers removes
exactly n / L of the pruned part; the target is met by the smallest such n, and at least
one layer always stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ppruning.errors import InfeasibleTargetError
from ppruning.units.budget import Target

_REL_TOL = 1e-9


@dataclass(frozen=True)
class LayerDrop:
    """The layers to remove (sorted indices into the unpruned model's ``num_layers`` layers)."""

    removed: tuple[int, ...]
    num_layers: int
    #: The method's score per layer (lower: removed first), for the report.
    scores: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        removed = tuple(sorted(int(i) for i in self.removed))
        if len(set(removed)) != len(removed) or any(not 0 <= i < self.num_layers for i in removed):
            raise ValueError(f"layers to remove {list(removed)} are not distinct indices below {self.num_layers}")
        if len(removed) >= self.num_layers:
            raise ValueError("at least one layer must stay")
        object.__setattr__(self, "removed", removed)

    @property
    def kept(self) -> list[int]:
        return [i for i in range(self.num_layers) if i not in set(self.removed)]


def layers_to_remove(target: Target, num_layers: int) -> int:
    """The smallest n with n / num_layers >= the target; InfeasibleTargetError when that leaves no layer."""
    n = math.ceil(target.value * num_layers * (1.0 - _REL_TOL))
    if n >= num_layers:
        best = (num_layers - 1) / num_layers
        raise InfeasibleTargetError(
            f"{target.kind}_reduction={target.value:g} would remove all {num_layers} layers; removing whole layers "
            f"allows at most {best:.4f} (keeping one)",
            largest_feasible=best,
            field=f"target.{target.kind}_reduction",
        )
    return max(1, n)
