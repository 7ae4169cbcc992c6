"""What a prune or fine-tune run is asked to do, validated once.

These pydantic models are the contract between the CLI, the library entry points
(:func:`ppruning.run.prune.prune`, :func:`ppruning.finetune.finetune`) and the REST
service, whose job specs embed them unchanged. Each part is declared where it is read:
the model reference in :mod:`ppruning.model.refs`, the task reference in
:mod:`ppruning.tasks.refs`, the target in :mod:`ppruning.units.budget`, the sampling block
in :mod:`ppruning.methods.contract`, the timing in :mod:`ppruning.measure.speed`, the
reconstruction in :mod:`ppruning.recovery.reconstruct`, the compensation in
:mod:`ppruning.recovery.compensation` and the distillation teacher in
:mod:`ppruning.recovery.distill`; this module composes them.

A method's own parameters live in the method's ``params_model`` (see
:mod:`ppruning.methods.registry`). ``PruneConfig`` keeps ``params`` as given: they are
validated once, with the task and the budget, by :func:`ppruning.run.plan.resolve_prune_plan`,
whose errors name the field (``params.lambda_val``). How data-driven methods sample the
task (``max_instances``, ``max_length``, ``batch_size``, ``sampling_tokens``) is one
block shared by every method, :class:`~ppruning.methods.contract.SamplingConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ppruning.measure.speed import MeasureConfig
from ppruning.methods.contract import SAMPLING_KEYS, SamplingConfig
from ppruning.model.refs import ModelRef
from ppruning.recovery.compensation import CompensationConfig
from ppruning.recovery.distill import DistillConfig
from ppruning.recovery.outlier_units import OutlierUnitsConfig
from ppruning.recovery.reconstruct import ReconstructConfig
from ppruning.tasks.refs import TaskRef
from ppruning.units.budget import Target


def true_means_defaults(v: Any) -> Any:
    """An optional block given as ``true``: its defaults (``{}``); ``false``, ``None`` and objects as they are."""
    return {} if v is True else v


class PruneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    model: ModelRef
    task: TaskRef
    method: str = Field(default="ppruning", description="A registered method (see GET /methods).")
    target: Target
    params: dict[str, Any] = Field(default_factory=dict, description="The method's own parameters.")
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="How task inputs are sampled; also fixes the budget's length."
    )
    seed: int = Field(default=3407, ge=0, le=2**32 - 1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    measure: MeasureConfig | Literal[False] = Field(
        default_factory=MeasureConfig,
        description="Latency/throughput of the dense and the pruned model on the job's device, timed in "
        "interleaved pairs (a dense copy is kept beside the pruned model meanwhile: about twice the model's "
        "memory); false skips it.",
    )
    reconstruct: ReconstructConfig | Literal[False] | None = Field(
        default=None,
        description="Fit per-unit output scales (and bias corrections) of the kept units on calibration tokens "
        "(reads task inputs, also for data-free methods); true or an object turns it on; off by default.",
    )
    compensation: CompensationConfig | Literal[False] | None = Field(
        default=None,
        description="Refit the output projections on the kept units by least squares after the method (reads task "
        "inputs, also for data-free methods). On by default for structured methods (left out, true or an object); "
        "false turns it off. It replaces reconstruct's per-unit scales: asking for both is refused.",
    )
    outlier_units: OutlierUnitsConfig | Literal[False] | None = Field(
        default=None,
        description="Keep the FFN neurons that write massive activations (peak |activation| over 'ratio' times "
        "their layer's median, found in one pass of the dense model over task inputs), each in place of the "
        "layer's kept neuron of least contribution, so every count and cost is unchanged. On by default for "
        "structured methods (left out, true or an object); false turns it off. The report lists them.",
    )

    @field_validator("measure", mode="before")
    @classmethod
    def _true_means_defaults(cls, v: Any) -> Any:
        return {} if v is True or v is None else v

    _options = field_validator("reconstruct", "compensation", "outlier_units", mode="before")(true_means_defaults)

    @model_validator(mode="before")
    @classmethod
    def _sampling_keys_from_params(cls, data: Any) -> Any:
        return sampling_keys_moved(data)


class FinetuneConfig(BaseModel):
    """Fine-tune a model (or a full model cut by ``masks``) on a task; optionally learn from a teacher."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    model: ModelRef
    task: TaskRef
    masks: str | None = Field(default=None, description="Folder with head_mask.pt/neuron_mask.pt to cut first.")
    preset: Literal["paper"] | None = Field(default=None, description="The paper's hyperparameters for the task.")
    learning_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    epochs: float | None = Field(default=None, gt=0.0, le=1000)
    max_length: int | None = Field(default=None, ge=8, le=65536)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    max_train_samples: int | None = Field(default=None, ge=1)
    max_eval_samples: int | None = Field(default=None, ge=1)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    seed: int = Field(default=3407, ge=0, le=2**32 - 1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    distill: DistillConfig | None = Field(
        default=None,
        description="Distillation: the student also matches a teacher fine-tuned on the same task "
        "(logits at a temperature; optionally hidden states layer to layer).",
    )

    @field_validator("masks")
    @classmethod
    def _no_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a folder path or left out")
        return v


def sampling_keys_moved(data: Any) -> Any:
    """A raw spec with the sampling keys it gives under ``params`` moved to ``sampling``.

    Specs written before the sampling block gave those keys under ``params``; every spec that
    carries a sampling block (a prune, a sweep) reads them the same way, and a key given in both
    places with two values is refused rather than one silently winning.
    """
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        return data
    moved = {k: data["params"][k] for k in SAMPLING_KEYS if k in data["params"]}
    if not moved:
        return data
    sampling = data.get("sampling")
    sampling = dict(sampling) if isinstance(sampling, dict) else {}
    for key, value in moved.items():
        if key in sampling and sampling[key] != value:
            raise ValueError(
                f"params.{key}={value!r} and sampling.{key}={sampling[key]!r} disagree; give it once, in 'sampling'"
            )
        sampling[key] = value
    params = {k: v for k, v in data["params"].items() if k not in moved}
    return {**data, "params": params, "sampling": sampling}
