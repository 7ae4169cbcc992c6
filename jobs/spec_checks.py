"""Checks of a job spec that depend on this deployment, run at submission.

Each job kind's declaration (:mod:`jobs.kinds`) names its check here (``check_<kind>_job``);
:func:`jobs.kinds.checked_spec` runs the checks every kind shares (:func:`reject_nul`,
:func:`check_callback`), then the kind's own.

pydantic (:mod:`jobs.specs`) already checked types and ranges. Here: local paths are
inside ``settings.allowed_model_roots`` (no traversal, symlinks resolved, and every file
inside a model folder resolved too: :func:`check_tree`), hub ids look
like hub ids, the task exists and has what it needs (the task registry), the model's
type is supported and the target feasible (the library's ``validate_prune_config``,
which reads only the model's config), a fine-tune's ``from_job`` is a finished
prune of the same owner, and a teacher (``distill``) is an allowed model or a finished
fine-tune of the same owner that reads text as the student does (the library's
``check_teacher_tokenizer``). Every failure is an error that names the field.

What comes back is the spec to store: local paths replaced by their resolved form, so
the worker reads exactly what was checked. The worker runs :func:`recheck_local_inputs`
before it reads them, since a folder can change after submission.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from jobs.callback_policy import CallbackRefused, check_submitted
from jobs.errors import InvalidSpec
from jobs.model_ids import LocalModel, hub_config_folder, hub_tokenizer_folder, is_local, parse_model_id
from jobs.settings import Settings
from jobs.spec_fields import TrackingOptions
from jobs.specs import FinetuneJobSpec, PipelineJobSpec, PruneJobSpec, SweepJobSpec, TeacherSpec
from jobs.store import repository
from jobs.store.states import JobState
from ppruning import (
    EXPORT_INSTALL,
    InvalidConfigError,
    ModelRef,
    PruneConfig,
    PruningError,
    TaskRef,
    check_data_columns,
    look_up_hub_model,
    missing_export_modules,
    resolve_prune_plan,
)

log = logging.getLogger(__name__)


def _roots(settings: Settings) -> list[Path]:
    return [Path(root).expanduser().resolve() for root in settings.allowed_model_roots]


def _inside_roots(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def allowed_path(raw: str, settings: Settings, field: str, *, want_dir: bool) -> Path:
    """``raw`` resolved, if it is inside an allowed root and exists; else InvalidSpec naming ``field``.

    The message never lists the roots: they describe the server's disks, not the user's input.
    """
    if "\x00" in raw:
        raise InvalidSpec("path contains a NUL byte", field=field)
    if not settings.allowed_model_roots:
        raise InvalidSpec(
            "local paths are disabled on this service (no PPRUNING_ALLOWED_MODEL_ROOTS); use a hub id", field=field
        )
    text = raw.removeprefix("file://").removeprefix("file:")
    if ".." in Path(text).parts:
        raise InvalidSpec("path must not contain '..'", field=field)
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise InvalidSpec("local paths must be absolute", field=field)
    resolved = path.resolve()
    if not _inside_roots(resolved, _roots(settings)):
        raise InvalidSpec(f"path {raw!r} is not allowed on this service (outside its allowed folders)", field=field)
    if want_dir and not resolved.is_dir():
        raise InvalidSpec("no such folder", field=field)
    if not want_dir and not resolved.is_file():
        raise InvalidSpec("no such file", field=field)
    return resolved


#: A local folder with more entries than this is refused instead of walked.
MAX_TREE_ENTRIES = 20_000


def check_tree(folder: Path, settings: Settings, field: str) -> None:
    """Every file and folder under ``folder`` resolves inside the allowed roots.

    A model folder inside a root may hold a symlink (``vocab.txt`` -> ``/etc/passwd``)
    that the loader would follow and whose content would come back in the job's
    artifacts. Symlinked folders are walked too (once each: a link cycle ends).
    """
    roots = _roots(settings)
    seen = {folder.resolve()}
    pending = [folder]
    count = 0
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            raise InvalidSpec("the folder cannot be read", field=field) from None
        for entry in entries:
            count += 1
            if count > MAX_TREE_ENTRIES:
                raise InvalidSpec(f"the folder holds more than {MAX_TREE_ENTRIES} entries", field=field)
            real = Path(entry.path).resolve()
            if not _inside_roots(real, roots):
                name = os.path.relpath(entry.path, folder)
                raise InvalidSpec(f"{name!r} in the folder leads to a path that is not allowed", field=field)
            if real.is_dir() and real not in seen:
                seen.add(real)
                pending.append(Path(entry.path))


def allowed_folder(raw: str, settings: Settings, field: str) -> Path:
    """A local folder resolved inside the roots, with everything in it inside them too."""
    folder = allowed_path(raw, settings, field, want_dir=True)
    check_tree(folder, settings, field)
    return folder


def recheck_model_id(model_id: str, field: str, *, settings: Settings) -> None:
    """The worker's check of one model id just before it is read: a local folder still inside the
    roots (with everything in it), a hub id still a hub id (:func:`jobs.model_ids.parse_model_id`)."""
    if isinstance(parse_model_id(model_id, field), LocalModel):
        allowed_folder(model_id, settings, field)


def recheck_local_inputs(spec: dict[str, Any], settings: Settings) -> None:
    """The worker's check, just before it reads: the stored spec's model, data files, masks and
    teachers are still what was checked (a folder or file can be swapped for a link after submission)."""
    model = (spec.get("model") or {}).get("id")
    if isinstance(model, str):
        recheck_model_id(model, "model.id", settings=settings)
    for split, path in ((spec.get("task") or {}).get("data_files") or {}).items():
        allowed_path(str(path), settings, f"task.data_files.{split}", want_dir=False)
    masks = spec.get("masks")
    if isinstance(masks, str):
        allowed_folder(masks, settings, "masks")
    policy = (spec.get("policy") or {}).get("path")
    if isinstance(policy, str):
        allowed_path(policy, settings, "policy.path", want_dir=False)
    for field, teacher in (("distill", spec.get("distill")), ("finetune.distill", _finetune_teacher(spec))):
        teacher_id = ((teacher or {}).get("teacher") or {}).get("id")
        if isinstance(teacher_id, str):
            recheck_model_id(teacher_id, f"{field}.teacher.id", settings=settings)


def _finetune_teacher(spec: dict[str, Any]) -> Any:
    finetune = spec.get("finetune")
    return finetune.get("distill") if isinstance(finetune, dict) else None


def check_model(ref: ModelRef, settings: Settings, field: str = "model") -> ModelRef:
    """A hub id as given, or a local folder resolved inside the allow-list."""
    if isinstance(parse_model_id(ref.id, f"{field}.id"), LocalModel):
        resolved = allowed_folder(ref.id, settings, f"{field}.id")
        return ref.model_copy(update={"id": str(resolved)})
    return ref


def check_task(ref: TaskRef, settings: Settings, field: str = "task", *, labels: bool = True) -> TaskRef:
    """Known task with the fields it needs (the task registry); data files inside the allow-list.

    ``labels=False``: the job reads only the task's texts, so its files need no label column.
    """
    from ppruning import validate_task_ref

    try:
        validate_task_ref(ref)
    except Exception as exc:
        _rebase(exc, "task", field)
        raise
    if ref.data_files:
        files = {
            split: str(allowed_path(path, settings, f"{field}.data_files.{split}", want_dir=False))
            for split, path in ref.data_files.items()
        }
        ref = ref.model_copy(update={"data_files": files})
        check_data_columns(ref, labels=labels)  # a wrong column is the user's to fix now, not a failed job later
    return ref


def _rebase(exc: Exception, prefix: str, field: str) -> None:
    """Library errors name ``task.x``; inside a pipeline or elsewhere the field may differ."""
    current = getattr(exc, "field", None)
    if isinstance(current, str) and prefix != field and current.startswith(prefix):
        exc.field = field + current[len(prefix) :]  # type: ignore[attr-defined]


def _library_validator() -> Callable[[PruneConfig], None]:
    """The library's ``validate_prune_config``, imported on first use (it loads torch and transformers)."""
    from ppruning import validate_prune_config

    return validate_prune_config


