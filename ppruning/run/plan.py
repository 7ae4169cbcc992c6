"""Resolving a prune config once into a plan: task, method, parameters, sampling, budget.

Submission (the service's ``POST /jobs``, ``ppruning prune``) and the run itself
(:func:`ppruning.run.prune.prune`) call the same :func:`resolve_prune_plan`, and nothing
below it re-derives what it resolved. The budget's sequence length is fixed here
(``sampling.cost_length``): the sampling block's ``max_length``, else the task's (capped by
the model's context), or a given number of tokens; so a target accepted at submission is
judged at the same length when the job runs, for every method alike. With
``cost_length: "mean"`` submission judges the target at that bound and the run re-costs it
at the sampled inputs' mean real length (:meth:`PrunePlan.at_length`), known only once they
are read; both lengths are recorded. When submission could not read the model's config
(the hub was down), the run performs this same check first and fails with the same error type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
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
from ppruning.recovery.compensation import CompensationConfig
from ppruning.recovery.outlier_units import OutlierUnitsConfig
from ppruning.recovery.reconstruct import ReconstructConfig
from ppruning.run.config import PruneConfig
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.refs import validate_task_ref
from ppruning.tasks.registry import TaskInfo
from ppruning.units.budget import Budget, make_budget
from ppruning.units.layer_drop import layers_to_remove

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
    #: Tokens per sequence the budget (and the report's cost) is computed at: the bound below
    #: until a ``cost_length: "mean"`` run has read its inputs (:meth:`at_length`).
    seq_len: float
    shape: ModelShape
    #: The structured budget; None for an unstructured method (its target is a fraction of weights) and
    #: for a layers method (its target is a share of the layers: :mod:`ppruning.units.layer_drop`).
    budget: Budget | None
    #: Reconstruction after the method, resolved (None: off).
    reconstruct: ReconstructConfig | None = None
    #: Least-squares compensation after the method, resolved (None: off).
    compensation: CompensationConfig | None = None
    #: Outlier neurons kept after the method, resolved (None: off).
    outlier_units: OutlierUnitsConfig | None = None
    #: The length the target was checked at when the config resolved (submission's bound).
    seq_len_bound: float = 0.0
    #: Where ``seq_len`` came from: ``sampling.max_length``, ``task``, ``sampling.cost_length`` or ``inputs_mean``.
    seq_len_from: str = "task"

    @property
    def costs_at_mean(self) -> bool:
        """Whether the run re-costs the budget at the sampled inputs' mean length once it has read them."""
        return self.config.sampling.cost_length == "mean"

    def at_length(self, seq_len: float) -> PrunePlan:
        """This plan with the budget costed at ``seq_len`` tokens (the inputs' mean real length).

        Raises :class:`InfeasibleTargetError` (naming the target) when the target, feasible at
        the bound, is not at this length.
        """
        budget = self.budget
        if budget is not None:
            budget = make_budget(self.config.target, self.shape, seq_len, budget.lambda_val, budget.scope)
        return replace(self, seq_len=float(seq_len), budget=budget, seq_len_from="inputs_mean")

    @property
    def stages(self) -> tuple[str, ...]:
        return run_stages(
            self.config,
            self.method,
            self.params,
            self.reads_data,
            self.reconstruct is not None,
            self.compensation is not None,
            self.outlier_units is not None,
        )

    def resolved_spec(self) -> dict[str, Any]:
        """The config as JSON with every method parameter filled in: what a record stores to rerun."""
        reconstruct = self.reconstruct.model_dump(mode="json") if self.reconstruct is not None else False
        compensation = self.compensation.model_dump(mode="json") if self.compensation is not None else False
        outliers = self.outlier_units.model_dump(mode="json") if self.outlier_units is not None else False
        return {
            **self.config.model_dump(mode="json"),
            "params": self.params.model_dump(mode="json"),
            "reconstruct": reconstruct,
            "compensation": compensation,
            "outlier_units": outliers,
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
    config: PruneConfig,
    method: MethodSpec,
    params: MethodParams,
    reads_data: bool,
    reconstruct: bool = False,
    compensation: bool = False,
    outlier_units: bool = False,
) -> tuple[str, ...]:
    timed = config.measure and method.kind != "unstructured"  # unstructured masks change no dense timing
    after = _AFTER if timed else tuple(s for s in _AFTER if s != "measure")
    fit = ("reconstruct",) if reconstruct else ("compensate",) if compensation else ()
    protect = ("outlier_units",) if outlier_units else ()
    method_stages = method.run_stages(params)
    return (*_BEFORE, *(("load_data",) if reads_data else ()), *method_stages, *protect, *fit, *after)


