"""Writing an unstructured method's result: bit masks, manifest, masked dense checkpoint, report.

The model the method leaves behind already has its pruned weights at zero; it is saved
with ``save_pretrained`` as it is (its own class: a sequence classifier, or the masked
language model whose MLM head the method used), so plain transformers loads it. No
weight leaves the matrices, so a dense kernel runs exactly as many FLOPs as before: the
report says the dense speedup is none rather than timing two identical workloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ppruning.methods.contract import WEIGHT_MASK_ARTIFACTS
from ppruning.run.plan import PrunePlan
from ppruning.run.provenance import model_revision, write_record
from ppruning.run.report import StageTimer, library_versions, peak_device_bytes, peak_host_rss_bytes
from ppruning.units.weight_masks import WeightMasks, check_against, save_weight_masks

NO_SPEEDUP = (
    "none: unstructured sparsity leaves every matrix dense-shaped, so dense kernels do the same "
    "multiply-accumulates as the unpruned model; a speedup needs sparse kernels or hardware, not measured here"
)


def write_unstructured(
    plan: PrunePlan,
    result: WeightMasks,
    ctx: Any,
    tokenizer: Any,
    before: dict[str, Any],
    data_record: dict[str, Any],
    timer: StageTimer,
    device: torch.device,
    output_dir: Path,
) -> dict[str, Any]:
    """Write every output of an unstructured run into ``output_dir``; the report (with ``_mask_files``)."""
    config = plan.config
    model = result.model if result.model is not None else ctx.model
    timer.start_stage("materialise")
    check_against(result.masks, model)
    output_dir.mkdir(parents=True, exist_ok=True)
    revision = model_revision(config.model, model.config)
    base = {"id": config.model.id, "revision": config.model.revision, "resolved": revision}
    save_weight_masks(result, output_dir, base_model=base, extra={"method": config.method})

    timer.start_stage("write")
    model_dir = output_dir / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    save_weight_masks(result, model_dir, base_model=base, extra={"method": config.method})  # fine-tuning keeps them
    spec = plan.resolved_spec()
    method = plan.method_record()
    kept, total = result.kept(), result.total()
    report: dict[str, Any] = {
        "method": config.method,
        "method_version": method["version"],
        "kind": "unstructured",
        "params": method["params"],
        "sampling": method["sampling"],
        "seed": config.seed,
        "model": spec["model"],
        "task": spec["task"],
        "target": spec["target"],
        "device": str(device),
        "budget": {"kind": "params", "target": config.target.value, "seq_len": plan.seq_len},
        "achieved": {
            "params_reduction_pruned_part": round(1.0 - kept / max(1, total), 6),
            "params_reduction_whole_model": round((total - kept) / max(1, before["params"]["total"]), 6),
            "density_pruned_part": round(kept / max(1, total), 6),
        },
        "weights": {"kept": kept, "total": total, **ctx.details.pop("density", {})},
        "cost": {"before": before, "note": "the FLOPs and parameter shapes are unchanged by unstructured masks"},
        "speed": {"measured": False, "dense_speedup": "none", "note": NO_SPEEDUP},
        "timings_s": timer.finish(),
        "memory": {"peak_host_rss_bytes": peak_host_rss_bytes(), "peak_device_bytes": peak_device_bytes(device)},
        "details": ctx.details,
        "versions": library_versions(),
    }
    report["record"] = write_record(
        "prune", spec, config.model, model.config, data_record, output_dir, model_dir, method=method
    )
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    report["_mask_files"] = [output_dir / name for name in WEIGHT_MASK_ARTIFACTS]
    return report
