"""OpenAPI examples of every job kind (``POST /jobs``); a test checks each one validates."""

from __future__ import annotations

from typing import Any

SPEC_EXAMPLES: dict[str, dict[str, Any]] = {
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
    "finetune": {
        "summary": "Fine-tune the pruned model of a finished prune job with the paper's hyperparameters",
        "value": {
            "kind": "finetune",
            "from_job": "0b7c3c1e-8a0e-4a8b-9a59-0f4c6c1d2e3f",
            "task": {"name": "sst2"},
            "preset": "paper",
        },
    },
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
}