def warm_up() -> None:
    """Import the library's validators once, up front.

    The first import of transformers' lazy modules is not thread-safe: two requests
    validating at once in the thread pool can see ``cannot import name 'AutoConfig'``.
    """
    _library_validator()
    from transformers import AutoConfig  # noqa: F401

    from ppruning import all_methods, all_tasks

    all_methods()
    all_tasks()


def _config_stamp(model_dir: str) -> float:
    try:
        return os.stat(os.path.join(model_dir, "config.json")).st_mtime_ns
    except OSError:
        return -1.0


@lru_cache(maxsize=1024)
def _validated_local(key: str, stamp: float) -> None:
    """Local-model validation, remembered per (config, config.json mtime): success only is cached."""
    _library_validator()(PruneConfig.model_validate_json(key))


#: How long a submission waits for a hub model's config; after that the worker checks it.
HUB_CHECK_TIMEOUT_S = 5.0
_hub_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hub-config")


def check_prune(config: PruneConfig, hub_model: bool) -> None:
    """Model type supported and target feasible, from the model's config only.

    A hub id the hub says it does not have is refused (one request, no retries). A hub model
    whose config cannot be fetched from here (no network, a slow hub: more than
    ``HUB_CHECK_TIMEOUT_S``) is let through, since the workers may reach the hub or have the
    model in their cache when the API cannot; a local folder that cannot be read is an error.
    """
    if not hub_model:
        key = config.model_dump_json(exclude={"seed", "device"})
        _validated_local(key, _config_stamp(config.model.id))
        return
    try:
        where = _hub_checks.submit(look_up_hub_model, config.model).result(timeout=HUB_CHECK_TIMEOUT_S)
    except PruningError:
        raise  # the hub says there is no such repository or revision: a 422 now, not a failed job later
    except Exception as exc:  # slow: the worker checks
        log.info("hub look at %s took too long at submission (%s); the worker checks it", config.model.id, exc)
        return
    if where in ("offline", "unreachable"):  # the workers may reach the hub, or have the model in their cache
        log.info("config of %s not reachable at submission (%s); the worker checks it", config.model.id, where)
        return
    try:
        hf_config = _hub_checks.submit(_hub_config, config.model).result(timeout=HUB_CHECK_TIMEOUT_S)
    except Exception as exc:  # slow, or the config unreadable: the worker, which may reach it, checks
        log.info("config of %s not reachable at submission (%s); the worker checks it", config.model.id, exc)
        return
    resolve_prune_plan(config, hf_config)


