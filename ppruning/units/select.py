"""Which units survive a score: the top-scoring units of a layer, a random draw, and their masks.

Method-independent: P-pruning's centroid choice lives with the method
(:mod:`ppruning.methods.ppruning.select`).
"""

from __future__ import annotations

import numpy as np
import torch


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the ``k`` largest scores (ties to the lowest index)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:k]).astype(np.int64)


def random_k(n: int, k: int, generator: torch.Generator) -> np.ndarray:
    """Sorted indices of ``k`` of ``n`` units drawn uniformly without replacement."""
    return np.sort(torch.randperm(n, generator=generator)[:k].numpy()).astype(np.int64)


def keep_mask(n: int, kept: np.ndarray) -> torch.Tensor:
    """Float mask of length ``n`` with 1 at ``kept``."""
    mask = torch.zeros(n, dtype=torch.float32)
    mask[torch.as_tensor(kept, dtype=torch.long)] = 1.0
    return mask
