"""``prune()``: one prune run from a :class:`~ppruning.run.config.PruneConfig` to files on disk.

Everything that can be checked without a forward pass is resolved first, once, by
:func:`ppruning.run.plan.resolve_prune_plan` (also what the service runs at submission):
task, method, parameters, sampling block, the budget at the sequence length fixed at
submission. The method's declaration (:class:`~ppruning.methods.MethodSpec`) says
whether the run reads task inputs and which stages it reports; its entry point gets a
:class:`~ppruning.methods.MethodContext` and returns the masks. Stages the progress
listener sees: ``PrunePlan.stages`` (load_model -> load_data when the method reads
data -> the method's own -> materialise -> measure -> write).

Compensation (``config.compensation``, on by default for structured methods) refits the
output projections on the kept units by least squares before anything is written
(:mod:`ppruning.recovery.compensation`): the refit is in the model that is cut and saved,
and in ``compensation.safetensors`` beside the masks. Reconstruction
(``config.reconstruct``, off by default; it replaces compensation when asked for) fits
per-unit output scales instead (:mod:`ppruning.recovery.reconstruct`).

The outputs are written by the writer of the method's declared ``kind``
(:mod:`ppruning.run.outputs`): for a structured method ``head_mask.pt``,
``neuron_mask.pt``, ``masks.safetensors``, ``model/`` (the pruned checkpoint, tokenizer,
``pruning.json``) and, when ``config.measure``, timings of the dense and the pruned model;
for an unstructured one packed bit masks with their manifest and the dense checkpoint with
the masks applied. Every kind writes the method's own files, ``report.json`` and
``record.json`` (the reproducibility record, :mod:`ppruning.run.provenance`; also in
``model/`` and as ``report["record"]``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch import get_adapter
from ppruning.errors import InvalidConfigError
from ppruning.methods import MethodContext
from ppruning.methods.contract import ResumeStore
from ppruning.model.loading import load_task_model, resolve_device
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.compensation import compensate
from ppruning.recovery.compensation import summary as compensation_summary
from ppruning.recovery.layer_compensation import compensate_layer_drop
from ppruning.recovery.outlier_units import find_outlier_neurons, protect_outliers
from ppruning.recovery.reconstruct import reconstruct
from ppruning.recovery.reconstruct import summary as reconstruction_summary
from ppruning.run.config import PruneConfig
from ppruning.run.outputs import writer_for
from ppruning.run.outputs.base import PruneResult, RunOutputs
from ppruning.run.plan import PrunePlan, resolve_prune_plan
from ppruning.run.provenance import data_fingerprint
from ppruning.run.report import StageTimer, proc_status_bytes, reset_peak_memory
from ppruning.tasks.collate import INPUT_COLUMNS, pad_token_id
from ppruning.tasks.data import tokenized_inputs
from ppruning.tasks.labelled import labelled_examples, task_label_names
from ppruning.units.cost import model_costs
from ppruning.units.layer_drop import LayerDrop
from ppruning.units.masks import Masks, validate_masks

__all__ = ["prune"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_examples(plan: PrunePlan, tokenizer: Any, model: nn.Module) -> list[dict[str, Any]]:
    """``sampling.max_instances`` tokenised train examples (seeded), as plain rows with only the input columns.

    A method that needs labels gets them too (a ``labels`` column).
    """
    if plan.method.needs == "labels":
        return labelled_examples(
            plan.config.task,
            tokenizer,
            max_instances=plan.sampling.max_instances,
            seed=plan.config.seed,
            max_length=plan.sampling.max_length,
            model_config=model.config,
        )
    data = tokenized_inputs(
        plan.config.task,
        tokenizer,
        split="train",
        max_instances=plan.sampling.max_instances,
        seed=plan.config.seed,
        max_length=plan.sampling.max_length,
        model_config=model.config,
        info=plan.task,
    )
    columns = [c for c in INPUT_COLUMNS if c in data.column_names]
    return data.select_columns(columns).to_list()


def mean_real_length(examples: Sequence[dict[str, Any]]) -> float:
    total = sum(sum(ex["attention_mask"]) if "attention_mask" in ex else len(ex["input_ids"]) for ex in examples)
    return total / max(1, len(examples))


def _data_record(plan: PrunePlan, examples: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    if examples is None:
        return {
            "source": None,
            "note": f"method {plan.method.name!r} read no task data; the sampling block was not used",
        }
    selection = {
        "seed": plan.config.seed,
        "max_instances": plan.sampling.max_instances,
        "max_length": plan.sampling.max_length,
    }
    return data_fingerprint(plan.config.task, "train", examples, **selection)


def _load_unpruned(plan: PrunePlan, device: torch.device, label_names: list[str] | None) -> tuple[nn.Module, Any]:
    if plan.method.load_model is not None:
        model, tokenizer = plan.method.load_model(plan.params, plan.config.model, plan.task, label_names)
    else:
        model, tokenizer, _ = load_task_model(plan.config.model, plan.task, label_names=label_names)
    model.to(device).eval()
    if not get_adapter(model).shape().is_uniform:
        raise InvalidConfigError(
            "the model is already pruned (layers differ); prune the original model", field="model.id"
        )
    return model, tokenizer


def _reconstruct(
    plan: PrunePlan, ctx: MethodContext, masks: Any, examples: Sequence[dict[str, Any]], timer: StageTimer
) -> Masks:
    """The method's masks with reconstruction's scales (:mod:`ppruning.recovery.reconstruct`); the report's details."""
    validate_masks(masks, ctx.shape)
    started = time.perf_counter()
    fitted = reconstruct(
        ctx.model,
        ctx.adapter,
        masks,
        examples,
        plan.reconstruct,
        pad_token_id=ctx.pad_token_id,
        batch_size=plan.sampling.batch_size,
        progress=timer,
    )
    ctx.details["reconstruction"] = {**reconstruction_summary(fitted), "seconds": time.perf_counter() - started}
    means = ctx.details["reconstruction"]["mean"]
    attention = f"{means['attention_error_before']:.4f} -> {means['attention_error_after']:.4f}"
    ffn = f"{means['ffn_error_before']:.4f} -> {means['ffn_error_after']:.4f}"
    timer.event(f"reconstruction: mean relative output error attention {attention}, FFN {ffn}")
    return fitted.masks


