"""Job specs: one discriminated union on ``kind``, shared by the API (validation) and the worker.

A spec embeds the library's own configs (:mod:`ppruning.config`) instead of restating
them: a ``prune`` spec *is* a ``PruneConfig`` plus ``kind``, so the same validators
(ranges, the method's parameter model and its defaults) run here, in the CLI and in the
worker. Checks that depend on the deployment (the path allow-list, the task registry,
the model's config, other jobs) live in :mod:`jobs.spec_checks`.

Every kind may carry ``callback_url`` (the worker POSTs the final state there, signed);
it is the service's business and never reaches the library configs, nor do ``export`` and
``quantize`` of a ``prune`` or ``pipeline`` (the worker exports the job's final model
after the library has made it). ``distill`` of a ``prune``, ``pipeline`` or ``sweep`` is a
teacher for a method that learns from one (:class:`TeacherSpec`: a model, or a finished
job's model that the worker downloads); it reaches the library as ``params.distill``. A ``pipeline`` may
carry ``accept`` (quality gates, :class:`AcceptCriteria`); a ``sweep`` runs one method at
several targets as child jobs (:class:`SweepJobSpec`).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
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

from ppruning import (
    DistillConfig,
    FinetuneConfig,
    InvalidConfigError,
    MeasureConfig,
    MethodSpec,
    ModelRef,
    PruneConfig,
    SamplingConfig,
    TaskRef,
    UnknownMethodError,
    all_methods,
    get_method,
)

# --------------------------------------------------------------------------- job specs


class InvalidParamsError(InvalidConfigError, ValueError):
    """A method parameter is wrong; ``field`` is its name inside ``params``."""


_PARAMS_HELP = "The method's own parameters (GET /methods/{name}); defaults filled in."


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
        return params  # resolving the plan at submission reports it, naming 'method'
    sampling = {k: params[k] for k in SamplingConfig.model_fields if k in params}  # the library moves these
    strict = bool((info.context or {}).get("strict"))  # a submission: no "0.3" for 0.3 in params either
    try:
        own = {k: v for k, v in params.items() if k not in sampling}
        return {**params_model.model_validate(own, strict=strict).model_dump(mode="json"), **sampling}
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParamsError(f"params.{where}: {first['msg']}", field=where or None) from None


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace")
    return value


CallbackUrl = Annotated[
    Annotated[str, Field(max_length=2048)] | None,
    AfterValidator(_http_url),
    Field(
        default=None,
        description="POSTed the job's final state (JSON) when it finishes, signed with "
        "X-PPruning-Signature: t=<unix seconds>,sha256=<HMAC-SHA256 of '<t>.<body>'>. Must be a public host: "
        "no credentials, no loopback, private or link-local address.",
    ),
]
ExportFormat = Literal["onnx"]
ExportFormats = Annotated[
    list[ExportFormat],
    Field(
        default_factory=list,
        max_length=len(get_args(ExportFormat)),
        description="Exports of the job's model, uploaded as artifacts: 'onnx' gives model.onnx and "
        "export_report.json (onnxruntime parity and latency, pruned vs dense). Needs the export extra on the workers.",
    ),
]
Quantize = Annotated[
    Literal["int8"] | None,
    Field(default=None, description="Also write a dynamic int8 quantisation of each export (model.int8.onnx)."),
]


def _check_export(formats: list[str], quantize: str | None) -> None:
    if len(set(formats)) != len(formats):
        raise InvalidConfigError("export formats must not repeat", field="export")
    if quantize is not None and not formats:
        raise InvalidConfigError("quantize applies to an export; add \"export\": [\"onnx\"]", field="quantize")




class TeacherSpec(DistillConfig):
    """A distillation teacher: a model (hub id or allowed folder), or the model a finished job fine-tuned.

    The worker downloads a ``from_job`` teacher and hands the library a plain
    :class:`ppruning.DistillConfig` naming that folder (:meth:`distill_config`).
    """

    teacher: ModelRef | None = Field(default=None, description="Hub id or allowed folder of the teacher.")  # type: ignore[assignment]
    from_job: uuid.UUID | None = Field(
        default=None, description="A succeeded finetune or pipeline job whose fine-tuned model teaches."
    )

    @model_validator(mode="after")
    def _one_teacher(self) -> TeacherSpec:
        if (self.teacher is None) == (self.from_job is None):
            raise ValueError("give exactly one of 'teacher' or 'from_job'")
        return self

    def distill_config(self, folder: str | None = None) -> DistillConfig:
        """The library's config; ``folder`` replaces ``from_job`` once the worker has the teacher's files."""
        teacher = ModelRef(id=folder) if folder is not None else self.teacher
        return DistillConfig.model_validate({**self.model_dump(exclude={"from_job", "teacher"}), "teacher": teacher})


#: The job spec format this service reads and writes. A future incompatible change raises
#: it, so stored specs and reproducibility records of either format can be told apart.
SPEC_VERSION = 1
SpecVersion = Annotated[
    Literal[1],
    Field(default=SPEC_VERSION, description="Format of this spec; 1, the only one so far, when omitted."),
]
#: Spec fields that belong to the service, not to the library configs.
_SERVICE_FIELDS = {"kind", "callback_url", "spec_version", "export", "quantize"}


def _declared(method: str) -> MethodSpec | None:
    """The method's declaration; None for an unknown name (resolving the plan reports it, naming 'method')."""
    try:
        return get_method(method)
    except UnknownMethodError:
        return None


