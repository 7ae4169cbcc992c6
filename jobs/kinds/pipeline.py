"""``pipeline``: prune, then fine-tune the pruned model on the same task; optionally gate the result."""

from __future__ import annotations

from typing import Any

from jobs.kinds.plans import export_phases, finetune_phase, prune_phase
from jobs.kinds.registry import KindDeclaration, Phases
from jobs.spec_checks import check_pipeline_job
from jobs.specs import AcceptCriteria, PipelineJobSpec


def plan(spec: dict[str, Any]) -> Phases:
    """A gated pipeline that fine-tunes the dense model too has a third phase, before the pruned
    model's fine-tune (the dense model may teach it)."""
    phases = [prune_phase(spec)]
    accept = spec.get("accept")
    if accept and AcceptCriteria.model_validate(accept).needs_dense_run:
        phases.append(finetune_phase("dense"))
    return [*phases, finetune_phase(), *export_phases(spec)]


KIND = KindDeclaration(
    name="pipeline",
    spec=PipelineJobSpec,
    summary="prune, then fine-tune the pruned model on the same task; optionally gate the result",
    check=check_pipeline_job,
    plan=plan,
    examples={
        "pipeline": {
            "summary": "Prune 40% of the parameters, then fine-tune for 3 epochs",
            "value": {
                "kind": "pipeline",
                "model": {"id": "bert-base-uncased", "revision": "main"},
                "task": {"name": "mrpc"},
                "method": "ppruning",
                "target": {"params_reduction": 0.4},
                "finetune": {"learning_rate": 2e-5, "epochs": 3, "batch_size": 32},
            },
        },
        "pipeline-gated": {
            "summary": "Prune 30% of the FLOPs, fine-tune; reject unless within 1 point of dense and 1.3x faster",
            "value": {
                "kind": "pipeline",
                "model": {"id": "bert-base-uncased"},
                "task": {"name": "sst2"},
                "target": {"flops_reduction": 0.3},
                "finetune": {"preset": "paper"},
                "measure": {"batch_sizes": [1, 32]},
                "accept": {"max_metric_drop": 0.01, "min_speedup": 1.3},
                "callback_url": "https://ci.example.com/hooks/ppruning",
            },
        },
    },
)