def _hub_config(ref: ModelRef) -> Any:
    """A hub model's config, read as the hub's only (:func:`jobs.model_ids.hub_config_folder`)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(hub_config_folder(ref.id, ref.revision))


def reject_nul(value: Any, path: str = "") -> None:
    """PostgreSQL text and JSONB cannot hold U+0000; refuse it by field instead of failing to store."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidSpec(f"{path or 'body'}: NUL characters are not allowed", field=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, path)
            reject_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            reject_nul(item, f"{path}.{i}" if path else str(i))


#: How long a submission waits for the callback host's DNS answer; after that the worker checks it.
CALLBACK_RESOLVE_TIMEOUT_S = 2.0
_callback_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="callback-dns")


def check_callback(url: str | None, settings: Settings) -> None:
    """No credentials, no loopback/private/link-local/... host (:mod:`jobs.callback_policy`), and a
    secret to sign with: without ``PPRUNING_CALLBACK_SECRET`` the service sends no callbacks at all
    (an unsigned one could be forged by anyone who knows the URL), so it refuses them here."""
    if url is None:
        return
    if not settings.callback_secret:
        raise InvalidSpec(
            "callback_url: callbacks are off on this service: they are always signed and it has no "
            "PPRUNING_CALLBACK_SECRET; follow the job with GET /jobs/{id} or its event stream instead",
            field="callback_url",
        )
    check = _callback_checks.submit(check_submitted, url, allow_private=settings.callback_allow_private)
    try:
        check.result(timeout=CALLBACK_RESOLVE_TIMEOUT_S)
    except CallbackRefused as exc:
        raise InvalidSpec(f"callback_url: {exc}", field="callback_url") from None
    except FuturesTimeout:
        log.info("callback host of %s did not resolve in time; the worker checks it before sending", url)


