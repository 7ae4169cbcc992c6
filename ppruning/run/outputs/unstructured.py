"""Writing an unstructured method's result: bit masks, manifest, masked dense checkpoint, report.

The model the method leaves behind already has its pruned weights at zero; it is saved
with ``save_pretrained`` as it is (its own class: a sequence classifier, or the masked
language model whose MLM head the method used), so plain transformers loads it. No
weight leaves the matrices, so a dense kernel runs exactly as many FLOPs as before: the
report says the dense speedup is none rather than timing two identical workloads.
"""

from __future__ import annotations

from typing import Any

from ppruning.methods.contract import MethodResult
from ppruning.run.outputs.base import MODEL_DIR, PruneResult, RunOutputs, finish, write_method_files
from ppruning.run.provenance import model_revision
from ppruning.run.report import library_versions, peak_device_bytes, peak_host_rss_bytes
from ppruning.units.weight_masks import WeightMasks, check_against, save_weight_masks

UNCHANGED_COST = "the FLOPs and parameter shapes are unchanged by unstructured masks"
NO_SPEEDUP = (
    "none: unstructured sparsity leaves every matrix dense-shaped, so dense kernels do the same "
    "multiply-accumulates as the unpruned model; a speedup needs sparse kernels or hardware, not measured here"
)


class UnstructuredWriter:
    """The output writer of ``kind="unstructured"`` methods: :class:`~ppruning.units.weight_masks.WeightMasks` in,
    packed masks with their manifest and the masked dense checkpoint out."""

    def write(self, run: RunOutputs, result: MethodResult) -> PruneResult:
        plan, ctx, timer = run.plan, run.ctx, run.timer
        config = plan.config
        if not isinstance(result, WeightMasks):
            raise TypeError(
                f"method {plan.method.name!r} is declared unstructured but returned {type(result).__name__}"
            )
        model = result.model if result.model is not None else ctx.model

        timer.start_stage("materialise")
        check_against(result.masks, model)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        revision = model_revision(config.model, model.config)
        base = {"id": config.model.id, "revision": config.model.revision, "resolved": revision}
        save_weight_masks(result, run.output_dir, base_model=base, extra={"method": config.method})
        write_method_files(run)

        timer.start_stage("write")
        model_dir = run.output_dir / MODEL_DIR
        model.save_pretrained(model_dir)
        run.tokenizer.save_pretrained(model_dir)
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
            "device": str(run.device),
            "budget": {"kind": "params", "target": config.target.value, "seq_len": plan.seq_len},
            "achieved": {
                "params_reduction_pruned_part": round(1.0 - kept / max(1, total), 6),
                "params_reduction_whole_model": round((total - kept) / max(1, run.before["params"]["total"]), 6),
                "density_pruned_part": round(kept / max(1, total), 6),
            },
            "weights": {"kept": kept, "total": total, **ctx.details.pop("density", {})},
            "cost": {"before": run.before, "note": UNCHANGED_COST},
            "speed": {"measured": False, "dense_speedup": "none", "note": NO_SPEEDUP},
            "timings_s": timer.finish(),
            "memory": {
                "peak_host_rss_bytes": peak_host_rss_bytes(),
                "peak_device_bytes": peak_device_bytes(run.device),
            },
            "details": ctx.details,
            "versions": library_versions(),
        }
        return finish(run, report, model, model_dir)
