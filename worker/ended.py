"""What follows a job that ended without an attempt of its own to follow it up.

The claim step ends a job whose cancel was asked for while its worker was dead, or that
has used all its attempts; the reaper cancels a dead worker's job whose cancel was
asked for. No attempt ran to send the callback, delete the resume state or finalise a
sweep, so :func:`ended_without_attempt` does all three (and wakes a job of the owner that waits
for a running slot), as an attempt does for the jobs it ends.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session, sessionmaker

from jobs.settings import Settings
from worker.callbacks import notify
from worker.owner_slots import wake_parked
from worker.resume_store import drop_resume_state
from worker.sweep_runs import after_child

log = logging.getLogger(__name__)


def ended_without_attempt(sessions: sessionmaker[Session], settings: Settings, job_id: uuid.UUID) -> None:
    """Resume state deleted, callback sent, parent sweep finalised; none of them can fail the others."""
    drop_resume_state(settings, job_id)
    try:
        notify(sessions, settings, job_id)
    except Exception:  # the job is done; a broken callback must not stop the rest
        log.warning("callback of job %s failed", job_id, exc_info=True)
    after_child(sessions, settings, job_id)
    wake_parked(sessions, settings, job_id)