def check_tracking(tracking: TrackingOptions | None, settings: Settings) -> None:
    """A job that asks for MLflow tracking needs a service with a tracking server."""
    if tracking is not None and tracking.mlflow and not settings.mlflow_tracking_uri:
        raise InvalidSpec(
            "tracking.mlflow: this service has no MLflow tracking server (PPRUNING_MLFLOW_TRACKING_URI); "
            "leave tracking out or set it to false",
            field="tracking.mlflow",
        )


#: A spec that prunes: a prune's, or a pipeline's (whose pruning is checked the same way).
PruningSpec = TypeVar("PruningSpec", PruneJobSpec, PipelineJobSpec)


def check_prune_job(spec: PruningSpec, settings: Settings, session: Session, owner: str) -> PruningSpec:
    """A prune (or the pruning of a pipeline): model, task, teacher, exports, the target on the model's config."""
    model = check_model(spec.model, settings)
    task = check_task(spec.task, settings, labels=_reads_labels(spec.method, isinstance(spec, PipelineJobSpec)))
    spec = spec.model_copy(update={"model": model, "task": task, **_method_teacher(spec, settings, session, owner),
                                   **_method_policy(spec, settings, session, owner)})  # fmt: skip
    check_export(spec.export)
    check_prune(spec.prune_config(), hub_model=not is_local(model.id))
    return spec


def _reads_labels(method: str, finetunes: bool) -> bool:
    """Whether the job reads the task's labels: fine-tuning does, and a method declared to need them.

    An unknown method is the plan's to report (with its field); here it counts as reading labels.
    """
    from ppruning import UnknownMethodError, get_method

    if finetunes:
        return True
    try:
        return get_method(method).needs == "labels"
    except UnknownMethodError:
        return True


def check_pipeline_job(spec: PipelineJobSpec, settings: Settings, session: Session, owner: str) -> PipelineJobSpec:
    """A pipeline: its pruning as a prune's, and the fine-tuning's teacher."""
    spec = check_prune_job(spec, settings, session, owner)
    if spec.finetune.distill is not None:
        teacher = check_teacher(spec.finetune.distill, settings, session, owner, "finetune.distill", spec.model)
        spec = spec.model_copy(update={"finetune": spec.finetune.model_copy(update={"distill": teacher})})
    return spec


def check_sweep_job(spec: SweepJobSpec, settings: Settings, session: Session, owner: str) -> SweepJobSpec:
    """A sweep: model, task and teacher once, and each child's target on the model's config."""
    model = check_model(spec.model, settings)
    task = check_task(spec.task, settings, labels=_reads_labels(spec.method, spec.finetune is not None))
    spec = spec.model_copy(update={"model": model, "task": task, **_method_teacher(spec, settings, session, owner),
                                   **_method_policy(spec, settings, session, owner)})  # fmt: skip
    for i, child in enumerate(spec.child_models()):
        try:
            check_prune(child.prune_config(), hub_model=not is_local(model.id))
        except Exception as exc:  # the library names target.<kind>; here it is targets.<kind>.<i>
            if getattr(exc, "field", None) == f"target.{spec.targets.key}":
                exc.field = f"targets.{spec.targets.key}.{i}"  # type: ignore[attr-defined]
            raise
    return spec


