"""What a prune or fine-tune run is asked to do, validated once.

These pydantic models are the contract between the CLI, the library entry points
(:func:`ppruning.pipeline.prune`, :func:`ppruning.finetune.finetune`) and the REST
service, whose job specs embed them unchanged. They import nothing else of the library.
``FinetuneConfig`` lives in :mod:`ppruning.finetune_config`, since it embeds the
distillation teacher (:mod:`ppruning.distill`, which imports this module).

A method's own parameters live in the method's ``params_model`` (see
:mod:`ppruning.methods.registry`). ``PruneConfig`` keeps ``params`` as given: they are
validated once, with the task and the budget, by :func:`ppruning.plan.resolve_prune_plan`,
whose errors name the field (``params.lambda_val``). How data-driven methods sample the
task (``max_instances``, ``max_length``, ``batch_size``, ``sampling_tokens``) is one
block shared by every method, :class:`SamplingConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class ModelRef(_Strict):
    """A model on the Hugging Face hub (``id``, optional ``revision``) or a local folder."""

    id: str = Field(min_length=1, max_length=1024, description="Hub id (org/name) or local directory.")
    revision: str | None = Field(default=None, max_length=256, description="Branch, tag or commit on the hub.")


class TaskRef(_Strict):
    """A registered task by name; custom tasks also name their files and columns."""

    name: str = Field(min_length=1, max_length=128, description="A registered task, e.g. 'sst2'.")
    data_files: dict[str, str] | None = Field(
        default=None, description="Custom tasks: split name -> local file (CSV, JSON or text)."
    )
    text_column: str | None = Field(default=None, max_length=256)
    text_pair_column: str | None = Field(default=None, max_length=256)
    label_column: str | None = Field(default=None, max_length=256)


class Target(_Strict):
    """Exactly one of the two: the fraction of attention+FFN FLOPs or of their parameters removed."""

    flops_reduction: float | None = Field(default=None, gt=0.0, lt=1.0)
    params_reduction: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.flops_reduction is None) == (self.params_reduction is None):
            raise ValueError("give exactly one of 'flops_reduction' or 'params_reduction'")
        return self

    @property
    def kind(self) -> Literal["flops", "params"]:
        return "flops" if self.flops_reduction is not None else "params"

    @property
    def value(self) -> float:
        return self.flops_reduction if self.flops_reduction is not None else self.params_reduction  # type: ignore[return-value]


class MeasureConfig(_Strict):
    """How the dense and the pruned model are timed after pruning (the report's ``speed``).

    Left out, ``batch_sizes``, ``repeats`` and ``warmup`` depend on the device: cheap on a
    CPU ([1, 8], at least 3 runs, 1 warm-up), steadier on a GPU ([1, 32], at least 10 runs,
    3 warm-ups). The report records the values used.

    Timing repeats (past ``repeats``) until the 95% interval of the speedup is within
    ``target_rel_half_width`` of it, or ``seconds_per_batch`` have passed at that batch
    size, and the whole measurement stops at ``max_seconds``: with the defaults at most
    about 40 s (two batch sizes), well under what collection takes on a model large
    enough for one run to be slow.
    """

    batch_sizes: list[int] | None = Field(
        default=None, min_length=1, max_length=8, description="Batch sizes timed; default [1, 8] CPU, [1, 32] GPU."
    )
    seq_len: int | None = Field(
        default=None, ge=1, le=65536, description="Tokens per sequence; default: the task's max length."
    )
    repeats: int | None = Field(
        default=None, ge=1, le=100, description="Least timed runs per model and batch size; default 3 CPU, 10 GPU."
    )
    warmup: int | None = Field(
        default=None, ge=0, le=20, description="Untimed runs per model and batch size first; default 1 CPU, 3 GPU."
    )
    max_seconds: float = Field(
        default=60.0, gt=0.0, le=3600.0, description="Time bound of the whole measurement (warm-ups included)."
    )
    seconds_per_batch: float = Field(
        default=20.0, gt=0.0, le=3600.0, description="Stop repeating at one batch size past this many seconds."
    )
    target_rel_half_width: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="Repeat until the 95% interval's half-width is at most this fraction of the speedup.",
    )

    @field_validator("batch_sizes")
    @classmethod
    def _positive_unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(b < 1 or b > 4096 for b in v):
            raise ValueError("batch sizes must be between 1 and 4096")
        return None if v is None else sorted(set(v))

    def resolved(self, device_type: str) -> MeasureConfig:
        """Every default filled in for ``device_type`` ('cpu', 'cuda', 'mps')."""
        gpu = device_type != "cpu"
        return self.model_copy(
            update={
                "batch_sizes": self.batch_sizes or ([1, 32] if gpu else [1, 8]),
                "repeats": self.repeats or (10 if gpu else 3),
                "warmup": self.warmup if self.warmup is not None else (3 if gpu else 1),
            }
        )


class SamplingConfig(_Strict):
    """How a method that reads task inputs samples them; one set of defaults for every method.

    ``max_length`` also fixes the sequence length the budget is computed at (the task's
    when left out), for every method, so methods of one comparison are budgeted alike.
    A method that reads no data accepts the block and its report says it was not used.
    """

    max_instances: int = Field(default=3000, ge=1, le=1_000_000, description="Task examples read (train split).")
    max_length: int | None = Field(
        default=None, ge=8, le=65536, description="Token limit, also the budget's sequence length; default the task's."
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="Examples per forward pass while reading data.")
    sampling_tokens: int = Field(
        default=200, ge=2, le=100_000, description="Real token positions sampled (methods that sample positions)."
    )


class ReconstructConfig(_Strict):
    """Retraining-free reconstruction after the units are chosen (:mod:`ppruning.reconstruct`).

    Per layer, a ridge least-squares fit of one output scale per kept head and neuron (and
    a correction of the output projection's bias, where it has one) so the pruned layer's
    output matches the dense layer's on calibration tokens. Seconds of work, no labels.
    """

    tokens: int = Field(
        default=4096, ge=16, le=10_000_000, description="Real calibration tokens (from the task inputs read)."
    )
    ridge: float = Field(
        default=1e-2, ge=0.0, le=1e6, description="Ridge toward scale 1, relative to the normal matrix's mean diagonal."
    )
    bias: bool = Field(default=True, description="Also correct the output projections' biases (where they have one).")
    sequential: bool = Field(
        default=True,
        description="Fit layer by layer on the inputs of the model pruned and fitted so far (true), "
        "or every layer on the dense model's inputs in one pass (false).",
    )


#: Keys of :class:`SamplingConfig` that older specs gave under ``params``.
SAMPLING_KEYS = tuple(SamplingConfig.model_fields)


class PruneConfig(_Strict):
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

    @field_validator("measure", mode="before")
    @classmethod
    def _true_means_defaults(cls, v: Any) -> Any:
        return {} if v is True or v is None else v

    @field_validator("reconstruct", mode="before")
    @classmethod
    def _true_means_reconstruct_defaults(cls, v: Any) -> Any:
        return {} if v is True else v

    @model_validator(mode="before")
    @classmethod
    def _sampling_keys_from_params(cls, data: Any) -> Any:
        """Specs written before the sampling block gave its keys under ``params``; move them there."""
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
