"""The parts job specs share: the service's own fields, the method's parameters, the teacher.

:mod:`jobs.specs` builds each job kind from these. Everything here reads the library
only through its public surface (a method's declaration, its parameter model), so no
method is named: whether a method is unstructured or takes a teacher is what it declares.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from ppruning import (
    DistillConfig,
    InvalidConfigError,
    MethodSpec,
    ModelRef,
    SamplingConfig,
    UnknownMethodError,
    all_methods,
    get_method,
)


class InvalidParamsError(InvalidConfigError, ValueError):
    """A method parameter is wrong; ``field`` is its name inside ``params``."""


PARAMS_HELP = "The method's own parameters (GET /methods/{name}); defaults filled in."


def check_method_params(params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
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


def http_url(value: str | None) -> str | None:
    """A callback URL must be http(s) with a host (where it may point is checked at submission)."""
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
    AfterValidator(http_url),
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


def check_export(formats: list[str], quantize: str | None) -> None:
    """Each export format once; ``quantize`` only with an export to quantise."""
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


class PolicySpec(BaseModel):
    """A trained policy a method reuses instead of training one (PruneNet: learn once, prune at any ratio).

    A ``policy.pt`` file under the service's allowed roots, or ``from_job``: a succeeded
    prune or pipeline job of the method, whose ``policy.pt`` artifact the worker downloads.
    It reaches the library as ``params.policy`` (a local file).
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    path: str | None = Field(default=None, min_length=1, description="An allowed policy.pt file (absolute path).")
    from_job: uuid.UUID | None = Field(
        default=None, description="A succeeded prune or pipeline job of the same method whose policy.pt is reused."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PolicySpec:
        if (self.path is None) == (self.from_job is None):
            raise ValueError("give exactly one of 'path' or 'from_job'")
        return self


def reuses_policies(method: str) -> bool:
    """Whether the method can reuse a trained policy: its parameters take ``policy``."""
    declared = declared_method(method)
    return declared is not None and "policy" in declared.params_model.model_fields


def check_policy_use(method: str, policy: Any, params: dict[str, Any]) -> None:
    """A policy is named in ``policy`` (the service checks it there), and only for a method that reuses one."""
    if params.get("policy") is not None:
        raise InvalidConfigError(
            "params.policy: name the trained policy in 'policy' (path: an allowed policy.pt file, or from_job: "
            "a finished job of the method); the service checks it there and hands it to the method",
            field="params.policy",
        )
    if policy is not None and not reuses_policies(method):
        takers = [name for name in all_methods() if reuses_policies(name)]
        raise InvalidConfigError(
            f"policy: method {method!r} learns no policy to reuse (methods that do: {', '.join(takers)})",
            field="policy",
        )


#: The job spec format this service reads and writes. A future incompatible change raises
#: it, so stored specs and reproducibility records of either format can be told apart.
SPEC_VERSION = 1
SpecVersion = Annotated[
    Literal[1],
    Field(default=SPEC_VERSION, description="Format of this spec; 1, the only one so far, when omitted."),
]
class TrackingOptions(BaseModel):
    """Experiment tracking of one job (MLflow), on a service whose workers have a tracking server.

    Left out, a job is tracked when the deployment tracks every job (``PPRUNING_MLFLOW_TRACKING_URI``
    set and ``PPRUNING_MLFLOW_TRACK_ALL`` on).
    """

    model_config = ConfigDict(extra="forbid")

    mlflow: bool = Field(
        default=True,
        description="Log this job to the service's MLflow server (params, stage times, metrics, report, model "
        "card) and register its final model as a model version; false: not this job.",
    )
    experiment: str | None = Field(
        default=None, min_length=1, max_length=256, description="MLflow experiment; default: the service's."
    )
    registered_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Registered model the final checkpoint becomes a version of; default: '<model>-<method>-<task>'.",
    )


Tracking = Annotated[
    TrackingOptions | None,
    Field(default=None, description="MLflow tracking of this job; left out: the service's default."),
]

#: Spec fields that belong to the service, not to the library configs.
SERVICE_FIELDS = {"kind", "callback_url", "spec_version", "export", "quantize", "tracking"}


def declared_method(method: str) -> MethodSpec | None:
    """The method's declaration; None for an unknown name (resolving the plan reports it, naming 'method')."""
    try:
        return get_method(method)
    except UnknownMethodError:
        return None


def unstructured(method: str) -> bool:
    """Unstructured masks leave every matrix dense-shaped: no dense speedup, by construction."""
    declared = declared_method(method)
    return declared is not None and declared.kind == "unstructured"


def check_teacher_use(method: str, distill: Any, params: dict[str, Any]) -> None:
    """A teacher is named once, in ``distill``, and only for a method that learns from one (``accepts_teacher``)."""
    if distill is None:
        return
    if params.get("distill") is not None:
        raise InvalidConfigError(
            "params.distill: name the teacher once, in 'distill' (a model, or from_job: a finished fine-tune)",
            field="params.distill",
        )
    declared = declared_method(method)
    if declared is not None and not declared.accepts_teacher:
        takers = [name for name, spec in all_methods().items() if spec.accepts_teacher]
        raise InvalidConfigError(
            f"distill: method {method!r} does not learn from a teacher (methods that do: {', '.join(takers)}); "
            "remove 'distill', or give a pipeline's fine-tuning a teacher in finetune.distill",
            field="distill",
        )
