"""Sweep jobs in the database: their children, the "waiting" mark, cancelling them together.

A sweep never holds a worker slot while its children run. Its one attempt creates the
children (ordinary jobs with ``parent_id``), sends them, and leaves the parent
``running`` at stage ``waiting`` with no heartbeat; whichever worker finishes the last
child finalises the parent under a row lock (:mod:`worker.sweep_runs`). A waiting parent is
therefore neither stale to the reaper nor claimable by a duplicate message:
:func:`not_waiting` is part of both queries.

The job layer's cancel and delete (:mod:`jobs.lifecycle`) and the worker import this module.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jobs.store import repository as repo
from jobs.store.models import Job
from jobs.store.states import TERMINAL, JobState

SWEEP = "sweep"
#: ``jobs.stage`` of a sweep parent whose children are running.
WAITING = "waiting"


def not_waiting() -> Any:
    """SQL: the row is not a sweep parent waiting for its children (NULL-safe)."""
    return or_(Job.kind != SWEEP, Job.stage.is_(None), Job.stage != WAITING)


def is_waiting(job: Job) -> bool:
    return job.kind == SWEEP and job.state == JobState.RUNNING.value and job.stage == WAITING


def children(session: Session, parent_id: uuid.UUID) -> list[Job]:
    """The sweep's children in creation order (which is target order)."""
    query = select(Job).where(Job.parent_id == parent_id).order_by(Job.created_at, Job.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def unfinished(jobs: list[Job]) -> list[Job]:
    return [job for job in jobs if JobState(job.state) not in TERMINAL]


def cancel_children(session: Session, parent: Job) -> int:
    """Cancel every unfinished child (queued: at once, running: the flag); the parent too once none is left.

    The caller has already flagged (or cancelled) the parent itself, which locks its row
    first, so a sweep attempt that is creating children either sees the flag or has
    committed them before this reads them. Returns how many children were cancelled.
    """
    count = 0
    for child in unfinished(children(session, parent.id)):
        repo.cancel_job(session, child)
        count += 1
    if is_waiting(parent) and not unfinished(children(session, parent.id)):
        repo.transition(session, parent, JobState.CANCELLED, message="cancelled with its children", stage=WAITING)
        repo.add_event(session, parent.id, "cancelled; every child job was cancelled before it started")
    return count