def _protect_outliers(
    plan: PrunePlan, ctx: MethodContext, masks: Masks, examples: Sequence[dict[str, Any]], timer: StageTimer
) -> Masks:
    """The method's masks with the outlier neurons kept at unchanged counts; the report's details."""
    assert plan.outlier_units is not None
    started = time.perf_counter()
    found = find_outlier_neurons(
        ctx.model,
        ctx.adapter,
        examples,
        plan.outlier_units,
        pad_token_id=ctx.pad_token_id,
        batch_size=plan.sampling.batch_size,
        progress=timer,
    )
    protected, swaps = protect_outliers(masks, found)
    ctx.details["outlier_units"] = {
        **found.record(plan.outlier_units.ratio, swaps),
        "seconds": round(time.perf_counter() - started, 3),
    }
    count = sum(len(n) for n in found.neurons.values())
    timer.event(f"outlier neurons: {count} found, {len(swaps)} the method had dropped kept in place of others")
    return protected


def _compensate(
    plan: PrunePlan, ctx: MethodContext, masks: Any, examples: Sequence[dict[str, Any]], timer: StageTimer
) -> list[tuple[int, str]]:
    """Refit the model's output projections for the masks (in place); which were refit; the report's details."""
    assert plan.compensation is not None
    started = time.perf_counter()
    rss_before, peak_before = proc_status_bytes("VmRSS"), proc_status_bytes("VmHWM")
    if isinstance(masks, LayerDrop):  # a layers method: the layer below each removed run takes up its change
        fit: Any = compensate_layer_drop
        chosen: Any = masks.removed
    else:
        validate_masks(masks, ctx.shape)
        fit, chosen = compensate, masks
    fitted = fit(
        ctx.model,
        ctx.adapter,
        chosen,
        examples,
        plan.compensation,
        pad_token_id=ctx.pad_token_id,
        batch_size=plan.sampling.batch_size,
        progress=timer,
    )
    details = {**compensation_summary(fitted, plan.compensation), "seconds": round(time.perf_counter() - started, 3)}
    peak_after = proc_status_bytes("VmHWM")
    if rss_before is not None and peak_before is not None and peak_after is not None:
        # a new high-water mark during the fit is its own peak; otherwise it stayed below the earlier one
        details["rss_before_mb"] = round(rss_before / 2**20, 1)
        details["rss_peak_mb"] = round(peak_after / 2**20, 1) if peak_after > peak_before else None
    ctx.details["compensation"] = details
    means = details["mean"]

    def change(part: str) -> str:
        before, after = means[f"{part}_error_before"], means[f"{part}_error_after"]
        return "not refit" if before is None else f"{before:.4f} -> {after:.4f}"

    timer.event(
        f"compensation: mean relative output error attention {change('attention')}, FFN {change('ffn')} "
        f"({details['seconds']:.1f} s, {fitted.tokens} tokens)"
    )
    return sorted(fitted.refits)


