"""Checks of a job spec that depend on this deployment, run at submission.

pydantic (:mod:`jobs.specs`) already checked types and ranges. Here: local paths are
inside ``settings.allowed_model_roots`` (no traversal, symlinks resolved), hub ids look
like hub ids, the task exists and has what it needs (the task registry), the model's
type is supported and the target feasible (the library's ``validate_prune_config``,
which reads only the model's config), and a fine-tune's ``from_job`` is a finished
prune of the same owner. Every failure is an error that names the field.

What comes back is the spec to store: local paths replaced by their resolved form, so
the worker reads exactly what was checked.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from jobs.errors import InvalidSpec
from jobs.settings import Settings
from jobs.specs import FinetuneJobSpec, PipelineJobSpec, PruneJobSpec, SweepJobSpec, TeacherSpec, parse_spec
from jobs.store import repository
from jobs.store.states import JobState
from ppruning import ModelLoadError, ModelRef, PruneConfig, TaskRef

log = logging.getLogger(__name__)

#: Hugging Face repo ids: ``name`` or ``org/name``, letters, digits, '-', '_', '.', no '..'.
_HUB_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_PATH_PREFIXES = ("/", "./", "../", "~", "file:", ".\\")

AnySpec = PruneJobSpec | FinetuneJobSpec | PipelineJobSpec | SweepJobSpec


def is_local_path(model_id: str) -> bool:
    return model_id.startswith(_PATH_PREFIXES) or "\\" in model_id or model_id in (".", "..")


def allowed_path(raw: str, settings: Settings, field: str, *, want_dir: bool) -> Path:
    """``raw`` resolved, if it is inside an allowed root and exists; else InvalidSpec naming ``field``."""
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
    roots = [Path(root).expanduser().resolve() for root in settings.allowed_model_roots]
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InvalidSpec(f"path is outside the allowed roots ({', '.join(map(str, roots))})", field=field)
    if want_dir and not resolved.is_dir():
        raise InvalidSpec("no such folder", field=field)
    if not want_dir and not resolved.is_file():
        raise InvalidSpec("no such file", field=field)
    return resolved


def check_model(ref: ModelRef, settings: Settings, field: str = "model") -> ModelRef:
    """A hub id as given, or a local folder resolved inside the allow-list."""
    if is_local_path(ref.id):
        resolved = allowed_path(ref.id, settings, f"{field}.id", want_dir=True)
        return ref.model_copy(update={"id": str(resolved)})
    if not _HUB_ID.match(ref.id):
        raise InvalidSpec("not a hub id ('org/name') nor an absolute local path", field=f"{field}.id")
    return ref


def check_task(ref: TaskRef, settings: Settings, field: str = "task") -> TaskRef:
    """Known task with the fields it needs (the task registry); data files inside the allow-list."""
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
    return ref


def _rebase(exc: Exception, prefix: str, field: str) -> None:
    """Library errors name ``task.x``; inside a pipeline or elsewhere the field may differ."""
    current = getattr(exc, "field", None)
    if isinstance(current, str) and prefix != field and current.startswith(prefix):
        exc.field = field + current[len(prefix) :]  # type: ignore[attr-defined]


def _library_validator() -> Callable[[PruneConfig], None] | None:
    """``ppruning.pipeline.validate_prune_config`` once the library has it; None before."""
    try:
        from ppruning import validate_prune_config
    except ModuleNotFoundError as exc:
        if exc.name == "ppruning.pipeline":
            return None
        raise
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
    validate = _library_validator()
    if validate is not None:
        validate(PruneConfig.model_validate_json(key))


#: How long a submission waits for a hub model's config; after that the worker checks it.
HUB_CHECK_TIMEOUT_S = 5.0
_hub_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hub-config")


def check_prune(config: PruneConfig, hub_model: bool) -> None:
    """Model type supported and target feasible, from the model's config only.

    A hub model whose config cannot be fetched from here (no network, a slow hub: more
    than ``HUB_CHECK_TIMEOUT_S``) is let through, since the workers may reach the hub when
    the API cannot; a local folder that cannot be read is an error.
    """
    validate = _library_validator()
    if validate is None:
        log.warning("ppruning.pipeline.validate_prune_config is missing; model type and target not checked")
        return
    if not hub_model:
        key = config.model_dump_json(exclude={"seed", "device"})
        _validated_local(key, _config_stamp(config.model.id))
        return
    try:
        _hub_checks.submit(validate, config).result(timeout=HUB_CHECK_TIMEOUT_S)
    except (ModelLoadError, FuturesTimeout):
        log.info("config of %s not reachable at submission; the worker checks it", config.model.id)


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


def checked_spec(spec: AnySpec, settings: Settings, session: Session, owner: str) -> dict[str, Any]:
    """Run every deployment check on ``spec``; the spec to store, as JSON."""
    reject_nul(spec.model_dump(mode="json"))
    if isinstance(spec, PruneJobSpec | PipelineJobSpec):
        model = check_model(spec.model, settings)
        task = check_task(spec.task, settings)
        spec = spec.model_copy(update={"model": model, "task": task})
        check_prune(spec.prune_config(), hub_model=not is_local_path(model.id))
        if isinstance(spec, PipelineJobSpec) and spec.finetune.distill is not None:
            teacher = check_teacher(spec.finetune.distill, settings, session, owner, "finetune.distill")
            spec = spec.model_copy(update={"finetune": spec.finetune.model_copy(update={"distill": teacher})})
    elif isinstance(spec, SweepJobSpec):
        model = check_model(spec.model, settings)
        task = check_task(spec.task, settings)
        spec = spec.model_copy(update={"model": model, "task": task})
        for i, child in enumerate(spec.child_specs()):
            try:
                check_prune(parse_spec(child).prune_config(), hub_model=not is_local_path(model.id))  # type: ignore[union-attr]
            except Exception as exc:  # the library names target.<kind>; here it is targets.<kind>.<i>
                if getattr(exc, "field", None) == f"target.{spec.targets.key}":
                    exc.field = f"targets.{spec.targets.key}.{i}"  # type: ignore[attr-defined]
                raise
    else:
        task = check_task(spec.task, settings)
        update: dict[str, Any] = {"task": task}
        if spec.model is not None:
            update["model"] = check_model(spec.model, settings)
        else:
            _check_source_job(spec, session, owner)
        if spec.masks is not None:
            update["masks"] = str(allowed_path(spec.masks, settings, "masks", want_dir=True))
        if spec.distill is not None:
            update["distill"] = check_teacher(spec.distill, settings, session, owner, "distill")
        spec = spec.model_copy(update=update)
    return spec.model_dump(mode="json")


def _check_source_job(spec: FinetuneJobSpec, session: Session, owner: str) -> None:
    _check_finished_job(spec.from_job, ("prune", "pipeline"), session, owner, "from_job")  # type: ignore[arg-type]


def _check_finished_job(
    job_id: uuid.UUID, kinds: tuple[str, ...], session: Session, owner: str, field: str
) -> None:
    """``job_id`` is the owner's, of one of ``kinds``, and succeeded (its model can be downloaded)."""
    source = repository.get_job(session, job_id, owner)
    if source is None:
        raise InvalidSpec(f"job {job_id} not found", field=field)
    if source.kind not in kinds:
        raise InvalidSpec(f"job {job_id} is a {source.kind} job, not a {' or '.join(kinds)}", field=field)
    if source.state != JobState.SUCCEEDED.value:
        raise InvalidSpec(f"job {job_id} is {source.state}; it must have succeeded", field=field)


def check_teacher(teacher: TeacherSpec, settings: Settings, session: Session, owner: str, field: str) -> TeacherSpec:
    """A teacher model inside the allow-list (or a hub id), or a finished fine-tune of the owner's."""
    if teacher.teacher is not None:
        return teacher.model_copy(update={"teacher": check_model(teacher.teacher, settings, f"{field}.teacher")})
    _check_finished_job(teacher.from_job, ("finetune", "pipeline"), session, owner, f"{field}.from_job")  # type: ignore[arg-type]
    return teacher
