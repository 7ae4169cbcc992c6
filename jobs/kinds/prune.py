"""``prune``: prune a model for a task with one method down to one target."""

from __future__ import annotations

from typing import Any

from jobs.kinds.plans import export_phases, prune_phase
from jobs.kinds.registry import KindDeclaration, Phases
from jobs.spec_checks import check_prune_job
from jobs.specs import PruneJobSpec


def plan(spec: dict[str, Any]) -> Phases:
    return [prune_phase(spec), *export_phases(spec)]


KIND = KindDeclaration(
    name="prune",
    spec=PruneJobSpec,
    summary="prune a model for a task with one method down to one target",
    check=check_prune_job,
    plan=plan,
    examples={
        "prune": {
            "summary": "Prune BERT by 30% of its FLOPs for SST-2 with P-pruning",
            "value": {
                "kind": "prune",
                "model": {"id": "bert-base-uncased"},
                "task": {"name": "sst2"},
                "method": "ppruning",
                "target": {"flops_reduction": 0.3},
            },
        },
        "prune-smp": {
            "summary": "SMP: keep 10% of BERT's weights for SST-2, learning from a finished fine-tune job",
            "value": {
                "kind": "prune",
                "model": {"id": "bert-base-uncased"},
                "task": {"name": "sst2"},
                "method": "smp",
                "target": {"params_reduction": 0.9},
                "distill": {"from_job": "5f0d3c2a-1b7e-4c9d-8e6f-2a4b6c8d0e1f"},
            },
        },
    },
)
