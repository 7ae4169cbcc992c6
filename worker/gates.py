"""Quality gates of a pipeline job: dense vs pruned score and measured speedup against ``accept``.

The verdict is data, not an error: a rejected model is a finished job (``succeeded``)
whose ``result.verdict`` is ``rejected``, with the figures that decided it, so a CI step
can fail on it (``ppruning wait`` exits 4) and still download what was made.

The drop is in the main metric's own units: ``dense - pruned`` where higher is better,
``pruned - dense`` where lower is better (perplexity); negative when the pruned model
scores better. The speedup is the prune report's ``speed.speedup`` (dense latency over
pruned latency at the largest measured batch size, on the job's device).
"""

from __future__ import annotations

from typing import Any

from jobs.specs import AcceptCriteria
from ppruning import DataError, TaskInfo

PASSED, REJECTED = "passed", "rejected"


def score_split(accept: AcceptCriteria, info: TaskInfo, *score_sets: dict[str, dict[str, float]]) -> str:
    """The split the scores come from: ``accept.split``, else the task's first evaluation split every set has."""
    wanted = [accept.split] if accept.split else [*info.eval_splits, *sorted(score_sets[0])]
    for split in wanted:
        if all(info.main_metric in scores.get(split, {}) for scores in score_sets):
            return split
    where = f"split {accept.split!r}" if accept.split else "any evaluation split"
    raise DataError(
        f"no {info.main_metric} score on {where} to judge the gate by; give the task an evaluation split "
        f"({', '.join(info.eval_splits)}) with labels, or name one in accept.split",
        field="accept.split",
    )


def decide(
    accept: AcceptCriteria,
    info: TaskInfo,
    pruned_metrics: dict[str, dict[str, float]],
    dense_metrics: dict[str, dict[str, float]] | None,
    speed: dict[str, Any],
) -> dict[str, Any]:
    """Every figure and threshold, the reasons for a rejection, and the verdict."""
    gate: dict[str, Any] = {
        "metric": info.main_metric,
        "greater_is_better": info.greater_is_better,
        "max_metric_drop": accept.max_metric_drop,
        "min_speedup": accept.min_speedup,
        "reasons": [],
    }
    if accept.max_metric_drop is not None:
        sets = [pruned_metrics] if dense_metrics is None else [pruned_metrics, dense_metrics]
        split = score_split(accept, info, *sets)
        pruned = float(pruned_metrics[split][info.main_metric])
        if accept.dense_score is not None:
            dense, source = float(accept.dense_score), "given"
        else:
            assert dense_metrics is not None, "the dense model is fine-tuned when no dense_score is given"
            dense, source = float(dense_metrics[split][info.main_metric]), "fine-tuned with the same settings"
        drop = dense - pruned if info.greater_is_better else pruned - dense
        gate.update(split=split, dense_score=dense, dense_score_source=source, pruned_score=pruned, metric_drop=drop)
        if drop > accept.max_metric_drop + 1e-12:
            gate["reasons"].append(
                f"{info.main_metric} dropped by {drop:.4g} on {split} (dense {dense:.4g}, pruned {pruned:.4g}); "
                f"at most {accept.max_metric_drop:g} allowed"
            )
    if accept.min_speedup is not None:
        speedup = speed.get("speedup") if speed.get("measured") else None
        gate.update(speedup=speedup, speedup_batch_size=speed.get("speedup_batch_size"), device=speed.get("device"))
        if speedup is None and speed.get("noisy"):
            gate["reasons"].append(
                "the speedup measurement was noisy (a busy machine or a short time budget); no figure to compare"
            )
        elif speedup is None:
            gate["reasons"].append("the speedup was not measured")
        elif speedup < accept.min_speedup:
            gate["reasons"].append(
                f"measured speedup {speedup:.3g}x at batch {speed.get('speedup_batch_size')} on {speed.get('device')}; "
                f"at least {accept.min_speedup:g}x required"
            )
    gate["verdict"] = REJECTED if gate["reasons"] else PASSED
    return gate


def gate_metrics(gate: dict[str, Any]) -> dict[str, float]:
    """The gate's figures as metrics of split ``gate`` (1.0 = passed)."""
    out = {"passed": 1.0 if gate["verdict"] == PASSED else 0.0}
    for key in ("dense_score", "pruned_score", "metric_drop", "speedup"):
        if isinstance(gate.get(key), int | float):
            out[key] = float(gate[key])
    return out
