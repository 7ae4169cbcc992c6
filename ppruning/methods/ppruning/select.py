"""Centroid selection (docs/algorithms.md, P-pruning, step 6): one unit per cluster survives.

In each cluster keep the member with the largest mean |activation|, read from the
cluster's *own* members (the reference indexes the magnitudes of the wrong heads for
multi-head clusters).
"""

from __future__ import annotations

import numpy as np


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