def _unstructured(method: str) -> bool:
    """Unstructured masks leave every matrix dense-shaped: no dense speedup, by construction."""
    declared = _declared(method)
    return declared is not None and declared.kind == "unstructured"


def _check_teacher_use(method: str, distill: Any, params: dict[str, Any]) -> None:
    """A teacher is named once, in ``distill``, and only for a method that learns from one (``accepts_teacher``)."""
    if distill is None:
        return
    if params.get("distill") is not None:
        raise InvalidConfigError(
            "params.distill: name the teacher once, in 'distill' (a model, or from_job: a finished fine-tune)",
            field="params.distill",
        )
    declared = _declared(method)
    if declared is not None and not declared.accepts_teacher:
        takers = [name for name, spec in all_methods().items() if spec.accepts_teacher]
        raise InvalidConfigError(
            f"distill: method {method!r} does not learn from a teacher (methods that do: {', '.join(takers)}); "
            "remove 'distill', or give a pipeline's fine-tuning a teacher in finetune.distill",
            field="distill",
        )


class _MethodJobSpec(PruneConfig):
    """What every job kind that runs a method adds to the library's config: the service's own fields."""

    callback_url: CallbackUrl
    spec_version: SpecVersion
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True, description=_PARAMS_HELP)
    _params = field_validator("params")(_check_method_params)
    export: ExportFormats  # of the job's final model (the fine-tuned one in a pipeline)
    quantize: Quantize
    distill: TeacherSpec | None = Field(
        default=None,
        description="A teacher the pruning method learns from (a method whose parameters take 'distill', such as "
        "smp): a model fine-tuned on the same task (hub id or allowed folder), or from_job, a succeeded finetune "
        "or pipeline job. The worker hands it to the method as params.distill.",
    )
    #: Fields of the kind beyond the library config and the service fields above.
    _KIND_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _export_options(self) -> Self:
        _check_export(self.export, self.quantize)
        return self

    @model_validator(mode="after")
    def _teacher_for_the_method(self) -> Self:
        _check_teacher_use(self.method, self.distill, self.params)
        return self

    def prune_config(self, distill: DistillConfig | None = None) -> PruneConfig:
        """The library's config, with the teacher as ``params.distill``.

        ``distill``: the teacher the worker resolved from ``self.distill`` (a ``from_job``
        teacher is a folder only once the worker has downloaded it). Without it a named model
        is passed as given, and a ``from_job`` teacher is left out: what is checked at
        submission does not load the teacher.
        """
        data = self.model_dump(exclude=_SERVICE_FIELDS | self._KIND_FIELDS | {"distill"})
        if distill is None and self.distill is not None and self.distill.from_job is None:
            distill = self.distill.distill_config()
        if distill is not None:
            data["params"] = {**data["params"], "distill": distill.model_dump()}
        return PruneConfig.model_validate(data)


class PruneJobSpec(_MethodJobSpec):
    """Prune ``model`` for ``task`` with ``method`` down to ``target``."""

    kind: Literal["prune"]


