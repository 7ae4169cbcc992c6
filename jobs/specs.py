"""Job specs: the model of each job kind's spec, shared by the API (validation) and the worker.

Each model is declared a job kind in :mod:`jobs.kinds`, which builds the union on ``kind``
(``parse_spec``, the API's request body) from the declarations.

A spec embeds the library's own configs (:mod:`ppruning.config`) instead of restating
them: a ``prune`` spec *is* a ``PruneConfig`` plus ``kind``, so the same validators
(ranges, the method's parameter model and its defaults) run here, in the CLI and in the
worker. Checks that depend on the deployment (the path allow-list, the task registry,
the model's config, other jobs) live in :mod:`jobs.spec_checks`.

Every kind may carry ``callback_url`` (the worker POSTs the final state there, signed) and
``tracking`` (MLflow, :class:`~jobs.spec_fields.TrackingOptions`);
it is the service's business and never reaches the library configs, nor do ``export`` and
``quantize`` of a ``prune`` or ``pipeline`` (the worker exports the job's final model
after the library has made it). ``distill`` of a ``prune``, ``pipeline`` or ``sweep`` is a
teacher for a method that learns from one (:class:`TeacherSpec`: a model, or a finished
job's model that the worker downloads); it reaches the library as ``params.distill``. A ``pipeline`` may
carry ``accept`` (quality gates, :class:`AcceptCriteria`); a ``sweep`` runs one method at
several targets as child jobs (:class:`SweepJobSpec`). The fields the kinds share live in
:mod:`jobs.spec_fields`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from jobs.spec_fields import (
    PARAMS_HELP,
    SERVICE_FIELDS,
    CallbackUrl,
    ExportFormats,
    PolicySpec,
    Quantize,
    SpecVersion,
    TeacherSpec,
    Tracking,
    check_export,
    check_method_params,
    check_policy_use,
    check_teacher_use,
    reuses_policies,
    unstructured,
)
from ppruning import (
    CompensationConfig,
    DistillConfig,
    FinetuneConfig,
    InvalidConfigError,
    MeasureConfig,
    ModelRef,
    OutlierUnitsConfig,
    PruneConfig,
    SamplingConfig,
    TaskRef,
    sampling_keys_moved,
    true_means_defaults,
)

# --------------------------------------------------------------------------- job specs


class _MethodJobSpec(PruneConfig):
    """What every job kind that runs a method adds to the library's config: the service's own fields."""

    callback_url: CallbackUrl
    spec_version: SpecVersion
    tracking: Tracking
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True, description=PARAMS_HELP)
    _params = field_validator("params")(check_method_params)
    export: ExportFormats  # of the job's final model (the fine-tuned one in a pipeline)
    quantize: Quantize
    distill: TeacherSpec | None = Field(
        default=None,
        description="A teacher the pruning method learns from (a method whose parameters take 'distill', such as "
        "smp): a model fine-tuned on the same task (hub id or allowed folder), or from_job, a succeeded finetune "
        "or pipeline job. The worker hands it to the method as params.distill.",
    )
    policy: PolicySpec | None = Field(
        default=None,
        description="A trained policy the method reuses instead of training one (prunenet): path, an allowed "
        "policy.pt file, or from_job, a succeeded prune or pipeline job of the method. With one only the slicing "
        "runs. The worker hands it to the method as params.policy.",
    )
    #: Fields of the kind beyond the library config and the service fields above.
    _KIND_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _export_options(self) -> Self:
        check_export(self.export, self.quantize)
        return self

    @model_validator(mode="after")
    def _teacher_for_the_method(self) -> Self:
        check_teacher_use(self.method, self.distill, self.params)
        return self

    @model_validator(mode="after")
    def _policy_for_the_method(self) -> Self:
        check_policy_use(self.method, self.policy, self.params)
        return self

    def prune_config(self, distill: DistillConfig | None = None, policy: str | None = None) -> PruneConfig:
        """The library's config, with the teacher as ``params.distill`` and the policy as ``params.policy``.

        ``distill``: the teacher the worker resolved from ``self.distill`` (a ``from_job``
        teacher is a folder only once the worker has downloaded it). Without it a named model
        is passed as given, and a ``from_job`` teacher is left out: what is checked at
        submission does not load the teacher. ``policy``: the policy file the worker resolved
        from ``self.policy``, likewise (a ``path`` is passed as given, a ``from_job`` left out).
        """
        data = self.model_dump(exclude=SERVICE_FIELDS | self._KIND_FIELDS | {"distill", "policy"})
        if distill is None and self.distill is not None and self.distill.from_job is None:
            distill = self.distill.distill_config()
        if distill is not None:
            data["params"] = {**data["params"], "distill": distill.model_dump()}
        if policy is None and self.policy is not None:
            policy = self.policy.path
        if policy is not None:
            data["params"] = {**data["params"], "policy": policy}
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
    tracking: Tracking
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
        data = self.model_dump(exclude=SERVICE_FIELDS | {"from_job", "distill"})
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
        if self.accept is not None and self.accept.min_speedup is not None and unstructured(self.method):
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
    tracking: Tracking  # every child's
    spec_version: SpecVersion
    model: ModelRef
    task: TaskRef
    method: str = Field(default="ppruning", description="A registered method (see GET /methods).")
    params: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, description="The method's own parameters, for every child."
    )
    _params = field_validator("params")(check_method_params)
    targets: SweepTargets
    seed: int = Field(default=3407, ge=0, le=2**32 - 1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig,
        description="How every child samples task inputs (a prune job's 'sampling'); also fixes the budget's length.",
    )
    measure: MeasureConfig | Literal[False] = Field(default_factory=MeasureConfig)
    compensation: CompensationConfig | Literal[False] | None = Field(
        default=None,
        description="Least-squares compensation for every child (the prune spec's 'compensation'): on by default "
        "for structured methods, false turns it off.",
    )
    outlier_units: OutlierUnitsConfig | Literal[False] | None = Field(
        default=None,
        description="Outlier neurons kept by every child (the prune spec's 'outlier_units'): on by default for "
        "structured methods, false turns it off.",
    )
    finetune: FinetuneOptions | None = Field(  # type: ignore[valid-type]
        default=None, description="Fine-tune every pruned child (children are pipelines); the table gets its metric."
    )
    distill: TeacherSpec | None = Field(
        default=None, description="A teacher for every child's pruning method (see the prune spec's 'distill')."
    )
    policy: PolicySpec | None = Field(
        default=None, description="A trained policy every child reuses (see the prune spec's 'policy')."
    )
    reuse_policy: bool = Field(
        default=True,
        description="For a method that learns a policy (prunenet) and no 'policy' given: the first target's child "
        "trains it and every other child reuses it (the others start when it has finished); false: every child "
        "trains its own.",
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

    _options = field_validator("compensation", "outlier_units", mode="before")(true_means_defaults)

    @model_validator(mode="before")
    @classmethod
    def _sampling_keys_from_params(cls, data: Any) -> Any:
        """As a prune spec: sampling keys under ``params`` move to ``sampling`` (the children get them once)."""
        return sampling_keys_moved(data)

    @model_validator(mode="after")
    def _no_speed_axis_forunstructured(self) -> SweepJobSpec:
        if not unstructured(self.method):
            return self
        why = f"method {self.method!r} prunes unstructured weights, whose dense speedup is none by construction"
        if self.axis == "speedup":
            raise InvalidConfigError(f"axis: {why}; plot against 'remaining_weights' (its default)", field="axis")
        if self.targets.flops_reduction is not None:
            raise InvalidConfigError(
                f"targets.flops_reduction: {why} (it removes no dense FLOPs); sweep targets.params_reduction",
                field="targets.flops_reduction",
            )
        return self

    @model_validator(mode="after")
    def _children_valid(self) -> SweepJobSpec:
        check_policy_use(self.method, self.policy, self.params)
        self.child_models()  # method and params checked as each child will be
        return self

    @property
    def trains_policy_once(self) -> bool:
        """Whether the first child trains the policy that the others reuse (:attr:`reuse_policy`)."""
        several = len(self.targets.values) > 1
        return self.policy is None and self.reuse_policy and several and reuses_policies(self.method)

    def child_spec_reusing(self, index: int, source_job: uuid.UUID) -> dict[str, Any]:
        """Child ``index``'s spec as stored, reusing the policy the finished job ``source_job`` trained."""
        child = self.child_models()[index].model_copy(update={"policy": PolicySpec(from_job=source_job)})
        return type(child).model_validate(child.model_dump(mode="json")).model_dump(mode="json")

    @property
    def x_axis(self) -> str:
        """The plot's x axis: as asked, else remaining weights for an unstructured method and speedup otherwise."""
        return self.axis or ("remaining_weights" if unstructured(self.method) else "speedup")

    def child_models(self) -> list[PruneJobSpec | PipelineJobSpec]:
        """The children's specs, in target order, validated: prunes, or pipelines when ``finetune`` is given."""
        base = self.model_dump(
            mode="json", exclude={"kind", "callback_url", "targets", "finetune", "axis", "reuse_policy"}
        )
        model: type[PruneJobSpec | PipelineJobSpec] = PruneJobSpec if self.finetune is None else PipelineJobSpec
        kind = "prune" if self.finetune is None else "pipeline"
        children = []
        for value in self.targets.values:
            child: dict[str, Any] = {**base, "kind": kind, "target": {self.targets.key: value}}
            if self.finetune is not None:
                child["finetune"] = self.finetune.model_dump(mode="json")
            children.append(model.model_validate(child))
        return children

    def child_specs(self) -> list[dict[str, Any]]:
        """The children's specs as stored, with every default filled in."""
        return [child.model_dump(mode="json") for child in self.child_models()]
