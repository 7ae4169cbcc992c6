"""``sweep``: one method at several targets, as child prune (or pipeline) jobs, summed up in a table and a plot."""

from __future__ import annotations

from typing import Any

from jobs.kinds.registry import KindDeclaration, Phases
from jobs.spec_checks import check_sweep_job
from jobs.specs import SweepJobSpec
from jobs.sweeps import WAITING


def plan(spec: dict[str, Any]) -> Phases:
    """A sweep runs no stage of its own: it waits for its children, its progress the share that finished."""
    return [("children", (WAITING,))]


KIND = KindDeclaration(
    name="sweep",
    spec=SweepJobSpec,
    summary="one method at several targets, as child jobs, summed up in a table and a plot",
    check=check_sweep_job,
    plan=plan,
    spawns=("prune", "pipeline"),
    examples={
        "sweep": {
            "summary": "P-pruning at four FLOPs targets, each fine-tuned: one table and one plot",
            "value": {
                "kind": "sweep",
                "model": {"id": "bert-base-uncased"},
                "task": {"name": "sst2"},
                "method": "ppruning",
                "targets": {"flops_reduction": [0.2, 0.3, 0.4, 0.5]},
                "finetune": {"preset": "paper"},
            },
        },
        "sweep-smp": {
            "summary": "SMP at three sparsities: the metric after fine-tuning against the remaining weights",
            "value": {
                "kind": "sweep",
                "model": {"id": "bert-base-uncased"},
                "task": {"name": "sst2"},
                "method": "smp",
                "targets": {"params_reduction": [0.5, 0.9, 0.97]},
                "finetune": {"preset": "paper"},
            },
        },
    },
)
