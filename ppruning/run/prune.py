"""``prune()``: one prune run from a :class:`~ppruning.run.config.PruneConfig` to files on disk.

Everything that can be checked without a forward pass is resolved first, once, by
:func:`ppruning.run.plan.resolve_prune_plan` (also what the service runs at submission):
task, method, parameters, sampling block, the budget at the sequence length fixed at
submission. The method's declaration (:class:`~ppruning.methods.MethodSpec`) says
whether the run reads task inputs and which stages it reports; its entry point gets a
:class:`~ppruning.methods.MethodContext` and returns the masks. Stages the progress
listener sees: ``PrunePlan.stages`` (load_model -> load_data when the method reads
data -> the method's own -> materialise -> measure -> write).

The ``measure`` stage also times the dense and the pruned model (``config.measure``,
:mod:`ppruning.measure.speed`); the dense copy it needs lives only until then.

Outputs in ``output_dir``: ``head_mask.pt``, ``neuron_mask.pt``, ``masks.safetensors``,
``model/`` (pruned checkpoint, tokenizer, ``pruning.json``), ``report.json`` and
``record.json`` (the reproducibility record, :mod:`ppruning.run.provenance`; also in
``model/`` and as ``report["record"]``). An unstructured method's result (weight
masks) is written by :mod:`ppruning.run.outputs.unstructured` instead: packed bit masks with their
manifest, the dense checkpoint with the masks applied, and its own report.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch import get_adapter
from ppruning.arch.base import ModelShape
from ppruning.errors import InvalidConfigError
from ppruning.measure.speed import measure_speedup
from ppruning.methods import MethodContext
from ppruning.methods.contract import ResumeStore
from ppruning.model.checkpoint import save_pruned
from ppruning.model.loading import load_task_model, resolve_device
from ppruning.model.surgery import prune_model
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.reconstruct import reconstruct
from ppruning.recovery.reconstruct import summary as reconstruction_summary
from ppruning.run.config import PruneConfig
from ppruning.run.outputs.unstructured import write_unstructured
from ppruning.run.plan import PrunePlan, resolve_prune_plan, validate_prune_config
from ppruning.run.provenance import data_fingerprint, write_record
from ppruning.run.report import StageTimer, build_report, reset_peak_memory
from ppruning.tasks.data import tokenized_inputs
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.labelled import labelled_examples, task_label_names
from ppruning.tasks.registry import TaskInfo
from ppruning.units.cost import model_costs
from ppruning.units.masks import save_masks, validate_masks
from ppruning.units.weight_masks import WeightMasks

__all__ = ["PruneResult", "prune", "resolve_device", "resolve_prune_plan", "validate_prune_config"]

_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class PruneResult:
    output_dir: Path
    model_dir: Path
    report: dict[str, Any]
    #: The mask files written (the artifacts a service stores besides the model and report).
    mask_files: list[Path] = field(default_factory=list)


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
    columns = [c for c in _INPUT_COLUMNS if c in data.column_names]
    return data.select_columns(columns).to_list()


def mean_real_length(examples: Sequence[dict[str, Any]]) -> float:
    total = sum(sum(ex["attention_mask"]) if "attention_mask" in ex else len(ex["input_ids"]) for ex in examples)
    return total / max(1, len(examples))


def _pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def _budget_record(plan: PrunePlan) -> dict[str, Any]:
    budget = plan.budget
    if budget is None:
        return {"kind": plan.config.target.kind, "target": plan.config.target.value, "seq_len": plan.seq_len}
    return {
        "kind": budget.kind,
        "target": budget.target,
        "lambda_val": budget.lambda_val,
        "scope": budget.scope,
        "seq_len": plan.seq_len,
        "seq_len_from": "sampling.max_length" if plan.sampling.max_length else "task",
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
) -> dict[str, Any]:
    """The report's ``speed``: both models timed on ``device`` (:mod:`ppruning.measure.speed`), or why not."""
    if not config.measure or dense is None:
        return {"measured": False, "note": "not measured (measure: false)"}
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
    )
    progress.event(speed["note"])
    return {"measured": True, **speed}


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
        examples=examples,
        pad_token_id=_pad_id(tokenizer),
        model_ref=config.model,
        target=config.target,
        label_names=label_names,
        resume=resume,
    )
    masks = plan.method.run(ctx)
    if isinstance(masks, WeightMasks):
        report = write_unstructured(plan, masks, ctx, tokenizer, before, data_record, timer, device, output_dir)
        return PruneResult(output_dir, output_dir / "model", report, report.pop("_mask_files"))
    validate_masks(masks, shape)
    if plan.reconstruct is not None:
        assert examples is not None, "reconstruction reads task inputs (the plan loads them)"
        started = time.perf_counter()
        fitted = reconstruct(
            model,
            adapter,
            masks,
            examples,
            plan.reconstruct,
            pad_token_id=ctx.pad_token_id,
            batch_size=plan.sampling.batch_size,
            progress=timer,
        )
        masks = fitted.masks
        ctx.details["reconstruction"] = {**reconstruction_summary(fitted), "seconds": time.perf_counter() - started}
        means = ctx.details["reconstruction"]["mean"]
        attention = f"{means['attention_error_before']:.4f} -> {means['attention_error_after']:.4f}"
        ffn = f"{means['ffn_error_before']:.4f} -> {means['ffn_error_after']:.4f}"
        timer.event(f"reconstruction: mean relative output error attention {attention}, FFN {ffn}")
    ctx.examples = examples = None  # the sample is all the method and the reconstruction needed

    timer.start_stage("materialise")
    timer.checkpoint()
    output_dir.mkdir(parents=True, exist_ok=True)
    save_masks(masks, output_dir)
    for name, contents in ctx.files.items():
        (output_dir / name).write_bytes(contents)
    dense = copy.deepcopy(model) if config.measure else None  # timed against the pruned model below
    prune_model(model, masks, adapter)

    if config.measure:
        timer.start_stage("measure")
    after = model_costs(model, adapter.shape(), plan.seq_len)
    speed = measure_models(config, dense, model, shape, plan.task, tokenizer, device, timer)
    del dense

    timer.start_stage("write")
    model_dir = save_pruned(
        model,
        tokenizer,
        output_dir / "model",
        extra={"method": config.method, "seed": config.seed, "source_model": config.model.model_dump(mode="json")},
    )
    spec = plan.resolved_spec()
    method = plan.method_record()
    report = build_report(
        config=spec,
        method_params=method["params"],
        head_kept=masks.head_counts(),
        neuron_kept=masks.neuron_counts(),
        original=shape.structure(),
        before=before,
        after=after,
        budget=_budget_record(plan),
        stage_seconds=timer.finish(),
        device=device,
        details=ctx.details,
    )
    report["method_version"] = method["version"]
    report["sampling"] = method["sampling"]
    if not plan.reads_data:
        report["sampling"]["note"] = f"method {plan.method.name!r} reads no task data; the sampling block was not used"
    report["speed"] = speed
    report["record"] = write_record(
        "prune", spec, config.model, model.config, data_record, output_dir, model_dir, method=method
    )
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    mask_files = [output_dir / name for name in plan.method.artifacts if (output_dir / name).exists()]
    return PruneResult(output_dir=output_dir, model_dir=model_dir, report=report, mask_files=mask_files)
