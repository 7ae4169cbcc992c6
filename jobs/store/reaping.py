"""Finding the jobs nobody works on, in the database; :mod:`worker.reaper` re-sends them.

Two cases end with a job nobody works on:

- ``running`` with a stale heartbeat: its worker died (SIGKILL, OOM killer, a lost
  machine). Redis would redeliver the unacknowledged message only after the visibility
  timeout (longer than the longest job), kombu's SQLAlchemy transport never does.
- ``queued`` untouched for ``queued_timeout_s``: the message never reached a worker (a
  Redis restart without persistence, a crash between commit and send).

Both are conditional UPDATEs through the state machine, so when several workers sweep at
once each job is found by one of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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


def _stale(stale_before: datetime):  # type: ignore[no-untyped-def]
    """Running without a recent heartbeat; a sweep parent waiting for its children has none and is not stale."""
    return and_(
        Job.state == JobState.RUNNING.value,
        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
        not_waiting(),
    )


def sweep(
    session: Session, *, heartbeat_timeout_s: float, queued_timeout_s: float, now: datetime | None = None
) -> list[Resend]:
    """Find (and mark) the jobs to re-send; the caller commits, then sends."""
    now = now or utcnow()
    stale_before = now - timedelta(seconds=heartbeat_timeout_s)
    # A dead worker's job whose cancel was asked for is simply cancelled.
    running = (JobState.RUNNING,)
    session.execute(
        transition_where(
            running, JobState.CANCELLED, _stale(stale_before), Job.cancel_requested.is_(True),
            finished_at=now, updated_at=now, message="cancelled",
        )  # fmt: skip
    )
    resends: list[Resend] = []
    dead = session.execute(
        transition_where(
            running, JobState.QUEUED, _stale(stale_before), Job.cancel_requested.is_(False),
            heartbeat_at=None, updated_at=now, message="worker lost; re-queued",
        ).returning(Job.id, Job.spec)  # fmt: skip
    ).all()
    resends += [Resend(r.id, r.spec, "heartbeat stale: the worker died") for r in dead]
    waiting = session.execute(
        update(Job)
        .where(Job.state == JobState.QUEUED.value, Job.updated_at < now - timedelta(seconds=queued_timeout_s))
        .values(updated_at=now)
        .returning(Job.id, Job.spec)
        .execution_options(synchronize_session=False)
    ).all()
    resends += [Resend(r.id, r.spec, "queued too long: the message was lost") for r in waiting]
    for item in resends:
        repo.add_event(session, item.job_id, f"re-sent by the reaper ({item.reason})", level="warning")
    return resends
