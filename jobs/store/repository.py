"""Data access for jobs, their events, artifacts and metrics (API keys: :mod:`jobs.store.keys`).

Every function takes a ``Session`` and never commits: the route (or the worker step)
that owns the unit of work commits once. :func:`transition` is the one way a job's
state changes outside the worker's claim; it enforces :mod:`jobs.store.states`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Update, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import ClauseElement

from jobs.store.models import Artifact, DeletedIdempotencyKey, Job, JobEvent, Metric, utcnow
from jobs.store.states import TERMINAL, IllegalTransition, JobState, check_transition


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""

    type = "idempotency_conflict"

    def __init__(self, key: str, job_id: uuid.UUID) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used for job {job_id} with a different body")
        self.key = key
        self.job_id = job_id


class IdempotencyKeyDeleted(IdempotencyConflict):
    """The idempotency key created a job that was deleted since: running it again would surprise."""

    type = "idempotency_key_deleted"

    def __init__(self, key: str, job_id: uuid.UUID) -> None:
        Exception.__init__(
            self,
            f"Idempotency-Key {key!r} created job {job_id}, which was deleted; "
            "send the request with a new key to run it again",
        )
        self.key = key
        self.job_id = job_id


class InvalidCursor(ValueError):
    pass


def request_hash(body: Any) -> str:
    """sha256 of the canonical JSON of a request body (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- jobs


def find_by_idempotency_key(session: Session, owner: str, key: str) -> Job | None:
    """The job this owner created with ``key``; :class:`IdempotencyKeyDeleted` when it was deleted."""
    job = session.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == key))
    if job is None:
        gone = session.get(DeletedIdempotencyKey, (owner, key))
        if gone is not None:
            raise IdempotencyKeyDeleted(key, gone.job_id)
    return job


def create_job(
    session: Session,
    *,
    owner: str,
    kind: str,
    spec: dict[str, Any],
    idempotency_key: str | None = None,
    body_hash: str | None = None,
    parent_id: uuid.UUID | None = None,
) -> tuple[Job, bool]:
    """Insert a queued job; returns ``(job, created)``.

    With an idempotency key already used by this owner, the earlier job comes back
    (``created=False``) when the body hash matches, else :class:`IdempotencyConflict`.
    A concurrent insert with the same key is caught by the unique constraint inside a
    savepoint, so the caller's transaction survives the race.
    """
    body_hash = body_hash or request_hash(spec)
    if idempotency_key is not None:
        existing = find_by_idempotency_key(session, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, idempotency_key, body_hash), False
    job = Job(
        owner=owner,
        kind=kind,
        spec=spec,
        state=JobState.QUEUED.value,
        idempotency_key=idempotency_key,
        request_hash=body_hash,
        parent_id=parent_id,
        progress=0.0,
        attempts=0,
        cancel_requested=False,
    )
    if idempotency_key is None:  # nothing can collide: no savepoint round trips
        session.add(job)
        session.flush()
        return job, True
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = find_by_idempotency_key(session, owner, idempotency_key)
        if existing is None:
            raise
        return _replay(existing, idempotency_key, body_hash), False
    return job, True


def _replay(existing: Job, key: str, body_hash: str) -> Job:
    if existing.request_hash != body_hash:
        raise IdempotencyConflict(key, existing.id)
    return existing


def get_job(session: Session, job_id: uuid.UUID, owner: str | None = None, *, details: bool = False) -> Job | None:
    """The job, or None when it does not exist or belongs to another owner."""
    query = select(Job).where(Job.id == job_id)
    if owner is not None:
        query = query.where(Job.owner == owner)
    if details:
        # Two more small queries, not one joined one: a join repeats the job row per (artifact, metric)
        # pair, and the driver decodes its JSON columns (the spec, the result with its report) every
        # time: for a finished prune job that was most of a GET's CPU (bench/soak.py).
        query = query.options(selectinload(Job.artifacts), selectinload(Job.metrics))
    return session.scalar(query)


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next_cursor: str | None


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, UnicodeError) as exc:
        raise InvalidCursor("cursor is not one this service returned; start again without it") from exc


