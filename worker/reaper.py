"""Re-send jobs whose message was lost; PostgreSQL, not the broker, is the source of truth.

Two cases end with a job nobody works on:

- ``running`` with a stale heartbeat: its worker died (SIGKILL, OOM killer, a lost
  machine). Redis would redeliver the unacknowledged message only after the visibility
  timeout (longer than the longest job), kombu's SQLAlchemy transport never does.
- ``queued`` untouched for ``queued_timeout_s``: the message never reached a worker (a
  Redis restart without persistence, a crash between commit and send).

Why a thread in every worker rather than Celery beat: beat is one more process that must
run exactly once per deployment, and the embedded mode would need it too. The sweep is
made of conditional UPDATEs, so when several workers sweep at once each job is re-sent by
one of them, and a duplicate message would be dropped by the claim anyway.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session, sessionmaker

from api.db import repository as repo
from api.db.models import Job, utcnow
from api.db.states import JobState, can_transition
from api.sweeps import not_waiting

log = logging.getLogger(__name__)

assert can_transition(JobState.RUNNING, JobState.QUEUED) and can_transition(JobState.RUNNING, JobState.CANCELLED)


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
    session.execute(
        update(Job)
        .where(_stale(stale_before), Job.cancel_requested.is_(True))
        .values(state=JobState.CANCELLED.value, finished_at=now, updated_at=now, message="cancelled")
        .execution_options(synchronize_session=False)
    )
    resends: list[Resend] = []
    dead = session.execute(
        update(Job)
        .where(_stale(stale_before), Job.cancel_requested.is_(False))
        .values(state=JobState.QUEUED.value, heartbeat_at=None, updated_at=now, message="worker lost; re-queued")
        .returning(Job.id, Job.spec)
        .execution_options(synchronize_session=False)
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


def reap_once(
    sessions: sessionmaker[Session], send: Callable[[uuid.UUID, dict[str, Any]], None], **timeouts: float
) -> list[Resend]:
    """One sweep, committed, then one message per job found."""
    with sessions.begin() as session:
        resends = sweep(session, **timeouts)
    for item in resends:
        log.warning("re-sending job %s: %s", item.job_id, item.reason)
        send(item.job_id, item.spec)
    return resends


class Reaper(threading.Thread):
    """Runs :func:`reap_once` every ``interval_s`` until stopped; errors are logged, not fatal."""

    def __init__(self, interval_s: float, run: Callable[[], object]) -> None:
        super().__init__(name="ppruning-reaper", daemon=True)
        self.interval_s = interval_s
        self._run = run
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self._run()
            except Exception:
                log.warning("reaper sweep failed; next one in %.0fs", self.interval_s, exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