def check_finetune_job(spec: FinetuneJobSpec, settings: Settings, session: Session, owner: str) -> FinetuneJobSpec:
    """A fine-tune: task, the model or the finished job it starts from, masks and teacher."""
    task = check_task(spec.task, settings)
    update: dict[str, Any] = {"task": task}
    if spec.model is not None:
        update["model"] = check_model(spec.model, settings)
    else:
        _check_source_job(spec, session, owner)
    if spec.masks is not None:
        update["masks"] = str(allowed_folder(spec.masks, settings, "masks"))
    if spec.distill is not None:
        student = update.get("model") or _job_model(spec.from_job, session, owner)
        named = spec.model is not None
        update["distill"] = check_teacher(spec.distill, settings, session, owner, "distill", student, named)
    return spec.model_copy(update=update)


def _method_teacher(
    spec: PruneJobSpec | PipelineJobSpec | SweepJobSpec, settings: Settings, session: Session, owner: str
) -> dict[str, Any]:
    """The pruning method's teacher, checked like any other model or source job; ``{"distill": ...}`` or nothing.

    A teacher under ``params.distill`` would reach the library unchecked (no allow-list, no
    ``from_job``), so a submission names it in ``distill`` only.
    """
    if spec.params.get("distill") is not None:
        raise InvalidSpec(
            "name the teacher in 'distill' (a model: hub id or allowed folder, or from_job: a finished fine-tune); "
            "the service checks it there and hands it to the method as params.distill",
            field="params.distill",
        )
    if spec.distill is None:
        return {}
    return {"distill": check_teacher(spec.distill, settings, session, owner, "distill", spec.model)}


def _method_policy(
    spec: PruneJobSpec | PipelineJobSpec | SweepJobSpec, settings: Settings, session: Session, owner: str
) -> dict[str, Any]:
    """The trained policy the method reuses, checked: ``{"policy": ...}`` with a path resolved, or nothing.

    A ``path`` is a file inside the allowed roots, as every other file input; a ``from_job``
    is a succeeded prune or pipeline job of the owner's that ran the same method (its
    ``policy.pt`` artifact is what the worker downloads).
    """
    if spec.policy is None:
        return {}
    if spec.policy.path is not None:
        resolved = allowed_path(spec.policy.path, settings, "policy.path", want_dir=False)
        return {"policy": spec.policy.model_copy(update={"path": str(resolved)})}
    source = _check_finished_job(spec.policy.from_job, ("prune", "pipeline"), session, owner, "policy.from_job")  # type: ignore[arg-type]
    if (source.spec or {}).get("method") != spec.method:
        raise InvalidSpec(
            f"job {spec.policy.from_job} ran method {(source.spec or {}).get('method')!r}, not {spec.method!r}: "
            "its policy is not one this method reads",
            field="policy.from_job",
        )
    return {}


def check_export(formats: list[str]) -> None:
    """Refuse exports this deployment cannot run.

    The API process stands in for the workers: both are built from the same extras (see
    docker/), so an export extra missing here is missing there, and the job would only fail.
    """
    missing = missing_export_modules() if formats else []
    if missing:
        raise InvalidSpec(
            f"export {formats} needs the export extra, not installed on this service ({', '.join(missing)} "
            f"missing): {EXPORT_INSTALL}",
            field="export",
        )


def _check_source_job(spec: FinetuneJobSpec, session: Session, owner: str) -> None:
    _check_finished_job(spec.from_job, ("prune", "pipeline"), session, owner, "from_job")  # type: ignore[arg-type]


def _check_finished_job(job_id: uuid.UUID, kinds: tuple[str, ...], session: Session, owner: str, field: str) -> Any:
    """``job_id`` is the owner's, of one of ``kinds``, and succeeded (its model can be downloaded); the job."""
    source = repository.get_job(session, job_id, owner)
    if source is None:
        raise InvalidSpec(f"job {job_id} not found", field=field)
    if source.kind not in kinds:
        raise InvalidSpec(f"job {job_id} is a {source.kind} job, not a {' or '.join(kinds)}", field=field)
    if source.state != JobState.SUCCEEDED.value:
        raise InvalidSpec(f"job {job_id} is {source.state}; it must have succeeded", field=field)
    return source


