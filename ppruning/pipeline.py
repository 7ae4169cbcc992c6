"""``prune()``: one prune run from a :class:`~ppruning.config.PruneConfig` to files on disk.

Stages (names the progress listener sees): load_model -> load_data (methods that read
task inputs) -> collect -> cluster -> select (inside the method) -> materialise ->
measure -> write. Everything that can be checked without a forward pass is checked
first: :func:`validate_prune_config` (config only, also what the API runs at
submission), then the budget again with the task's real average length, before the
first batch runs.

The ``measure`` stage also times the dense and the pruned model (``config.measure``,
:mod:`ppruning.measure`); the dense copy it needs lives only until then.

Outputs in ``output_dir``: ``head_mask.pt``, ``neuron_mask.pt``, ``masks.safetensors``,
``model/`` (pruned checkpoint, tokenizer, ``pruning.json``), ``report.json`` and
``record.json`` (the reproducibility record, :mod:`ppruning.provenance`; also in
``model/`` and as ``report["record"]``).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch.base import ArchAdapter, ModelShape
from ppruning.budget import Budget, make_budget
from ppruning.config import ModelRef, PruneConfig
from ppruning.errors import InvalidConfigError, ModelLoadError, UnsupportedModelError
from ppruning.methods.registry import MethodInfo, MethodParams, get_method
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.tasks.registry import TaskInfo

_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class PruneResult:
    output_dir: Path
    model_dir: Path
    report: dict[str, Any]


@dataclass
class PruneContext:
    """What a method's ``compute_masks`` receives: the loaded model, its data and its budget."""

    config: PruneConfig
    params: MethodParams
    model: nn.Module
    tokenizer: Any
    adapter: ArchAdapter
    shape: ModelShape
    budget: Budget
    progress: Progress
    examples: Sequence[dict[str, Any]] | None
    pad_token_id: int
    #: Method-specific facts for the report (thresholds, collection counts).
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- validation


def _method_params(config: PruneConfig) -> tuple[MethodInfo, MethodParams]:
    info = get_method(config.method)
    return info, info.params_model.model_validate(config.params)


def _uses_data(info: MethodInfo, params: MethodParams) -> bool:
    return bool(getattr(params, "uses_data", info.data != "none"))


def _load_hf_config(ref: ModelRef) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref.id, revision=ref.revision)
    except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot load this"
        raise ModelLoadError(_load_message(ref, exc), field="model.id") from exc


def _load_message(ref: ModelRef, exc: Exception) -> str:
    rev = f" at revision {ref.revision!r}" if ref.revision else ""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot load model {ref.id!r}{rev}: {reason}"


def _check_model_type(info: MethodInfo, model_type: str) -> type[ArchAdapter]:
    from ppruning.arch import adapter_class

    cls = adapter_class(model_type)  # UnsupportedModelError listing the supported types
    if info.model_types and model_type not in info.model_types:
        raise UnsupportedModelError(
            f"method {info.name!r} does not support model type {model_type!r}; "
            f"it supports: {', '.join(sorted(info.model_types))}",
            field="model.id",
        )
    return cls


def validate_prune_config(config: PruneConfig) -> None:
    """Cheap checks before any forward pass: task, model type, parameters, feasibility of the target.

    Loads only the model's config. Feasibility is judged at the task's max length; the
    run re-checks at the data's average length before collecting.
    """
    _checked(config)


def _checked(config: PruneConfig) -> tuple[MethodInfo, MethodParams, TaskInfo]:
    """:func:`validate_prune_config`, returning what it resolved so :func:`prune` need not redo it."""
    from ppruning.tasks.features import resolve_max_length
    from ppruning.tasks.refs import validate_task_ref

    info, params = _method_params(config)
    task = validate_task_ref(config.task)
    hf_config = _load_hf_config(config.model)
    shape = _check_model_type(info, hf_config.model_type).shape_from_config(hf_config)
    seq_len = resolve_max_length(task, None, requested=getattr(params, "max_length", None), model_config=hf_config)
    make_budget(config.target, shape, seq_len, _lambda(params))
    return info, params, task


def _lambda(params: MethodParams) -> float:
    return float(getattr(params, "lambda_val", 5.0))


# --------------------------------------------------------------------------- stages


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfigError(
            f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'", field="device"
        )
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_model(ref: ModelRef, task: TaskInfo) -> tuple[nn.Module, Any]:
    """The model with the head the task fine-tunes (``TaskInfo.head``) and its tokenizer."""
    import transformers

    from ppruning.checkpoint import HEADS

    class_name = HEADS[task.head]
    kwargs: dict[str, Any] = {}
    if task.kind == "regression":
        kwargs["num_labels"] = 1
    elif task.kind == "classification" and task.num_labels:
        kwargs["num_labels"] = task.num_labels
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(ref.id, revision=ref.revision)
        model = getattr(transformers, class_name).from_pretrained(ref.id, revision=ref.revision, **kwargs)
    except Exception as exc:
        raise ModelLoadError(_load_message(ref, exc), field="model.id") from exc
    return model, tokenizer


