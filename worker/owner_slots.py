"""The worker's side of the per-owner running cap (:mod:`jobs.store.owner_slots`): park and wake.

A message whose job the cap keeps waiting is dropped and the job parked; when one of the
owner's jobs ends, the worker that saw it end sends the messages of the owner's oldest
parked jobs, one per free slot. Neither step may fail the job that triggered it.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session, sessionmaker

from jobs.queue import send_job
from jobs.settings import Settings
from jobs.store.owner_slots import park_if_capped, unpark

log = logging.getLogger(__name__)


def park(sessions: sessionmaker[Session], settings: Settings, job_id: uuid.UUID) -> bool:
    """True when the job waits for a running slot of its owner (its message can be dropped)."""
    with sessions.begin() as session:
        return park_if_capped(session, job_id, settings.max_running_jobs_per_owner)


def wake_parked(sessions: sessionmaker[Session], settings: Settings, ended: uuid.UUID) -> list[uuid.UUID]:
    """After ``ended`` ended: send the owner's oldest parked jobs, one per free slot; returns their ids."""
    try:
        with sessions.begin() as session:
            woken = unpark(session, ended, settings.max_running_jobs_per_owner)
        for job_id, spec in woken:
            log.info("job %s: a running slot of its owner is free; sent again", job_id)
            send_job(settings.broker_url, job_id, spec)
        return [job_id for job_id, _ in woken]
    except Exception:  # the reaper re-sends a queued job whose message is gone
        log.warning("could not wake the parked jobs of the owner of job %s", ended, exc_info=True)
        return []
