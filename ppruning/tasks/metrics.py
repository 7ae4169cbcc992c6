"""Task metrics with the official GLUE definitions, computed with scikit-learn and scipy.

GLUE: accuracy; F1 of the positive class (MRPC, QQP; label 1); Matthews correlation
(CoLA); Pearson and Spearman correlation (STS-B, reported with their mean). SQuAD's
EM/F1 are in :mod:`ppruning.tasks.squad_scoring`; perplexity is exp(mean token NLL).
Every function returns plain floats, so metrics serialise to JSON unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from ppruning.tasks.registry import TaskInfo


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def f1_binary(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """F1 of class 1, as GLUE scores MRPC and QQP."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0.0))


def f1_macro(predictions: Sequence[int], labels: Sequence[int]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0.0))


def matthews(predictions: Sequence[int], labels: Sequence[int]) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(labels, predictions))


def pearson(predictions: Sequence[float], labels: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: reported as 0.0 below
        return _finite(pearsonr(predictions, labels)[0])


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(spearmanr(predictions, labels)[0])


def perplexity(mean_nll: float) -> float:
    """exp(mean token negative log-likelihood); inf when it overflows rather than an error."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


def _finite(value: float) -> float:
    # A constant prediction has no correlation; scipy says nan, which JSON and comparisons choke on.
    value = float(value)
    return 0.0 if math.isnan(value) else value


def classification_metrics(info: TaskInfo, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics from logits; rows whose label is -1 (hidden) are left out."""
    keep = labels >= 0
    predictions = np.asarray(logits)[keep].argmax(axis=-1)
    labels = np.asarray(labels)[keep]
    out = {"accuracy": accuracy(predictions, labels)}
    if "f1" in info.metrics:
        binary = logits.shape[-1] == 2
        out["f1"] = f1_binary(predictions, labels) if binary else f1_macro(predictions, labels)
    if "matthews_correlation" in info.metrics:
        out["matthews_correlation"] = matthews(predictions, labels)
    return out


def regression_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    p, s = pearson(predictions, labels), spearman(predictions, labels)
    return {
        "pearson": p,
        "spearman": s,
        "pearson_spearman_mean": (p + s) / 2,
        "mse": float(np.mean((predictions - labels) ** 2)),
    }