def check_teacher(
    teacher: TeacherSpec,
    settings: Settings,
    session: Session,
    owner: str,
    field: str,
    student: ModelRef | None = None,
    student_named: bool = True,
) -> TeacherSpec:
    """A teacher model inside the allow-list (or a hub id), or a finished fine-tune of the owner's;
    and, where ``student`` (the model the student starts from) is known, one that shares its
    tokenizer (:func:`check_same_tokenizer`). ``student_named``: the student is this spec's
    checked model, not one a past job started from."""
    if teacher.teacher is not None:
        checked = teacher.model_copy(update={"teacher": check_model(teacher.teacher, settings, f"{field}.teacher")})
        if student is not None:
            where = f"{field}.teacher"
            check_same_tokenizer(student, checked.teacher, where, settings, strict=student_named)  # type: ignore[arg-type]
        return checked
    _check_finished_job(teacher.from_job, ("finetune", "pipeline"), session, owner, f"{field}.from_job")  # type: ignore[arg-type]
    source = _job_model(teacher.from_job, session, owner)
    if student is not None and source is not None:
        check_same_tokenizer(student, source, f"{field}.from_job", settings, strict=False)
    return teacher


#: How many ``from_job`` links :func:`_job_model` follows back to a model id.
_JOB_MODEL_DEPTH = 4


def _job_model(job_id: uuid.UUID | None, session: Session, owner: str) -> ModelRef | None:
    """The model a job started from, following ``from_job`` back (a fine-tune of a prune); None when unknown.

    Pruning and fine-tuning keep the tokenizer, so this model's tokenizer is the job's model's.
    """
    for _ in range(_JOB_MODEL_DEPTH):
        job = repository.get_job(session, job_id, owner) if job_id is not None else None
        spec = job.spec if job is not None and isinstance(job.spec, dict) else {}
        model = spec.get("model")
        if isinstance(model, dict) and isinstance(model.get("id"), str):
            try:
                return ModelRef.model_validate(model)
            except ValueError:
                return None
        try:
            job_id = uuid.UUID(str(spec.get("from_job")))
        except ValueError:
            return None
    return None


def check_same_tokenizer(student: ModelRef, teacher: ModelRef, field: str, settings: Settings, *, strict: bool) -> None:
    """Refuse a teacher whose tokenizer is not the student's (the library's ``check_teacher_tokenizer``).

    ``strict`` (both named in this spec) and both local (folders already checked inside the
    allow-list): an unreadable tokenizer is an error too. A hub model's tokenizer files are
    fetched without its weights, at most ``HUB_CHECK_TIMEOUT_S``; one that cannot be had from
    here (offline, slow) is let through, as is a past job's folder that is gone or no longer
    allowed: the worker's ``load_teacher`` runs the same check before it reads the teacher's weights.
    """
    from ppruning import check_teacher_tokenizer

    def tokenizer_ref(ref: ModelRef, where: str) -> ModelRef:
        if is_local(ref.id):
            recheck_model_id(ref.id, where, settings=settings)
            return ref
        return ModelRef(id=str(hub_tokenizer_folder(ref.id, ref.revision)))

    def compare() -> None:
        check_teacher_tokenizer(tokenizer_ref(student, "model.id"), tokenizer_ref(teacher, field), field=field)

    if strict and is_local(student.id) and is_local(teacher.id):
        compare()
        return
    try:
        _hub_checks.submit(compare).result(timeout=HUB_CHECK_TIMEOUT_S)
    except InvalidConfigError:
        raise
    except Exception as exc:  # offline, unknown to the hub, slow, a past job's folder gone: the worker checks
        log.info(
            "tokenizers of %s and %s not compared here (%s); the worker compares them", student.id, teacher.id, exc
        )
