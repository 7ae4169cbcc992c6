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

from jobs.artifacts import ArtifactStore
from jobs.store import repository as repo
from jobs.store.models import utcnow

log = logging.getLogger(__name__)


def expire_old_artifacts(
    sessions: sessionmaker[Session], store: ArtifactStore, retention_days: float, now: datetime | None = None
) -> list[uuid.UUID]:
    """One pass (at most 100 jobs); 0 days keeps everything."""
    if retention_days <= 0:
        return []
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    with sessions.begin() as session:
        expired = repo.expire_artifacts(session, cutoff)
    for job_id in expired:
        try:
            store.delete_prefix(f"jobs/{job_id}")
        except Exception:  # the rows say expired; a file left behind is logged, not fatal
            log.warning("could not delete the expired artifacts of job %s", job_id, exc_info=True)
    if expired:
        log.info("deleted the artifacts of %d jobs past the retention period", len(expired))
    return expired
