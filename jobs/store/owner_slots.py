"""The per-owner running cap: at most ``max_running_jobs_per_owner`` of an owner's jobs run at once.

It is a real cap, enforced where jobs start, not at submission: a claim (:mod:`jobs.store.claims`)
takes a queued job only while its owner has fewer running jobs than the cap; the others stay
``queued``. A sweep's children count like any job; a sweep parent waiting for its children
holds no worker and does not count.

A message whose claim the cap refused is dropped, and its job is **parked**: its ``message``
says it waits for a running slot (what ``GET /jobs/{id}`` shows). When one of the owner's jobs
ends, the worker that ended it sends the messages of the owner's oldest parked jobs, one per
free slot (:func:`unpark`). Should that message be lost, the reaper re-sends a queued job
whose message is gone after ``queued_timeout_s``, as for any lost message.

On PostgreSQL two workers claiming two jobs of one owner at once would both count the same
running jobs; a transaction-scoped advisory lock on the owner makes their claims take turns.
SQLite runs one writer at a time anyway.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from jobs.store.models import Job, utcnow
from jobs.store.states import JobState
from jobs.sweeps import SWEEP, WAITING

#: How a parked job's ``message`` starts (the marker :func:`unpark` looks for).
PARKED = "waiting for a free running slot of its owner"


def parked_message(cap: int) -> str:
    return f"{PARKED}: {cap} of its owner's jobs are running (PPRUNING_MAX_RUNNING_JOBS_PER_OWNER={cap})"


def _lock_owner(session: Session, owner: str) -> None:
    """Claims of one owner's jobs take turns on PostgreSQL (released at commit)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"ppruning-owner:{owner}"))))


def running_count(owner: str, besides: uuid.UUID | None = None) -> Any:
    """SQL: how many of ``owner``'s jobs run (a waiting sweep parent excluded), ``besides`` not counted."""
    other = aliased(Job)
    query = select(func.count()).select_from(other).where(
        other.owner == owner,
        other.state == JobState.RUNNING.value,
        or_(other.kind != SWEEP, other.stage.is_(None), other.stage != WAITING),
    )
    if besides is not None:
        query = query.where(other.id != besides)
    return query.scalar_subquery()


def claim_criterion(session: Session, job_id: uuid.UUID, cap: int) -> ColumnElement[bool] | None:
    """The claim's extra condition under a cap (the owner locked first); None without a cap."""
    if cap <= 0:
        return None
    owner = session.scalar(select(Job.owner).where(Job.id == job_id))
    if owner is None:
        return None
    _lock_owner(session, owner)
    return running_count(owner, besides=job_id) < cap


def park_if_capped(session: Session, job_id: uuid.UUID, cap: int) -> bool:
    """Mark a queued job whose owner is at the cap as parked; True when it is (the caller drops its message)."""
    if cap <= 0:
        return False
    owner = session.scalar(select(Job.owner).where(Job.id == job_id, Job.state == JobState.QUEUED.value))
    if owner is None:
        return False
    _lock_owner(session, owner)  # in turn with unpark(): a slot freed meanwhile is either seen here or there
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED.value, running_count(owner, besides=job_id) >= cap)
        .values(message=parked_message(cap), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def unpark(session: Session, job_id: uuid.UUID, cap: int) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """After ``job_id`` ended: its owner's oldest parked jobs, one per free slot, unmarked; the caller sends them."""
    if cap <= 0:
        return []
    owner = session.scalar(select(Job.owner).where(Job.id == job_id))
    if owner is None:
        return []
    _lock_owner(session, owner)
    free = cap - int(session.scalar(select(running_count(owner))) or 0)
    if free <= 0:
        return []
    rows = session.execute(
        select(Job.id, Job.spec)
        .where(Job.owner == owner, Job.state == JobState.QUEUED.value, Job.message.like(f"{PARKED}%"))
        .order_by(Job.created_at, Job.id)
        .limit(free)
    ).all()
    if rows:
        session.execute(
            update(Job)
            .where(Job.id.in_([r.id for r in rows]), Job.state == JobState.QUEUED.value)
            .values(message="queued; a running slot of its owner is free", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return [(r.id, r.spec) for r in rows]