def resolve_reconstruct(config: PruneConfig) -> ReconstructConfig | None:
    """The reconstruction to run, or None: off unless asked for (the bench found it no help so far)."""
    return config.reconstruct or None


def resolve_outlier_units(config: PruneConfig, method: MethodSpec) -> OutlierUnitsConfig | None:
    """The outlier-neuron protection to run, or None: on by default for structured methods (the decoder bench:
    README), whose masks it adjusts at unchanged counts; layers and unstructured methods have no neuron masks."""
    if method.kind != "structured" or config.outlier_units is False:
        return None
    return config.outlier_units if config.outlier_units is not None else OutlierUnitsConfig()


def resolve_compensation(config: PruneConfig, method: MethodSpec) -> CompensationConfig | None:
    """The compensation to run, or None: on by default for structured and layers methods (the decoder bench:
    README). A layers method (ShortGPT) refits the FFN output projection below each removed run
    (:mod:`ppruning.recovery.layer_compensation`); unstructured masks have nothing to refit.

    Reconstruction's per-unit scales are a special case of the refit (one scale per column
    block instead of a full matrix); a config that asks for reconstruction runs it alone,
    and one that asks for both is refused.
    """
    if method.kind not in ("structured", "layers") or config.compensation is False:
        return None
    if config.reconstruct and method.kind == "structured":
        if config.compensation is not None:
            raise InvalidConfigError(
                "reconstruct and compensation both refit the output projections; ask for one "
                "(compensation: false to use reconstruct)",
                field="compensation",
            )
        return None
    return config.compensation if config.compensation is not None else CompensationConfig()


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
    compensation = resolve_compensation(config, method) is not None
    outliers = resolve_outlier_units(config, method) is not None
    reads = method.reads_data(params) or reconstruct or compensation or outliers or reads_lengths(config, method)
    return run_stages(config, method, params, reads, reconstruct, compensation, outliers)


def reads_lengths(config: PruneConfig, method: MethodSpec) -> bool:
    """Whether the run reads the task's inputs for their lengths alone (``cost_length: "mean"``, structured)."""
    return config.sampling.cost_length == "mean" and method.kind == "structured"


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
    max_length = resolve_max_length(task, None, requested=config.sampling.max_length, model_config=hf_config)
    check_measure(config.measure, hf_config, shape, max_length, task.head)
    seq_len, seq_len_from = cost_length_bound(config.sampling, max_length)
    budget = None
    if method.kind == "structured":
        budget = make_budget(config.target, shape, seq_len, params.lambda_val, method.budget_scope(params))
    elif method.kind == "layers":
        layers_to_remove(config.target, shape.num_layers)  # InfeasibleTargetError when no layer would stay
    reconstruct = resolve_reconstruct(config) if method.kind == "structured" else None
    compensation = resolve_compensation(config, method)
    outlier_units = resolve_outlier_units(config, method)
    reads_data = (
        method.reads_data(params)
        or reconstruct is not None
        or compensation is not None
        or outlier_units is not None
        or reads_lengths(config, method)
    )
    return PrunePlan(
        config, method, params, task, config.sampling, reads_data, seq_len, shape, budget, reconstruct, compensation,
        outlier_units, seq_len_bound=seq_len, seq_len_from=seq_len_from,
    )  # fmt: skip


def cost_length_bound(sampling: SamplingConfig, max_length: int) -> tuple[float, str]:
    """(length the target is checked at when the config resolves, where it comes from).

    ``"max"`` and ``"mean"``: the token cap (a mean cannot exceed it); a number: itself.
    """
    if not isinstance(sampling.cost_length, str):
        return sampling.cost_length, "sampling.cost_length"
    return max_length, "sampling.max_length" if sampling.max_length else "task"


def validate_prune_config(config: PruneConfig) -> PrunePlan:
    """What the service runs at submission: :func:`resolve_prune_plan`, its plan returned."""
    return resolve_prune_plan(config)
