"""Which units survive: one centroid per cluster, or the top-scoring units of a layer.

Centroid selection (ALGORITHMS.md step 6): in each cluster keep the member with the
largest mean |activation|, read from the cluster's *own* members (the reference indexes
the magnitudes of the wrong heads for multi-head clusters).
"""

from __future__ import annotations

import numpy as np
import torch


def centroids(labels: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Sorted indices of the kept units: per cluster label, its member with the largest magnitude.

    Ties go to the lowest index, so the choice is deterministic.
    """
    labels = np.asarray(labels)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if labels.shape != magnitude.shape:
        raise ValueError(f"labels {labels.shape} and magnitudes {magnitude.shape} differ in shape")
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        kept.append(int(members[np.argmax(magnitude[members])]))
    return np.sort(np.asarray(kept, dtype=np.int64))


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
