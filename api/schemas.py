"""Job specs (one discriminated union on ``kind``) and the API's response bodies.

A spec embeds the library's own configs (:mod:`ppruning.config`) instead of restating
them: a ``prune`` spec *is* a ``PruneConfig`` plus ``kind``, so the same validators
(ranges, the method's parameter model and its defaults) run here, in the CLI and in the
worker. Checks that depend on the deployment (the path allow-list, the task registry,
the model's config, other jobs) live in :mod:`api.spec_checks`.

The union is open: a later kind (``sweep``) is one more member of ``JobSpec``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from ppruning.config import FinetuneConfig, ModelRef, PruneConfig
from ppruning.errors import InvalidConfigError
from ppruning.methods.registry import UnknownMethodError, get_method

# --------------------------------------------------------------------------- job specs


class InvalidParamsError(InvalidConfigError, ValueError):
    """A method parameter is wrong; ``field`` is its name inside ``params``."""


def _check_method_params(params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """Validate ``params`` against the method's model here, so a 422 names ``params.<name>``.

    PruneConfig's own validator does the same at model level, where pydantic loses the path.
    """
    method = info.data.get("method")
    if not isinstance(method, str):
        return params
    try:
        params_model = get_method(method).params_model
    except UnknownMethodError:
        return params  # PruneConfig's model validator reports it, naming 'method'
    try:
        return params_model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParamsError(f"params.{where}: {first['msg']}", field=where or None) from None


class PruneJobSpec(PruneConfig):
    """Prune ``model`` for ``task`` with ``method`` down to ``target``."""

    kind: Literal["prune"]
    _params = field_validator("params")(_check_method_params)

    def prune_config(self) -> PruneConfig:
        return PruneConfig.model_validate(self.model_dump(exclude={"kind"}))


#: Fine-tuning options of a pipeline: FinetuneConfig's fields minus what the pipeline supplies.
_PIPELINE_SUPPLIED = {"model", "task", "masks", "device"}
FinetuneOptions: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FinetuneOptions",
    __config__=ConfigDict(extra="forbid", str_max_length=4096),
    __doc__="FinetuneConfig's hyperparameters; the model, task and device come from the pipeline.",
    **{
        name: (info.annotation, info)
        for name, info in FinetuneConfig.model_fields.items()
        if name not in _PIPELINE_SUPPLIED
    },
)


class FinetuneJobSpec(FinetuneConfig):
    """Fine-tune a model (hub id or allowed path), or the pruned output of a finished job (``from_job``)."""

    kind: Literal["finetune"]
    model: ModelRef | None = None  # type: ignore[assignment]
    from_job: uuid.UUID | None = Field(
        default=None, description="A succeeded prune or pipeline job whose pruned model is fine-tuned."
    )

    @model_validator(mode="after")
    def _one_source(self) -> FinetuneJobSpec:
        if (self.model is None) == (self.from_job is None):
            raise ValueError("give exactly one of 'model' or 'from_job'")
        return self

    def finetune_config(self, model: ModelRef | None = None, masks: str | None = None) -> FinetuneConfig:
        """The library config; ``model`` replaces ``from_job`` once the worker has the pruned folder."""
        data = self.model_dump(exclude={"kind", "from_job"})
        data["model"] = (model or self.model).model_dump()  # type: ignore[union-attr]
        if masks is not None:
            data["masks"] = masks
        return FinetuneConfig.model_validate(data)


class PipelineJobSpec(PruneConfig):
    """Prune, then fine-tune the pruned model on the same task, in one job."""

    kind: Literal["pipeline"]
    _params = field_validator("params")(_check_method_params)
    finetune: FinetuneOptions = Field(default_factory=FinetuneOptions)  # type: ignore[valid-type]

    def prune_config(self) -> PruneConfig:
        return PruneConfig.model_validate(self.model_dump(exclude={"kind", "finetune"}))

    def finetune_config(self, pruned_model_dir: Path | str) -> FinetuneConfig:
        return FinetuneConfig.model_validate(
            {
                **self.finetune.model_dump(),
                "model": {"id": str(pruned_model_dir)},
                "task": self.task.model_dump(),
                "device": self.device,
            }
        )


JobSpec = Annotated[PruneJobSpec | FinetuneJobSpec | PipelineJobSpec, Field(discriminator="kind")]
JOB_KINDS: tuple[str, ...] = ("prune", "finetune", "pipeline")
_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(JobSpec)


def parse_spec(spec: dict[str, Any]) -> PruneJobSpec | FinetuneJobSpec | PipelineJobSpec:
    """A stored ``jobs.spec`` back as its model (the worker's entry point to a job's config)."""
    return _SPEC_ADAPTER.validate_python(spec)


SPEC_EXAMPLES: dict[str, dict[str, Any]] = {
    "prune": {
        "summary": "Prune BERT by 30% of its FLOPs for SST-2 with P-pruning",
        "value": {
            "kind": "prune",
            "model": {"id": "bert-base-uncased"},
            "task": {"name": "sst2"},
            "method": "ppruning",
            "target": {"flops_reduction": 0.3},
        },
    },
    "finetune": {
        "summary": "Fine-tune the pruned model of a finished prune job with the paper's hyperparameters",
        "value": {
            "kind": "finetune",
            "from_job": "0b7c3c1e-8a0e-4a8b-9a59-0f4c6c1d2e3f",
            "task": {"name": "sst2"},
            "preset": "paper",
        },
    },
    "pipeline": {
        "summary": "Prune 40% of the parameters, then fine-tune for 3 epochs",
        "value": {
            "kind": "pipeline",
            "model": {"id": "bert-base-uncased", "revision": "main"},
            "task": {"name": "mrpc"},
            "method": "ppruning",
            "target": {"params_reduction": 0.4},
            "finetune": {"learning_rate": 2e-5, "epochs": 3, "batch_size": 32},
        },
    },
}


# --------------------------------------------------------------------------- responses


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class JobError(BaseModel):
    type: str | None
    message: str | None


class ArtifactOut(BaseModel):
    name: str
    kind: str
    size: int
    sha256: str
    url: str
    created_at: datetime


class JobSummary(BaseModel):
    id: uuid.UUID
    url: str
    kind: str
    state: str
    stage: str | None
    progress: float
    message: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobOut(JobSummary):
    spec: dict[str, Any]
    attempts: int
    worker: str | None
    error: JobError | None
    metrics: dict[str, dict[str, float]] = Field(description="split -> metric -> value")
    artifacts: list[ArtifactOut]
    result: dict[str, Any] | None


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class EventOut(BaseModel):
    id: int
    created_at: datetime
    level: str
    stage: str | None
    message: str
    data: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(description="Pass as ?after= to read newer events; null when none were returned.")