def list_jobs(
    session: Session,
    owner: str,
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    parent_id: uuid.UUID | None = None,
    models: Sequence[str] = (),
    methods: Sequence[str] = (),
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """Newest first, keyset-paginated on ``(created_at, id)`` so pages never skip or repeat.

    ``models`` and ``methods`` match the spec's ``model.id`` and ``method`` exactly (JSON
    fields: ``->>`` on PostgreSQL, ``json_extract`` on SQLite)."""
    query = select(Job).where(Job.owner == owner)
    if models:
        query = query.where(Job.spec["model"]["id"].as_string().in_(list(models)))
    if methods:
        query = query.where(Job.spec["method"].as_string().in_(list(methods)))
    if states:
        query = query.where(Job.state.in_(list(states)))
    if kinds:
        query = query.where(Job.kind.in_(list(kinds)))
    if parent_id is not None:
        query = query.where(Job.parent_id == parent_id)
    if cursor:
        created, job_id = decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created, job_id))
    rows = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items=items, next_cursor=encode_cursor(items[-1]) if more and items else None)


def transition(session: Session, job: Job, target: JobState | str, **fields: Any) -> Job:
    """Move ``job`` to ``target`` if the state machine allows it, with ``fields`` set.

    The UPDATE is conditional on the state read earlier: if another process moved the
    job meanwhile, :class:`IllegalTransition` names the state it really is in. Entering
    ``running`` stamps ``started_at``; entering a terminal state stamps ``finished_at``.
    """
    target = JobState(target)
    current = JobState(job.state)
    check_transition(current, target)
    now = utcnow()
    values: dict[str, Any] = {"state": target.value, "updated_at": now, **fields}
    if target is JobState.RUNNING:
        values.setdefault("started_at", job.started_at or now)
    if target in TERMINAL:
        values.setdefault("finished_at", now)
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(job)
        raise IllegalTransition(JobState(job.state), target)
    if any(isinstance(v, ClauseElement) for v in values.values()):
        session.refresh(job)  # a SQL expression (attempts + 1): read back what the database computed
    else:
        for name, value in values.items():
            set_committed_value(job, name, value)
    return job


def transition_where(
    sources: Iterable[JobState], target: JobState, *criteria: Any, via: JobState | None = None, **values: Any
) -> Update:
    """``UPDATE jobs SET state = target, values... WHERE state IN sources AND criteria``.

    Each source must reach ``target`` by a legal edge, or by two through ``via`` (a stale
    ``running`` job re-claimed is ``running -> queued -> running`` in one statement, so no
    window exists in which another message could take it). The state filter is part of
    the statement, so a row that moved meanwhile is left alone; the caller executes it.
    """
    sources = tuple(JobState(s) for s in sources)
    for source in sources:
        if via is not None and source is not via:
            check_transition(source, via)
            check_transition(via, target)
        else:
            check_transition(source, target)
    return (
        update(Job)
        .where(Job.state.in_([s.value for s in sources]), *criteria)
        .values(state=target.value, **values)
        .execution_options(synchronize_session=False)
    )


class NotCancellable(Exception):
    def __init__(self, state: str) -> None:
        super().__init__(f"the job is already {state}; only queued or running jobs can be cancelled")
        self.state = state


def cancel_job(session: Session, job: Job) -> Job:
    """Queued: cancelled at once. Running: flag the worker reads between batches. Finished: refused.

    A worker may claim the job between our read and our write (``queued -> running``): the
    transition then fails naming ``running``, and the job is flagged instead of the request
    being refused, so a cancel that races the claim is never lost.
    """
    if JobState(job.state) is JobState.QUEUED:
        try:
            transition(session, job, JobState.CANCELLED, cancel_requested=True, message="cancelled before it started")
        except IllegalTransition:  # claimed (or finished) meanwhile; transition() re-read the row
            pass
        else:
            add_event(session, job.id, "cancelled before it started")
            return job
    state = JobState(job.state)
    if state is JobState.RUNNING:
        _flag_cancel(session, job)
    elif state is not JobState.QUEUED:
        raise NotCancellable(state.value)
    return job


