"""Resolving a prune config once into a plan: task, method, parameters, sampling, budget.

Submission (the service's ``POST /jobs``, ``ppruning prune``) and the run itself
(:func:`ppruning.run.prune.prune`) call the same :func:`resolve_prune_plan`, and nothing
below it re-derives what it resolved. The budget's sequence length is fixed here: the
sampling block's ``max_length``, else the task's (capped by the model's context). So a
target accepted at submission is judged at the same length when the job runs, for every
method alike; when submission could not read the model's config (the hub was down), the
run performs this same check first and fails with the same error type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ppruning.arch import adapter_class
from ppruning.arch.base import ModelShape
from ppruning.errors import InvalidConfigError, ModelLoadError, UnsupportedModelError
from ppruning.measure.bounds import check_measure
from ppruning.methods import MethodParams, MethodSpec, get_method
from ppruning.methods.contract import SamplingConfig
from ppruning.model.hub import check_hub_model
from ppruning.model.refs import ModelRef
from ppruning.recovery.reconstruct import ReconstructConfig
from ppruning.run.config import PruneConfig
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.refs import validate_task_ref
from ppruning.tasks.registry import TaskInfo
from ppruning.units.budget import Budget, make_budget

#: Stages every prune run reports around the method's own (``measure`` only when it is on).
_BEFORE = ("load_model",)
_AFTER = ("materialise", "measure", "write")


@dataclass(frozen=True)
class PrunePlan:
    """Everything a prune run needs that can be known before loading weights."""

    config: PruneConfig
    method: MethodSpec
    params: MethodParams
    task: TaskInfo
    sampling: SamplingConfig
    #: Whether this run reads task inputs (the method's declaration, or reconstruction needs them).
    reads_data: bool
    #: Tokens per sequence the budget (and the report's cost) is computed at.
    seq_len: int
    shape: ModelShape
    #: The structured budget; None for an unstructured method (its target is a fraction of weights).
    budget: Budget | None
    #: Reconstruction after the method, resolved (None: off).
    reconstruct: ReconstructConfig | None = None

    @property
    def stages(self) -> tuple[str, ...]:
        return run_stages(self.config, self.method, self.params, self.reads_data, self.reconstruct is not None)

    def resolved_spec(self) -> dict[str, Any]:
        """The config as JSON with every method parameter filled in: what a record stores to rerun."""
        reconstruct = self.reconstruct.model_dump(mode="json") if self.reconstruct is not None else False
        return {
            **self.config.model_dump(mode="json"),
            "params": self.params.model_dump(mode="json"),
            "reconstruct": reconstruct,
        }

    def method_record(self) -> dict[str, Any]:
        """Name, version, resolved parameters and sampling block: the method part of reports and records."""
        return {
            "name": self.method.name,
            "version": self.method.version,
            "params": self.params.model_dump(mode="json"),
            "sampling": {**self.sampling.model_dump(mode="json"), "used": self.reads_data},
        }


def run_stages(
    config: PruneConfig, method: MethodSpec, params: MethodParams, reads_data: bool, reconstruct: bool = False
) -> tuple[str, ...]:
    timed = config.measure and method.kind == "structured"  # unstructured masks change no dense timing
    after = _AFTER if timed else tuple(s for s in _AFTER if s != "measure")
    fit = ("reconstruct",) if reconstruct else ()
    return (*_BEFORE, *(("load_data",) if reads_data else ()), *method.run_stages(params), *fit, *after)


def resolve_reconstruct(config: PruneConfig) -> ReconstructConfig | None:
    """The reconstruction to run, or None: off unless asked for (the bench found it no help so far)."""
    return config.reconstruct or None


def method_params(method: MethodSpec, params: dict[str, Any]) -> MethodParams:
    """``params`` validated by the method's model; an error names the field (``params.lambda_val``)."""
    try:
        return method.params_model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            message = f"method {method.name!r} has no parameter {where!r} (see `ppruning methods`)"
        else:
            message = first["msg"].replace("Value error, ", "")
        field = f"params.{where}" if where else "params"
        raise InvalidConfigError(f"{field}: {message}", field=field) from None