def load_examples(config: PruneConfig, params: MethodParams, tokenizer: Any, model: nn.Module) -> list[dict[str, Any]]:
    """``max_instances`` tokenised train examples (seeded), as plain rows with only the input columns."""
    from ppruning.tasks.data import tokenized_inputs

    data = tokenized_inputs(
        config.task,
        tokenizer,
        split="train",
        max_instances=int(getattr(params, "max_instances", 3000)),
        seed=config.seed,
        max_length=getattr(params, "max_length", None),
        model_config=model.config,
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


def _budget_record(budget: Budget, seq_len: float) -> dict[str, Any]:
    return {
        "kind": budget.kind,
        "target": budget.target,
        "lambda_val": budget.lambda_val,
        "seq_len": seq_len,
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
    """The report's ``speed``: both models timed on ``device`` (:mod:`ppruning.measure`), or why not."""
    from ppruning.arch import get_adapter
    from ppruning.cost import model_costs
    from ppruning.measure import measure_speedup
    from ppruning.tasks.features import resolve_max_length

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


def _data_record(config: PruneConfig, params: MethodParams, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from ppruning.provenance import data_fingerprint

    selection = {
        "seed": config.seed,
        "max_instances": int(getattr(params, "max_instances", 3000)),
        "max_length": getattr(params, "max_length", None),
    }
    return data_fingerprint(config.task, "train", examples, **selection)


# --------------------------------------------------------------------------- the run


def prune(config: PruneConfig, output_dir: Path, progress: Progress = NULL_PROGRESS) -> PruneResult:
    """Compute masks with ``config.method``, cut the model, write every artifact into ``output_dir``."""
    from ppruning.arch import get_adapter
    from ppruning.checkpoint import save_pruned
    from ppruning.cost import model_costs
    from ppruning.masks import save_masks, validate_masks
    from ppruning.provenance import write_record
    from ppruning.report import StageTimer, build_report, reset_peak_memory
    from ppruning.surgery import prune_model
    from ppruning.tasks.features import resolve_max_length

    output_dir = Path(output_dir)
    timer = StageTimer(progress)
    info, params, task = _checked(config)
    device = resolve_device(config.device)
    reset_peak_memory(device)
    seed_everything(config.seed)

    timer.start_stage("load_model", message=config.model.id)
    model, tokenizer = load_model(config.model, task)
    model.to(device).eval()
    adapter = get_adapter(model)
    shape = adapter.shape()
    if not shape.is_uniform:
        raise InvalidConfigError(
            "the model is already pruned (layers differ); prune the original model", field="model.id"
        )

    examples, data_record = None, {"source": None, "note": f"method {info.name!r} reads no task data"}
    if _uses_data(info, params):
        timer.start_stage("load_data", message=config.task.name)
        examples = load_examples(config, params, tokenizer, model)
        data_record = _data_record(config, params, examples)
        seq_len = mean_real_length(examples)
        timer.event(f"{len(examples)} examples, mean length {seq_len:.1f} tokens")
    else:
        seq_len = float(
            resolve_max_length(
                task, tokenizer, requested=getattr(params, "max_length", None), model_config=model.config
            )
        )
    budget = make_budget(config.target, shape, seq_len, _lambda(params))  # before any forward pass
    before = model_costs(model, shape, seq_len)

    ctx = PruneContext(config, params, model, tokenizer, adapter, shape, budget, timer, examples, _pad_id(tokenizer))
    assert info.compute_masks is not None, f"method {info.name} registered without compute_masks"
    masks = info.compute_masks(ctx)
    validate_masks(masks, shape)
    ctx.examples = examples = None  # the sample is all the method needed

    timer.start_stage("materialise")
    timer.checkpoint()
    output_dir.mkdir(parents=True, exist_ok=True)
    save_masks(masks, output_dir)
    dense = copy.deepcopy(model) if config.measure else None  # timed against the pruned model below
    prune_model(model, masks, adapter)

    timer.start_stage("measure")
    after = model_costs(model, adapter.shape(), seq_len)
    speed = measure_models(config, dense, model, shape, task, tokenizer, device, timer)
    del dense

    timer.start_stage("write")
    model_dir = save_pruned(
        model,
        tokenizer,
        output_dir / "model",
        extra={"method": config.method, "seed": config.seed, "source_model": config.model.model_dump(mode="json")},
    )
    dumped = config.model_dump(mode="json")
    report = build_report(
        config=dumped,
        method_params=params.model_dump(mode="json"),
        head_kept=masks.head_counts(),
        neuron_kept=masks.neuron_counts(),
        original=shape.structure(),
        before=before,
        after=after,
        budget=_budget_record(budget, seq_len),
        stage_seconds=timer.finish(),
        device=device,
        details=ctx.details,
    )
    report["speed"] = speed
    report["record"] = write_record("prune", dumped, config.model, model.config, data_record, output_dir, model_dir)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return PruneResult(output_dir=output_dir, model_dir=model_dir, report=report)
