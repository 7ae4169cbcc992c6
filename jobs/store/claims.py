"""Claiming a job for one attempt, and fencing every later write to that attempt.

A message may arrive twice (redelivery after a crash, a reaper re-send, a Redis restore);
the database decides who runs. The claim is one conditional ``UPDATE ... RETURNING``:
PostgreSQL locks the row, re-checks the ``WHERE`` after any concurrent writer commits, and
at most one worker sees a row come back. A worker that sees none does nothing
(``celery.exceptions.Ignore``).

A job may be claimed when it is ``queued``, or ``running`` with a heartbeat older than the
timeout (its worker died). The second case is the composition of two legal transitions
of :mod:`jobs.store.states` (``running -> queued`` hands the dead attempt back, ``queued ->
running`` starts the new one) done in one statement, so no window exists where another
message could slip in between.

Every write after the claim carries ``attempts = <our attempt>`` in its ``WHERE``: a
worker that lost its lease (declared dead, yet alive) can no longer touch the row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from jobs.store.models import Job, utcnow
from jobs.store.owner_slots import claim_criterion
from jobs.store.repository import transition_where
from jobs.store.states import JobState
from jobs.sweeps import not_waiting

#: What a claim may find: a queued job, or a running one whose worker died.
_CLAIMABLE_STATES = (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class Claim:
    """The lease one worker holds on one job for one attempt."""

    job_id: uuid.UUID
    attempt: int
    kind: str
    spec: dict[str, Any]
    worker: str


#: Attempts a job gets; one whose worker died this often (OOM-killed, hard time limit) fails.
MAX_ATTEMPTS = 3


def _claimable(stale_before: datetime):  # type: ignore[no-untyped-def]
    """Queued, or running with a stale heartbeat; never a sweep parent waiting for its children."""
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before)
    return or_(Job.state == JobState.QUEUED.value, and_(Job.state == JobState.RUNNING.value, stale, not_waiting()))


def claim_job(
    session: Session,
    job_id: uuid.UUID,
    worker: str,
    heartbeat_timeout_s: float,
    now: datetime | None = None,
    *,
    max_running_per_owner: int = 0,
) -> Claim | None:
    """Take ``job_id`` for a new attempt, or return None when it is not ours to run (see :func:`claim_or_settle`)."""
    return claim_or_settle(
        session, job_id, worker, heartbeat_timeout_s, now, max_running_per_owner=max_running_per_owner
    )[0]


def claim_or_settle(
    session: Session,
    job_id: uuid.UUID,
    worker: str,
    heartbeat_timeout_s: float,
    now: datetime | None = None,
    *,
    max_running_per_owner: int = 0,
) -> tuple[Claim | None, bool]:
    """(the claim, or None when the job is not ours to run; whether this call ended the job).

    None means: it finished, it was cancelled, a live worker runs it, or (with
    ``max_running_per_owner``) its owner already has that many jobs running
    (:mod:`jobs.store.owner_slots`). A job whose
    cancel was requested while its worker died is moved to ``cancelled`` here instead,
    and one that already used ``MAX_ATTEMPTS`` attempts to ``failed`` (``WorkerLost``):
    a job that kills its worker every time must not circle forever; the second value says
    so, since the job's callback is then the caller's to send. The caller commits.
    """
    now = now or utcnow()
    stale_before = now - timedelta(seconds=heartbeat_timeout_s)
    capped = claim_criterion(session, job_id, max_running_per_owner)
    row = session.execute(
        transition_where(
            _CLAIMABLE_STATES,
            JobState.RUNNING,
            Job.id == job_id,
            _claimable(stale_before),
            Job.cancel_requested.is_(False),
            Job.attempts < MAX_ATTEMPTS,
            *([] if capped is None else [capped]),
            via=JobState.QUEUED,
            attempts=Job.attempts + 1,
            worker=worker,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
            stage=None,
            progress=0.0,
            message=f"claimed by {worker}",
            error_type=None,
            error_message=None,
            updated_at=now,
        ).returning(Job.id, Job.attempts, Job.kind, Job.spec)
    ).first()
    if row is not None:
        return Claim(job_id=row.id, attempt=row.attempts, kind=row.kind, spec=row.spec, worker=worker), False
    cancelled = session.execute(
        transition_where(
            _CLAIMABLE_STATES,
            JobState.CANCELLED,
            Job.id == job_id,
            _claimable(stale_before),
            Job.cancel_requested.is_(True),
            finished_at=now,
            updated_at=now,
            message="cancelled",
        )
    ).rowcount
    failed = session.execute(
        transition_where(
            _CLAIMABLE_STATES,
            JobState.FAILED,
            Job.id == job_id,
            _claimable(stale_before),
            Job.attempts >= MAX_ATTEMPTS,
            finished_at=now,
            updated_at=now,
            message="failed",
            error_type="WorkerLost",
            error_message=f"the worker running this job died {MAX_ATTEMPTS} times (killed for memory, or past the "
            "hard time limit): lower the job's size (max_instances, batch_size, max_length) or raise the limits",
        )
    ).rowcount
    return None, bool(cancelled or failed)


def lock_if_current(session: Session, claim: Claim) -> Job | None:
    """The job row locked for update, if this attempt still holds it (else None)."""
    job = session.execute(
        select(Job)
        .where(Job.id == claim.job_id, Job.attempts == claim.attempt, Job.state == JobState.RUNNING.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return job


def fenced_update(session: Session, claim: Claim, **values: Any) -> bool:
    """Update the row only while this attempt holds it; False when the lease is lost."""
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.attempts == claim.attempt, Job.state == JobState.RUNNING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def heartbeat(session: Session, claim: Claim, now: datetime | None = None) -> bool | None:
    """Refresh the heartbeat; returns the job's cancel flag, or None when the lease is lost."""
    now = now or utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.attempts == claim.attempt, Job.state == JobState.RUNNING.value)
        .values(heartbeat_at=now)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else bool(row.cancel_requested)