def prune_stages(config: PruneConfig | Mapping[str, Any]) -> tuple[str, ...]:
    """The progress stages a run of ``config`` reports, in order, read from the method's declaration.

    ``config`` may also be a job spec as JSON (fields beyond PruneConfig's are ignored),
    so a progress listener can plan its bar from what it was handed.
    """
    if not isinstance(config, PruneConfig):
        config = PruneConfig.model_validate({k: v for k, v in config.items() if k in PruneConfig.model_fields})
    method = get_method(config.method)
    params = method_params(method, config.params)
    reconstruct = resolve_reconstruct(config) is not None
    return run_stages(config, method, params, method.reads_data(params) or reconstruct, reconstruct)


def load_hf_config(ref: ModelRef) -> Any:
    """The model's ``config.json`` only (no weights); ModelLoadError naming ``model.id`` when it cannot be read."""
    from transformers import AutoConfig

    if not Path(ref.id).is_dir():
        check_hub_model(ref)  # a misspelled id fails here at once, saying so
    try:
        return AutoConfig.from_pretrained(ref.id, revision=ref.revision)
    except Exception as exc:  # OSError, ValueError, hub errors: all mean "cannot load this"
        raise ModelLoadError(load_message(ref, exc), field="model.id") from exc


def load_message(ref: ModelRef, exc: Exception) -> str:
    rev = f" at revision {ref.revision!r}" if ref.revision else ""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot load model {ref.id!r}{rev}: {reason}"


def _model_shape(method: MethodSpec, hf_config: Any) -> ModelShape:
    cls = adapter_class(hf_config.model_type)  # UnsupportedModelError listing the supported types
    if method.supports is not None and not method.supports(cls):
        raise UnsupportedModelError(
            f"method {method.name!r} does not support model type {hf_config.model_type!r}; "
            f"it supports: {', '.join(sorted(method.model_types))}",
            field="model.id",
        )
    return cls.shape_from_config(hf_config)


def resolve_prune_plan(config: PruneConfig, hf_config: Any = None) -> PrunePlan:
    """Check and resolve ``config`` without a forward pass: task, method, parameters, model type, budget.

    ``hf_config``: the model's config when the caller has it; else it is read (config only).
    Raises the library's errors, each naming the field to fix.
    """
    method = get_method(config.method)
    params = method_params(method, config.params)
    if config.target.kind not in method.targets:
        why = (
            "; unstructured sparsity zeroes weights inside dense matrices and removes no dense FLOPs"
            if method.kind == "unstructured" and config.target.kind == "flops"
            else ""
        )
        raise InvalidConfigError(
            f"method {method.name!r} accepts {' or '.join(sorted(method.targets))} targets, "
            f"not {config.target.kind}_reduction{why}",
            field=f"target.{config.target.kind}_reduction",
        )
    task = validate_task_ref(config.task)
    hf_config = hf_config if hf_config is not None else load_hf_config(config.model)
    shape = _model_shape(method, hf_config)
    if method.check is not None:
        method.check(params, config.model, task, hf_config)
    seq_len = resolve_max_length(task, None, requested=config.sampling.max_length, model_config=hf_config)
    check_measure(config.measure, hf_config, shape, seq_len, task.head)
    budget = None
    if method.kind == "structured":
        budget = make_budget(config.target, shape, seq_len, params.lambda_val, method.budget_scope(params))
    reconstruct = resolve_reconstruct(config) if method.kind == "structured" else None
    reads_data = method.reads_data(params) or reconstruct is not None
    return PrunePlan(config, method, params, task, config.sampling, reads_data, seq_len, shape, budget, reconstruct)


def validate_prune_config(config: PruneConfig) -> PrunePlan:
    """What the service runs at submission: :func:`resolve_prune_plan`, its plan returned."""
    return resolve_prune_plan(config)
