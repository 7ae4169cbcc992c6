"""Complete-linkage clustering of one layer's units and cutting the dendrogram.

The linkage runs once per layer and unit type; the budget (``ppruning.units.budget``) then
decides how many merges each layer takes, and :func:`cut` turns "the first k merges"
into cluster labels. Complete linkage is monotone (scipy returns merges sorted by
height), so the first k merges are exactly the clusters at threshold = height of merge k,
and the cluster count at threshold t is n - #(heights <= t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ppruning.methods.ppruning.similarity import reference_chebyshev

DistanceMode = Literal["condensed", "reference"]


@dataclass(frozen=True)
class Dendrogram:
    """scipy's linkage matrix ``z`` ([n - 1, 4]) for ``n`` units; ``heights`` = z[:, 2], ascending."""

    n: int
    z: np.ndarray

    @property
    def heights(self) -> np.ndarray:
        return self.z[:, 2]


def complete_linkage(condensed: np.ndarray, n: int) -> Dendrogram:
    """Complete linkage on a condensed distance vector of ``n`` units (n = 1: no merges)."""
    from scipy.cluster.hierarchy import linkage

    if n < 1 or condensed.shape != (n * (n - 1) // 2,):
        raise ValueError(f"condensed distances of length {condensed.shape} do not describe {n} units")
    if n == 1:
        return Dendrogram(1, np.zeros((0, 4)))
    z = linkage(np.asarray(condensed, dtype=np.float64), method="complete")
    return Dendrogram(n, z)


def layer_dendrogram(
    square: torch.Tensor, mode: DistanceMode = "condensed", dead: np.ndarray | None = None
) -> Dendrogram:
    """Cluster one layer from its square distance matrix, as docs/algorithms.md, P-pruning, step 4 says.

    ``condensed``: linkage on D itself. ``reference``: linkage on the Chebyshev distance
    between rows of D, which is what the reference's ``linkage(D, metric="chebyshev")`` does.

    ``dead`` (bool per unit): units whose sampled outputs are all zero get distance 0 to
    every unit, after the mode's transform. Under complete linkage they then merge first
    (at height 0) and never change a distance between live clusters (the max with 0), and
    centroid selection, by mean |activation|, never keeps one over a live member: dead
    units are the first to go. Without this a dead unit is at distance 1 from everything,
    never merges and is always kept.
    """
    n = square.shape[0]
    if mode == "reference":
        condensed = reference_chebyshev(square)
    elif mode == "condensed":
        i, j = torch.triu_indices(n, n, offset=1, device=square.device)
        condensed = square[i, j].to(torch.float64).cpu().numpy()
    else:
        raise ValueError(f"unknown distance_mode {mode!r}")
    if dead is not None and dead.any():
        i, j = np.triu_indices(n, k=1)
        condensed = np.where(dead[i] | dead[j], 0.0, condensed)
    return complete_linkage(condensed, n)


def cut(dendrogram: Dendrogram, merges: int) -> np.ndarray:
    """Cluster labels (0..n-merges-1, in order of first member) after the first ``merges`` merges."""
    n = dendrogram.n
    if not 0 <= merges <= n - 1:
        raise ValueError(f"cannot take {merges} merges of {n} units")
    parent = np.arange(2 * n - 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in range(merges):
        a, b = int(dendrogram.z[row, 0]), int(dendrogram.z[row, 1])
        parent[find(a)] = n + row
        parent[find(b)] = n + row
    roots = [find(u) for u in range(n)]
    relabel: dict[int, int] = {}
    return np.asarray([relabel.setdefault(r, len(relabel)) for r in roots], dtype=np.int64)


def clusters_at(dendrogram: Dendrogram, threshold: float) -> int:
    """Number of clusters when every merge of height <= ``threshold`` is taken."""
    return dendrogram.n - int(np.searchsorted(dendrogram.heights, threshold, side="right"))