# --------------------------------------------------------------------------- the run


def prune(
    config: PruneConfig,
    output_dir: Path,
    progress: Progress = NULL_PROGRESS,
    resume: ResumeStore | None = None,
) -> PruneResult:
    """Compute masks with ``config.method``, cut the model, write every artifact into ``output_dir``.

    ``resume``: where a resumable method saves its state and finds it again after a restart.
    """
    output_dir = Path(output_dir)
    timer = StageTimer(progress)
    plan = resolve_prune_plan(config)  # the same checks as at submission, before any weight is read
    device = resolve_device(config.device)
    reset_peak_memory(device)
    seed_everything(config.seed)

    label_names = task_label_names(config.task) if plan.method.needs == "labels" else None
    timer.start_stage("load_model", message=config.model.id)
    model, tokenizer = _load_unpruned(plan, device, label_names)
    adapter = get_adapter(model)
    shape = adapter.shape()

    examples = None
    if plan.reads_data:
        timer.start_stage("load_data", message=config.task.name)
        examples = load_examples(plan, tokenizer, model)
        timer.event(f"{len(examples)} examples, mean length {mean_real_length(examples):.1f} tokens")
        if plan.costs_at_mean:  # the budget at the length users' inputs have (sampling.cost_length)
            plan = plan.at_length(mean_real_length(examples))
    data_record = _data_record(plan, examples)
    before = model_costs(model, shape, plan.seq_len)

    ctx = MethodContext(
        params=plan.params,
        sampling=plan.sampling,
        seed=config.seed,
        task=plan.task,
        task_ref=config.task,
        model=model,
        tokenizer=tokenizer,
        adapter=adapter,
        shape=shape,
        budget=plan.budget,
        progress=timer,
        examples=examples if plan.method.reads_data(plan.params) else None,  # else read for the refit only
        pad_token_id=pad_token_id(tokenizer),
        model_ref=config.model,
        target=config.target,
        label_names=label_names,
        resume=resume,
    )
    result = plan.method.run(ctx)
    if plan.outlier_units is not None:  # structured methods only (the plan says)
        assert examples is not None, "outlier protection reads task inputs (the plan loads them)"
        result = _protect_outliers(plan, ctx, result, examples, timer)
    if plan.reconstruct is not None:  # structured methods only (the plan says)
        assert examples is not None, "reconstruction reads task inputs (the plan loads them)"
        result = _reconstruct(plan, ctx, result, examples, timer)
    refit = None
    if plan.compensation is not None:  # structured and layers methods only (the plan says)
        assert examples is not None, "compensation reads task inputs (the plan loads them)"
        refit = _compensate(plan, ctx, result, examples, timer)
    ctx.examples = examples = None  # the sample is all the method and the refit needed
    run = RunOutputs(plan, ctx, tokenizer, before, data_record, timer, device, output_dir, refit=refit)
    return writer_for(plan.method.kind).write(run, result)
