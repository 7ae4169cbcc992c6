"""Finding the jobs nobody works on, in the database; :mod:`worker.reaper` re-sends them.

Two cases end with a job nobody works on:

- ``running`` with a stale heartbeat: its worker died (SIGKILL, OOM killer, a lost
  machine). Redis would redeliver the unacknowledged message only after the visibility
  timeout (longer than the longest job), kombu's SQLAlchemy transport never does.
- ``queued`` untouched for ``queued_timeout_s`` and its message no longer in the broker's
  queue: the message never reached a worker (a Redis restart without persistence, a crash
  between commit and send). A job merely waiting in a long backlog still has its message
  there and is left alone: a duplicate would cost a worker a child restart for nothing.

Both are conditional UPDATEs through the state machine, so when several workers sweep at
once each job is found by one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from jobs.store import repository as repo
from jobs.store.models import Job, utcnow
from jobs.store.repository import transition_where
from jobs.store.states import JobState
from jobs.sweeps import not_waiting


@dataclass(frozen=True)
class Resend:
    job_id: uuid.UUID
    spec: dict[str, Any]
    reason: str


@dataclass
class SweepResult:
    resends: list[Resend] = field(default_factory=list)
    #: Jobs the sweep moved to a final state (a dead worker's job whose cancel was asked for).
    finished: list[uuid.UUID] = field(default_factory=list)


def _stale(stale_before: datetime):  # type: ignore[no-untyped-def]
    """Running without a recent heartbeat; a sweep parent waiting for its children has none and is not stale."""
    return and_(
        Job.state == JobState.RUNNING.value,
        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
        not_waiting(),
    )


def sweep(
    session: Session,
    *,
    heartbeat_timeout_s: float,
    queued_timeout_s: float,
    now: datetime | None = None,
    pending: Callable[[], Collection[uuid.UUID]] | None = None,
) -> SweepResult:
    """Find (and mark) the jobs to re-send; the caller commits, then sends.

    ``pending`` lists the job ids whose messages still wait in the broker; without it every
    job queued too long is taken for lost.
    """
    now = now or utcnow()
    stale_before = now - timedelta(seconds=heartbeat_timeout_s)
    out = SweepResult()
    # A dead worker's job whose cancel was asked for is simply cancelled.
    running = (JobState.RUNNING,)
    cancelled = session.execute(
        transition_where(
            running, JobState.CANCELLED, _stale(stale_before), Job.cancel_requested.is_(True),
            finished_at=now, updated_at=now, message="cancelled",
        ).returning(Job.id)  # fmt: skip
    ).all()
    out.finished += [r.id for r in cancelled]
    dead = session.execute(
        transition_where(
            running, JobState.QUEUED, _stale(stale_before), Job.cancel_requested.is_(False),
            heartbeat_at=None, updated_at=now, message="worker lost; re-queued",
        ).returning(Job.id, Job.spec)  # fmt: skip
    ).all()
    out.resends += [Resend(r.id, r.spec, "heartbeat stale: the worker died") for r in dead]
    waiting = session.execute(
        update(Job)
        .where(Job.state == JobState.QUEUED.value, Job.updated_at < now - timedelta(seconds=queued_timeout_s))
        .values(updated_at=now)  # restarts the clock either way: a backlog is looked at again later
        .returning(Job.id, Job.spec)
        .execution_options(synchronize_session=False)
    ).all()
    if waiting:
        still_there = set(pending()) if pending is not None else set()
        out.resends += [
            Resend(r.id, r.spec, "queued too long and its message is gone from the broker")
            for r in waiting
            if r.id not in still_there
        ]
    for job_id in out.finished:
        repo.add_event(session, job_id, "cancelled by the reaper: its worker died after the cancel request")
    for item in out.resends:
        repo.add_event(session, item.job_id, f"re-sent by the reaper ({item.reason})", level="warning")
    return out