def _flag_cancel(session: Session, job: Job) -> None:
    """Set the cancel flag of a running job (idempotent; the state is left to the worker)."""
    if job.cancel_requested:
        return
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == JobState.RUNNING.value)
        .values(cancel_requested=True, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # it finished meanwhile
        session.refresh(job)
        raise NotCancellable(job.state)
    set_committed_value(job, "cancel_requested", True)
    set_committed_value(job, "updated_at", now)
    add_event(session, job.id, "cancel requested; the worker stops at its next checkpoint")
    session.flush()


def delete_job(session: Session, job: Job) -> None:
    """Delete the row; events, artifacts and metrics rows go with it (ON DELETE CASCADE).

    Its idempotency key is kept as a tombstone, so a client retrying the original request
    learns the job was deleted instead of silently running it again.
    """
    if job.idempotency_key is not None:
        tombstone = DeletedIdempotencyKey(
            owner=job.owner, idempotency_key=job.idempotency_key, job_id=job.id, deleted_at=utcnow()
        )
        session.merge(tombstone)
    session.execute(delete(Job).where(Job.id == job.id))
    session.expunge(job)


def expire_artifacts(session: Session, finished_before: datetime, *, limit: int = 100) -> list[uuid.UUID]:
    """Mark up to ``limit`` jobs finished before ``finished_before`` as expired and drop their artifact rows.

    Returns their ids; the caller commits, then deletes their stored files (``jobs/<id>/``).
    The job rows, their metrics and events stay: only the large files go.
    """
    ids = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.state.in_([s.value for s in TERMINAL]),
                Job.finished_at < finished_before,
                Job.artifacts_expired_at.is_(None),
            )
            .order_by(Job.finished_at)
            .limit(limit)
        )
    )
    if not ids:
        return []
    now = utcnow()
    expired = list(
        session.scalars(
            update(Job)
            .where(Job.id.in_(ids), Job.artifacts_expired_at.is_(None))
            .values(artifacts_expired_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
    )
    if expired:
        session.execute(delete(Artifact).where(Artifact.job_id.in_(expired)))
        for job_id in expired:
            add_event(session, job_id, "artifacts deleted: the retention period has passed")
    return expired


def count_owner_jobs(session: Session, owner: str) -> dict[str, int]:
    """The owner's queued and running jobs, by state (what the per-owner limits count)."""
    active = [JobState.QUEUED.value, JobState.RUNNING.value]
    rows = session.execute(
        select(Job.state, func.count()).where(Job.owner == owner, Job.state.in_(active)).group_by(Job.state)
    )
    counts = dict.fromkeys(active, 0)
    counts.update({state: int(n) for state, n in rows})
    return counts


def count_jobs_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
    counts = {state.value: 0 for state in JobState}
    counts.update({state: int(n) for state, n in rows})
    return counts


# --------------------------------------------------------------------------- events


def add_event(
    session: Session,
    job_id: uuid.UUID,
    message: str,
    *,
    level: str = "info",
    stage: str | None = None,
    data: dict[str, Any] | None = None,
) -> JobEvent:
    event = JobEvent(job_id=job_id, message=message, level=level, stage=stage, data=data, created_at=utcnow())
    session.add(event)
    return event


def watch_jobs(session: Session, job_ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
    """What a live stream needs of each job, in one statement: id, owner, state, progress, message,
    error, and ``last_event`` (the id of its newest event, 0 when none; read with the state, so
    a final state comes with the events committed with it). Jobs that are gone are missing."""
    if not job_ids:
        return []
    newest = select(func.coalesce(func.max(JobEvent.id), 0)).where(JobEvent.job_id == Job.id).scalar_subquery()
    query = select(
        Job.id, Job.owner, Job.state, Job.progress, Job.message, Job.error_type, Job.error_message,
        newest.label("last_event"),
    ).where(Job.id.in_(list(job_ids)))  # fmt: skip
    return list(session.execute(query))


def list_events(session: Session, job_id: uuid.UUID, *, after: int = 0, limit: int = 100) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


# --------------------------------------------------------------------------- artifacts and metrics


def add_artifact(
    session: Session,
    job_id: uuid.UUID,
    name: str,
    kind: str,
    *,
    uri: str,
    size: int,
    sha256: str,
    meta: dict[str, Any] | None = None,
) -> Artifact:
    """Record a stored object; an artifact of the same name is replaced (a re-run attempt)."""
    session.execute(delete(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    artifact = Artifact(
        job_id=job_id, name=name, kind=kind, uri=uri, size=size, sha256=sha256, meta=meta, created_at=utcnow()
    )
    session.add(artifact)
    session.flush()
    return artifact


def get_artifact(session: Session, job_id: uuid.UUID, name: str) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))


def list_artifacts(session: Session, job_id: uuid.UUID) -> list[Artifact]:
    return list(session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)))


def record_metrics(session: Session, job_id: uuid.UUID, metrics: dict[str, dict[str, float]]) -> None:
    """Store ``{split: {name: value}}``, replacing values already recorded for the same name and split."""
    for split, values in metrics.items():
        for name, value in values.items():
            session.execute(delete(Metric).where(Metric.job_id == job_id, Metric.name == name, Metric.split == split))
            session.add(Metric(job_id=job_id, name=name, split=split, value=float(value)))
    session.flush()


def metrics_by_split(metrics: Sequence[Metric]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        out.setdefault(metric.split, {})[metric.name] = metric.value
    return out
