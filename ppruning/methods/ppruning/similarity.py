"""Distances between units of one layer, from their outputs over the sampled tokens.

Neurons: D(n, m) = 1 - |cos(z_n, z_m)|. Heads: the dimensions of head i are matched one
to one to those of head j on M[a, b] = |cos(Z_i[:, a], Z_j[:, b])| (greedy on the largest
entry, as the reference, or exactly with the Hungarian algorithm), sim = mean of the
matched entries, D = 1 - sim. Both are blind to permutation, sign and scale of a unit's
dimensions. Every pair is computed once, batched, on the activations' device; results
come back as scipy's *condensed* vector (pairs i < j in row-major order).

``distance_mode="reference"`` reproduces the reference, which hands the square D to
``linkage`` as observations with the Chebyshev metric: the clustered distance becomes
max_k |D(i, k) - D(j, k)|. :func:`reference_chebyshev` computes that, also condensed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

HeadMatching = Literal["greedy", "hungarian"]

_EPS = 1e-12


def _unit_columns(x: torch.Tensor) -> torch.Tensor:
    """Columns scaled to unit length; an all-zero column stays zero (cos 0 with everything)."""
    x = x.to(torch.float64 if x.device.type == "cpu" else torch.float32)
    return x / x.norm(dim=0, keepdim=True).clamp_min(_EPS)


def _condense(square: torch.Tensor) -> np.ndarray:
    n = square.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=square.device)
    return square[i, j].to(torch.float64).cpu().numpy()


def neuron_distances_square(z: torch.Tensor) -> torch.Tensor:
    """Square [n, n] of 1 - |cos| between the columns of ``z`` [samples, n]."""
    zn = _unit_columns(z)
    d = 1.0 - (zn.T @ zn).abs()
    d.clamp_(0.0, 1.0).fill_diagonal_(0.0)
    return d


def neuron_distances(z: torch.Tensor) -> np.ndarray:
    """Condensed 1 - |cos| between the columns of ``z`` [samples, n]."""
    return _condense(neuron_distances_square(z))


def _greedy_match_mean(m: torch.Tensor) -> torch.Tensor:
    """For each [w, w] matrix in the batch ``m`` [P, w, w], the mean of a greedy one-to-one matching.

    Repeatedly takes the largest remaining entry and strikes out its row and column, all
    pairs at once: w batched argmax steps.
    """
    p, w, _ = m.shape
    m = m.clone()
    total = torch.zeros(p, dtype=m.dtype, device=m.device)
    rows = torch.arange(p, device=m.device)
    for _ in range(w):
        flat = m.reshape(p, -1).argmax(dim=1)
        a, b = flat // w, flat % w
        total += m[rows, a, b]
        m[rows, a, :] = -1.0
        m[rows, :, b] = -1.0
    return total / w


def _hungarian_match_mean(m: torch.Tensor) -> torch.Tensor:
    from scipy.optimize import linear_sum_assignment

    out = torch.empty(m.shape[0], dtype=torch.float64)
    for k, mat in enumerate(m.to(torch.float64).cpu().numpy()):
        r, c = linear_sum_assignment(mat, maximize=True)
        out[k] = float(mat[r, c].mean())
    return out.to(m.device)


def head_distances_square(
    z: torch.Tensor, num_units: int, matching: HeadMatching = "greedy", max_chunk_elements: int = 2**24
) -> torch.Tensor:
    """Square [units, units] head distances; ``z`` is [samples, units * width], unit u = columns u*w..(u+1)*w."""
    s, total = z.shape
    if total % num_units:
        raise ValueError(f"{total} columns do not split into {num_units} head units")
    w = total // num_units
    zn = _unit_columns(z).reshape(s, num_units, w)
    i_idx, j_idx = torch.triu_indices(num_units, num_units, offset=1, device=z.device)
    sims = torch.empty(i_idx.numel(), dtype=zn.dtype, device=z.device)
    pair_chunk = max(1, max_chunk_elements // (w * w))  # bounds the [pairs, w, w] block
    for start in range(0, i_idx.numel(), pair_chunk):
        i, j = i_idx[start : start + pair_chunk], j_idx[start : start + pair_chunk]
        m = torch.einsum("spa,spb->pab", zn[:, i], zn[:, j]).abs()
        match = _greedy_match_mean if matching == "greedy" else _hungarian_match_mean
        sims[start : start + i.numel()] = match(m).to(sims.dtype)
    d = torch.zeros(num_units, num_units, dtype=zn.dtype, device=z.device)
    d[i_idx, j_idx] = (1.0 - sims).clamp(0.0, 1.0)
    return d + d.T


def head_distances(z: torch.Tensor, num_units: int, matching: HeadMatching = "greedy") -> np.ndarray:
    """Condensed head distances (see :func:`head_distances_square`)."""
    return _condense(head_distances_square(z, num_units, matching))


def reference_chebyshev(square: torch.Tensor, row_chunk: int = 512) -> np.ndarray:
    """Condensed max_k |D(i, k) - D(j, k)|: the reference's rows-as-observations Chebyshev distance.

    Equal to ``scipy.spatial.distance.pdist(D, "chebyshev")``, computed on D's device in
    row blocks (O(n^3) work, O(n^2) memory) instead of scipy's single-threaded loop.
    """
    n = square.shape[0]
    out = torch.empty(n, n, dtype=square.dtype, device=square.device)
    for start in range(0, n, row_chunk):
        block = square[start : start + row_chunk]
        out[start : start + block.shape[0]] = torch.cdist(block, square, p=float("inf"))
    return _condense(out)


def mean_abs_activation(z: torch.Tensor, num_units: int) -> np.ndarray:
    """Per unit, mean |activation| over samples (and over the unit's dimensions for heads)."""
    s = z.shape[0]
    return z.abs().reshape(s, num_units, -1).mean(dim=(0, 2)).to(torch.float64).cpu().numpy()


def dead_units(z: torch.Tensor, num_units: int) -> np.ndarray:
    """Per unit, True when every sampled output (every dimension, for heads) is exactly zero."""
    s = z.shape[0]
    return (z.reshape(s, num_units, -1) == 0).all(dim=2).all(dim=0).cpu().numpy()
