"""Massive activations: token weights for the compensation's statistics.

Decoders put a few tokens (the attention sink, the first token; some delimiters) at
activations hundreds of times the typical one (Sun et al., 2024, "Massive activations in
large language models"). In an uncentred second moment such a token outweighs thousands
of ordinary ones, and a fit that matches it gets everything else wrong; dropping it
instead leaves the model unfitted exactly where its output is largest. Measured on
SmolLM2-135M (README, decoder benchmark): down-weighting beat both.

A token's weight is computed per projection from its input x: with ``r_n = ||x_n||^2 /
median ||x||^2`` over the batch's real tokens, ``downweight`` gives ``min(1, ratio /
r_n)``, so no token weighs more than ``ratio`` median tokens in the normal matrix;
``exclude`` gives 0 above the ratio; ``keep`` gives 1 everywhere.
"""

from __future__ import annotations

from typing import Literal

import torch

OutlierHandling = Literal["downweight", "exclude", "keep"]


def token_weights(x: torch.Tensor, handling: OutlierHandling, ratio: float) -> torch.Tensor:
    """Per-token weights [n] for inputs ``x`` [n, D] (real tokens of one batch)."""
    n = x.shape[0]
    if handling == "keep" or n == 0:
        return torch.ones(n, dtype=torch.float64, device=x.device)
    energy = torch.linalg.vector_norm(x, dim=1, dtype=torch.float64).pow(2)  # no float64 copy of the batch
    typical = energy.median().clamp(min=1e-30)
    rel = energy / typical
    if handling == "exclude":
        return (rel <= ratio).to(torch.float64)
    return torch.clamp(ratio / rel.clamp(min=1e-30), max=1.0)
