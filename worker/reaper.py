"""Re-send jobs whose message was lost, and retry the store removals that failed; PostgreSQL, not the
broker, is the source of truth.

:func:`jobs.store.reaping.sweep` finds (and marks) the jobs nobody works on: running with a
stale heartbeat (the worker died), or queued too long (the message was lost).

Why a thread in every worker rather than Celery beat: beat is one more process that must
run exactly once per deployment, and the embedded mode would need it too. The sweep is
made of conditional UPDATEs, so when several workers sweep at once each job is re-sent by
one of them, and a duplicate message would be dropped by the claim anyway.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs.artifacts import ArtifactStore
from jobs.store.reaping import SweepResult, sweep
from jobs.store.removals import RemovalPass, retry_due

log = logging.getLogger(__name__)


def reap_once(
    sessions: sessionmaker[Session],
    send: Callable[[uuid.UUID, dict[str, Any]], None],
    *,
    pending: Callable[[], Collection[uuid.UUID]] | None = None,
    finished: Callable[[uuid.UUID], None] | None = None,
    **timeouts: float,
) -> SweepResult:
    """One sweep, committed, then one message per job found and ``finished`` for each job it ended.

    ``pending`` (the ids whose messages still wait in the broker) keeps a job that is only
    waiting in a backlog from being sent twice; ``finished`` follows up the jobs the sweep
    cancelled (callback, resume state: :mod:`worker.ended`), as a worker does for the jobs it ends.
    """
    with sessions.begin() as session:
        result = sweep(session, pending=pending, **timeouts)
    for item in result.resends:
        log.warning("re-sending job %s: %s", item.job_id, item.reason)
        send(item.job_id, item.spec)
    for job_id in result.finished:
        log.info("job %s cancelled by the reaper", job_id)
        if finished is not None:
            try:
                finished(job_id)
            except Exception:  # one broken callback must not stop the sweep
                log.warning("after-finish step of job %s failed", job_id, exc_info=True)
    return result


def retry_store_removals(sessions: sessionmaker[Session], store: ArtifactStore, retry_s: float) -> RemovalPass:
    """The store's outbox (:mod:`jobs.store.removals`): files of deleted or cancelled jobs that the store
    refused to remove before, tried again once their backoff has passed, until they are gone."""
    result = retry_due(sessions, store, retry_s)
    if result.removed or result.failed:
        log.info("store removals: %d done, %d failed again", result.removed, result.failed)
    return result


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
