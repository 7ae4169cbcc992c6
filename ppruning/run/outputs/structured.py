"""Writing a structured method's result: unit masks, the physically smaller checkpoint, timings, the report.

``materialise``: the masks (``head_mask.pt``, ``neuron_mask.pt``, ``masks.safetensors``),
compensation's refitted projections (``compensation.safetensors``, when it ran) and the
method's own files are written, then the units are cut out of the model
(:func:`ppruning.model.surgery.prune_model`). ``measure`` (when ``config.measure``): the
dense and the pruned model are timed on the run's device (:mod:`ppruning.measure.speed`);
the dense copy this needs lives only until then. ``write``: the pruned checkpoint with its
tokenizer and ``pruning.json`` under ``model/``, ``report.json`` and ``record.json``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ppruning.arch.base import ModelShape
from ppruning.arch.registry import get_adapter
from ppruning.measure.speed import measure_speedup
from ppruning.methods.contract import MethodResult
from ppruning.model.checkpoint import save_pruned
from ppruning.model.surgery import prune_model
from ppruning.progress import Progress
from ppruning.recovery.compensation import refit_tensors, save_refit
from ppruning.run.config import PruneConfig
from ppruning.run.outputs.base import MODEL_DIR, PruneResult, RunOutputs, finish, write_method_files
from ppruning.run.plan import PrunePlan
from ppruning.run.report import build_report
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.registry import TaskInfo
from ppruning.units.cost import model_costs
from ppruning.units.masks import Masks, save_masks, validate_masks


def budget_record(plan: PrunePlan) -> dict[str, Any]:
    """The report's ``budget``: what the target asked for, at which length, split how.

    ``seq_len``: the length the budget was costed at in this run; ``seq_len_bound``: the one
    the target was checked at when the config resolved (they differ with ``cost_length: "mean"``).
    """
    budget = plan.budget
    assert budget is not None, "a structured method's plan has a budget"
    return {
        "kind": budget.kind,
        "target": budget.target,
        "lambda_val": budget.lambda_val,
        "scope": budget.scope,
        "seq_len": plan.seq_len,
        "seq_len_from": plan.seq_len_from,
        "seq_len_bound": plan.seq_len_bound,
        "cost_length": plan.sampling.cost_length,
        "total_cost": budget.total,
        "head_removal": budget.head_removal,
        "neuron_removal": budget.neuron_removal,
    }


def measure_models(
    config: PruneConfig,
    dense: nn.Module | None,
    pruned: nn.Module,
    dense_shape: ModelShape,
    task: TaskInfo,
    tokenizer: Any,
    device: torch.device,
    progress: Progress,
    run_seconds: float | None = None,
) -> dict[str, Any]:
    """The report's ``speed``: both models timed on ``device`` (:mod:`ppruning.measure.speed`), or why not.

    ``run_seconds``: the run's time so far; the measurement's budget is a share of it.
    """
    if not config.measure or dense is None:
        return {"measured": False, "note": "not measured (measure: false); ideal_speedup is the cost model's"}
    options = config.measure.resolved(device.type)
    seq_len = resolve_max_length(task, tokenizer, requested=options.seq_len, model_config=pruned.config)
    speed = measure_speedup(
        dense,
        pruned,
        options,
        seq_len=seq_len,
        device=device,
        dense_flops=model_costs(dense, dense_shape, seq_len)["flops"]["total"],
        pruned_flops=model_costs(pruned, get_adapter(pruned).shape(), seq_len)["flops"]["total"],
        progress=progress,
        run_seconds=run_seconds,
    )
    progress.event(speed["note"])
    return {"measured": True, **speed}


def ideal_speedup(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Dense / pruned FLOPs of the whole model (:func:`ppruning.units.cost.model_costs`): the speedup the
    cost model promises, known without timing anything (what a run with ``measure: false`` reports)."""
    pruned = after["flops"]["total"]
    return round(before["flops"]["total"] / pruned, 4) if pruned > 0 else None


class StructuredWriter:
    """The output writer of ``kind="structured"`` methods: :class:`~ppruning.units.masks.Masks` in, a cut model out."""

    def write(self, run: RunOutputs, result: MethodResult) -> PruneResult:
        plan, ctx, timer = run.plan, run.ctx, run.timer
        config, model, adapter, shape = plan.config, ctx.model, ctx.adapter, ctx.shape
        if not isinstance(result, Masks):
            raise TypeError(f"method {plan.method.name!r} is declared structured but returned {type(result).__name__}")
        validate_masks(result, shape)

        timer.start_stage("materialise")
        timer.checkpoint()
        run.output_dir.mkdir(parents=True, exist_ok=True)
        save_masks(result, run.output_dir)
        write_method_files(run)
        dense = copy.deepcopy(model) if config.measure else None  # timed against the pruned model below
        prune_model(model, result, adapter)
        if run.refit is not None:  # the cut projections are the refitted kept columns
            save_refit(refit_tensors(model, adapter, run.refit), run.output_dir)

        if config.measure:
            timer.start_stage("measure")
        after = model_costs(model, adapter.shape(), plan.seq_len)
        speed = measure_models(
            config, dense, model, shape, plan.task, run.tokenizer, run.device, timer, run_seconds=timer.elapsed()
        )
        del dense
        speed.setdefault("ideal_speedup", ideal_speedup(run.before, after))

        timer.start_stage("write")
        source = config.model.model_dump(mode="json")
        model_dir = save_pruned(
            model,
            run.tokenizer,
            run.output_dir / MODEL_DIR,
            extra={"method": config.method, "seed": config.seed, "source_model": source},
        )
        method = plan.method_record()
        report = build_report(
            config=plan.resolved_spec(),
            method_params=method["params"],
            head_kept=result.head_counts(),
            neuron_kept=result.neuron_counts(),
            original=shape.structure(),
            before=run.before,
            after=after,
            budget=budget_record(plan),
            stage_seconds=timer.finish(),
            device=run.device,
            details=ctx.details,
        )
        report["method_version"] = method["version"]
        report["sampling"] = method["sampling"]
        if not plan.reads_data:
            report["sampling"]["note"] = (
                f"method {plan.method.name!r} reads no task data; the sampling block was not used"
            )
        report["speed"] = speed
        return finish(run, report, model, model_dir)