#: Fine-tuning options of a pipeline: FinetuneConfig's fields minus what the pipeline supplies.
_PIPELINE_SUPPLIED = {"model", "task", "masks", "device", "distill"}
FinetuneOptions: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FinetuneOptions",
    __config__=ConfigDict(extra="forbid", str_max_length=4096),
    __doc__="FinetuneConfig's hyperparameters; the model, task and device come from the pipeline.",
    **{
        name: (info.annotation, info)
        for name, info in FinetuneConfig.model_fields.items()
        if name not in _PIPELINE_SUPPLIED
    },
    distill=(
        TeacherSpec | None,
        Field(
            default=None,
            description="A teacher to distil from while fine-tuning the pruned model. Left out in a pipeline whose "
            "accept criteria fine-tune the dense model, that dense model (fine-tuned first) is the teacher.",
        ),
    ),
)


class FinetuneJobSpec(FinetuneConfig):
    """Fine-tune a model (hub id or allowed path), or the pruned output of a finished job (``from_job``)."""

    kind: Literal["finetune"]
    callback_url: CallbackUrl
    spec_version: SpecVersion
    model: ModelRef | None = None  # type: ignore[assignment]
    from_job: uuid.UUID | None = Field(
        default=None, description="A succeeded prune or pipeline job whose pruned model is fine-tuned."
    )
    distill: TeacherSpec | None = Field(  # type: ignore[assignment]
        default=None, description="A teacher fine-tuned on the same task (a model, or a finished job's model)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> FinetuneJobSpec:
        if (self.model is None) == (self.from_job is None):
            raise ValueError("give exactly one of 'model' or 'from_job'")
        return self

    def finetune_config(
        self, model: ModelRef | None = None, masks: str | None = None, distill: DistillConfig | None = None
    ) -> FinetuneConfig:
        """The library config; ``model`` replaces ``from_job`` once the worker has the pruned folder, and
        ``distill`` the teacher spec once the worker has resolved it (:func:`worker.teachers.resolve_teacher`)."""
        data = self.model_dump(exclude=_SERVICE_FIELDS | {"from_job", "distill"})
        data["model"] = (model or self.model).model_dump()  # type: ignore[union-attr]
        if masks is not None:
            data["masks"] = masks
        if distill is not None:
            data["distill"] = distill.model_dump()
        elif self.distill is not None and self.distill.from_job is None:
            data["distill"] = self.distill.distill_config().model_dump()
        return FinetuneConfig.model_validate(data)


class AcceptCriteria(BaseModel):
    """Quality gates of a pipeline: the job ends ``succeeded`` with ``result.verdict`` passed or rejected."""

    model_config = ConfigDict(extra="forbid")

    max_metric_drop: float | None = Field(
        default=None,
        ge=0.0,
        description="Largest allowed drop of the task's main metric from the dense score, in the metric's own units "
        "(accuracy 0.01 = one point). Where higher is better the drop is dense - pruned; where lower is better "
        "(perplexity) it is pruned - dense. A pruned model that scores better has a negative drop.",
    )
    min_speedup: float | None = Field(
        default=None,
        gt=0.0,
        description="Smallest allowed measured speedup: dense latency / pruned latency at the largest measured batch "
        "size on the job's device (the report's speed.speedup).",
    )
    dense_score: float | None = Field(
        default=None,
        description="The dense model's main-metric score to compare with. Left out, the worker fine-tunes the dense "
        "model with the same settings and scores it on the same split.",
    )
    split: str | None = Field(
        default=None,
        max_length=64,
        description="Evaluation split the scores come from; default: the task's first evaluation split scored.",
    )

    @model_validator(mode="after")
    def _some_criterion(self) -> AcceptCriteria:
        if self.max_metric_drop is None and self.min_speedup is None:
            raise ValueError("give 'max_metric_drop', 'min_speedup' or both")
        return self

    @property
    def needs_dense_run(self) -> bool:
        """The worker must fine-tune the dense model: a drop is asked for and no dense score given."""
        return self.max_metric_drop is not None and self.dense_score is None


class PipelineJobSpec(_MethodJobSpec):
    """Prune, then fine-tune the pruned model on the same task, in one job; optionally gate the result."""

    kind: Literal["pipeline"]
    finetune: FinetuneOptions = Field(default_factory=FinetuneOptions)  # type: ignore[valid-type]
    accept: AcceptCriteria | None = Field(
        default=None, description="Acceptance criteria; the verdict is in result.verdict ('passed' or 'rejected')."
    )
    _KIND_FIELDS: ClassVar[frozenset[str]] = frozenset({"finetune", "accept"})

    @model_validator(mode="after")
    def _speed_for_the_gate(self) -> PipelineJobSpec:
        if self.accept is not None and self.accept.min_speedup is not None and self.measure is False:
            raise InvalidConfigError(
                "accept.min_speedup needs the measured speedup; remove 'measure: false'", field="accept.min_speedup"
            )
        if self.accept is not None and self.accept.min_speedup is not None and _unstructured(self.method):
            raise InvalidConfigError(
                f"accept.min_speedup: method {self.method!r} prunes unstructured weights, which gives no dense "
                "speedup by construction; gate on accept.max_metric_drop only",
                field="accept.min_speedup",
            )
        return self

    def dense_finetune_config(self) -> FinetuneConfig:
        """The same fine-tuning, of the unpruned model: the baseline of ``accept.max_metric_drop`` (no teacher)."""
        return FinetuneConfig.model_validate(
            {
                **self.finetune.model_dump(exclude={"distill"}),
                "model": self.model.model_dump(),
                "task": self.task.model_dump(),
                "device": self.device,
            }
        )

    def finetune_config(self, pruned_model_dir: Path | str, distill: DistillConfig | None = None) -> FinetuneConfig:
        """Fine-tuning of the pruned model; ``distill`` is the teacher the worker resolved (None: no teacher)."""
        return FinetuneConfig.model_validate(
            {
                **self.finetune.model_dump(exclude={"distill"}),
                "model": {"id": str(pruned_model_dir)},
                "task": self.task.model_dump(),
                "device": self.device,
                "distill": distill.model_dump() if distill is not None else None,
            }
        )

    @property
    def dense_teacher(self) -> bool:
        """The dense fine-tune of the gate is also the teacher: it runs anyway and no teacher is named."""
        return self.accept is not None and self.accept.needs_dense_run and self.finetune.distill is None


class SweepTargets(BaseModel):
    """Exactly one list: the targets of the children, each a fraction in (0, 1)."""

    model_config = ConfigDict(extra="forbid")

    flops_reduction: list[Annotated[float, Field(gt=0.0, lt=1.0)]] | None = Field(
        default=None, min_length=1, max_length=20
    )
    params_reduction: list[Annotated[float, Field(gt=0.0, lt=1.0)]] | None = Field(
        default=None, min_length=1, max_length=20
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SweepTargets:
        if (self.flops_reduction is None) == (self.params_reduction is None):
            raise ValueError("give exactly one of 'flops_reduction' or 'params_reduction' (a list of targets)")
        values = self.values
        if len(set(values)) != len(values):
            raise ValueError("targets must not repeat")
        return self

    @property
    def key(self) -> str:
        return "flops_reduction" if self.flops_reduction is not None else "params_reduction"

    @property
    def values(self) -> list[float]:
        return list(self.flops_reduction if self.flops_reduction is not None else self.params_reduction or [])


#: The x axis of a sweep's plot: the speedup, or the fraction of the prunable weights kept.
SweepAxis = Literal["speedup", "remaining_weights"]


class SweepJobSpec(BaseModel):
    """One method at several targets, as child jobs (``prune``, or ``pipeline`` with ``finetune``).

    The children are ordinary jobs (``parent_id`` = this job): listed, cancellable and
    downloadable on their own. When the last one has finished, this job gets the table
    (``sweep.json``, ``sweep.csv``) and the plot (``sweep.png``), against speedup or
    against the remaining weights (:attr:`x_axis`). An unstructured method (its masks zero
    weights inside dense matrices) has no dense speedup by construction, so a speed axis,
    or FLOPs targets, are refused for one.
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    kind: Literal["sweep"]
    callback_url: CallbackUrl
    spec_version: SpecVersion
    model: ModelRef
    task: TaskRef
    method: str = Field(default="ppruning", description="A registered method (see GET /methods).")
    params: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="The method's own parameters, for every child."
    )
    _params = field_validator("params")(_check_method_params)
    targets: SweepTargets
    seed: int = Field(default=3407, ge=0, le=2**32 - 1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    measure: MeasureConfig | Literal[False] = Field(default_factory=MeasureConfig)
    finetune: FinetuneOptions | None = Field(  # type: ignore[valid-type]
        default=None, description="Fine-tune every pruned child (children are pipelines); the table gets its metric."
    )
    distill: TeacherSpec | None = Field(
        default=None, description="A teacher for every child's pruning method (see the prune spec's 'distill')."
    )
    axis: SweepAxis | None = Field(
        default=None,
        description="x axis of the plot: 'speedup' (measured; the ideal FLOPs ratio where none was measured) or "
        "'remaining_weights' (the fraction of the prunable weights kept). Default: speedup for a structured "
        "method, remaining_weights for an unstructured one, whose dense speedup is none by construction.",
    )

    @field_validator("measure", mode="before")
    @classmethod
    def _true_means_defaults(cls, v: Any) -> Any:
        return {} if v is True or v is None else v

    @model_validator(mode="after")
    def _no_speed_axis_for_unstructured(self) -> SweepJobSpec:
        if not _unstructured(self.method):
            return self
        why = f"method {self.method!r} prunes unstructured weights, whose dense speedup is none by construction"
        if self.axis == "speedup":
            raise InvalidConfigError(
                f"axis: {why}; plot against 'remaining_weights' (its default)", field="axis"
            )
        if self.targets.flops_reduction is not None:
            raise InvalidConfigError(
                f"targets.flops_reduction: {why} (it removes no dense FLOPs); sweep targets.params_reduction",
                field="targets.flops_reduction",
            )
        return self

    @model_validator(mode="after")
    def _children_valid(self) -> SweepJobSpec:
        self.child_specs()  # method and params checked as each child will be
        return self

    @property
    def x_axis(self) -> str:
        """The plot's x axis: as asked, else remaining weights for an unstructured method and speedup otherwise."""
        return self.axis or ("remaining_weights" if _unstructured(self.method) else "speedup")

    def child_specs(self) -> list[dict[str, Any]]:
        """The children's specs, in target order, validated and with every default filled in."""
        base = self.model_dump(mode="json", exclude={"kind", "callback_url", "targets", "finetune", "axis"})
        kind = "prune" if self.finetune is None else "pipeline"
        specs = []
        for value in self.targets.values:
            child: dict[str, Any] = {**base, "kind": kind, "target": {self.targets.key: value}}
            if self.finetune is not None:
                child["finetune"] = self.finetune.model_dump(mode="json")
            specs.append(parse_spec(child).model_dump(mode="json"))
        return specs


JobSpec = Annotated[PruneJobSpec | FinetuneJobSpec | PipelineJobSpec | SweepJobSpec, Field(discriminator="kind")]
#: The job kinds, read off the union's members.
JOB_KINDS: tuple[str, ...] = tuple(
    k
    for member in (PruneJobSpec, FinetuneJobSpec, PipelineJobSpec, SweepJobSpec)
    for k in get_args(member.model_fields["kind"].annotation)
)
#: The same as a type, for the ``GET /jobs?kind=`` filter.
JobKind = StrEnum("JobKind", {k: k for k in JOB_KINDS})  # type: ignore[misc]
_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(JobSpec)


def parse_spec(spec: dict[str, Any]) -> PruneJobSpec | FinetuneJobSpec | PipelineJobSpec | SweepJobSpec:
    """A stored ``jobs.spec`` back as its model (the worker's entry point to a job's config)."""
    return _SPEC_ADAPTER.validate_python(spec)


def parse_submitted(body: bytes) -> PruneJobSpec | FinetuneJobSpec | PipelineJobSpec | SweepJobSpec:
    """A submitted spec, read strictly from its JSON: a number must be a JSON number, a flag a JSON
    boolean (``"0.3"`` is not 0.3). Raises :class:`pydantic.ValidationError`.

    Stored specs, the CLI and the library stay lax; only what a client sends is held to its schema.
    """
    return _SPEC_ADAPTER.validate_json(body, strict=True, context={"strict": True})
