"""Deleting the artifacts of jobs finished longer ago than the retention period.

LLM checkpoints and exports are large; ``PPRUNING_ARTIFACT_RETENTION_DAYS`` bounds how long
they are kept. The job row, its metrics, events and result stay, with
``artifacts_expired_at`` set, so a client sees what the job did and that its files are gone.
The reaper of every worker runs it; the marking is a conditional UPDATE, so each job's
files are deleted by one of them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs.artifacts import ArtifactStore, job_prefix
from jobs.store import removals
from jobs.store import repository as repo
from jobs.store.models import utcnow

log = logging.getLogger(__name__)


def expire_old_artifacts(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    retention_days: float,
    now: datetime | None = None,
    *,
    retry_s: float,
) -> list[uuid.UUID]:
    """One pass (at most 100 jobs); 0 days keeps everything. The files go through the store's outbox
    (:mod:`jobs.store.removals`), written with the expiry mark: a store that fails is retried later."""
    if retention_days <= 0:
        return []
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    with sessions() as session:
        expired = repo.expire_artifacts(session, cutoff)
        scheduled = []
        for job_id in expired:
            scheduled += removals.schedule(session, job_id, [job_prefix(job_id)], reason="expired")
        session.commit()
        removals.remove_now(session, store, scheduled, retry_s)
    if expired:
        log.info("deleted the artifacts of %d jobs past the retention period", len(expired))
    return expired
