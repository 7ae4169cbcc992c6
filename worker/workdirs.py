"""Work folders of attempts that will never clean up after themselves.

An attempt works in ``<data_dir>/work/<job_id>-<attempt>-<random>`` and removes it when it
ends; a killed attempt (SIGKILL, the OOM killer, a hard time limit) leaves it behind, and
an LLM's folder holds gigabytes. The reaper of each worker removes, on its own machine,
every folder whose attempt no longer runs: the job is gone, finished, or on a later attempt.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.store.models import Job
from jobs.store.states import JobState

log = logging.getLogger(__name__)


def _attempt_of(folder: Path) -> tuple[uuid.UUID, int] | None:
    """``(job_id, attempt)`` from a folder named ``<uuid>-<attempt>-<random>``."""
    name = folder.name
    try:
        job_id = uuid.UUID(name[:36])
        attempt = int(name[37:].split("-", 1)[0])
    except ValueError:
        return None
    return job_id, attempt


def remove_abandoned(work_root: Path, sessions: sessionmaker[Session]) -> list[Path]:
    """Remove the work folders under ``work_root`` whose attempt is not running; returns them."""
    if not work_root.is_dir():
        return []
    folders = {folder: found for folder in work_root.iterdir() if (found := _attempt_of(folder)) is not None}
    if not folders:
        return []
    ids = {job_id for job_id, _ in folders.values()}
    with sessions() as session:
        live = {
            (row.id, row.attempts)
            for row in session.execute(
                select(Job.id, Job.attempts).where(Job.id.in_(ids), Job.state == JobState.RUNNING.value)
            )
        }
    removed = [folder for folder, attempt in folders.items() if attempt not in live]
    for folder in removed:
        log.info("removing the work folder of an attempt that no longer runs: %s", folder)
        shutil.rmtree(folder, ignore_errors=True)
    return removed
