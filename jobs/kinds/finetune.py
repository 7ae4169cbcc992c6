"""``finetune``: fine-tune a model, or the pruned model of a finished job, on a task."""

from __future__ import annotations

from typing import Any

from jobs.kinds.plans import finetune_phase
from jobs.kinds.registry import KindDeclaration, Phases
from jobs.spec_checks import check_finetune_job
from jobs.specs import FinetuneJobSpec


def plan(spec: dict[str, Any]) -> Phases:
    return [finetune_phase()]


KIND = KindDeclaration(
    name="finetune",
    spec=FinetuneJobSpec,
    summary="fine-tune a model, or the pruned model of a finished job, on a task",
    check=check_finetune_job,
    plan=plan,
    examples={
        "finetune": {
            "summary": "Fine-tune the pruned model of a finished prune job with the paper's hyperparameters",
            "value": {
                "kind": "finetune",
                "from_job": "0b7c3c1e-8a0e-4a8b-9a59-0f4c6c1d2e3f",
                "task": {"name": "sst2"},
                "preset": "paper",
            },
        },
    },
)
