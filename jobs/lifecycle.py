"""Cancelling and deleting a job: the state change, its cascade to the job's children, and the files it frees.

Both are units of work of the job layer (the HTTP routes only call them). Each commits its
rows together with the store removals they make necessary (:mod:`jobs.store.removals`),
then tries those removals at once; a store that fails leaves them to the reaper, which
retries until the files are gone. So a client's 200 or 204 never leaves files behind for good.

- :func:`cancel_job`: a queued job ends ``cancelled`` at once, a running one is flagged for
  its worker; its children (a sweep's) with it. A job that ended here may hold the resume
  state of an earlier attempt, which goes (a running job's worker drops its own when it stops).
- :func:`delete_job`: a finished job's rows (events, artifacts, metrics, children by
  ``ON DELETE CASCADE``) and every file under its prefix and its children's. Its
  ``Idempotency-Key`` stays taken (:func:`jobs.store.repository.delete_job`).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from jobs import sweeps
from jobs.artifacts import ArtifactStore, job_prefix, resume_key
from jobs.store import removals, repository
from jobs.store.models import Job, StoreRemoval
from jobs.store.states import TERMINAL, JobState

log = logging.getLogger(__name__)


class NotFinished(Exception):
    """A job that has not finished cannot be deleted: its worker may still write."""

    def __init__(self, state: str) -> None:
        super().__init__(f"the job is {state}; cancel it and wait until it has stopped before deleting it")
        self.state = state


def cancel_job(session: Session, store: ArtifactStore, job: Job, *, retry_s: float) -> Job:
    """Cancel ``job`` and its unfinished children; commits. :class:`repository.NotCancellable` once finished.

    ``retry_s``: the first delay of a removal that fails now (``settings.removal_retry_s``).
    """
    repository.cancel_job(session, job)
    ended = [job] if job.state == JobState.CANCELLED.value else []
    if sweeps.children(session, job.id):
        sweeps.cancel_children(session, job)
        ended += [child for child in sweeps.children(session, job.id) if child.state == JobState.CANCELLED.value]
    scheduled: list[StoreRemoval] = []
    for gone in ended:
        scheduled += removals.schedule(session, gone.id, [resume_key(gone.id)], reason="cancelled")
    session.commit()
    _try_now(session, store, scheduled, retry_s)
    return job


def delete_job(session: Session, store: ArtifactStore, job: Job, *, retry_s: float) -> None:
    """Delete a finished ``job``, its children and all their files; commits. :class:`NotFinished` before."""
    if JobState(job.state) not in TERMINAL:
        raise NotFinished(job.state)
    gone = [job.id, *_descendants(session, job.id)]
    repository.delete_job(session, job)  # the children's rows go by ON DELETE CASCADE
    scheduled: list[StoreRemoval] = []
    for job_id in gone:
        scheduled += removals.schedule(session, job_id, [job_prefix(job_id)], reason="deleted")
    session.commit()
    _try_now(session, store, scheduled, retry_s)


def _descendants(session: Session, job_id: uuid.UUID) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    pending = [job_id]
    while pending:
        for child in sweeps.children(session, pending.pop()):
            found.append(child.id)
            pending.append(child.id)
    return found


def _try_now(session: Session, store: ArtifactStore, scheduled: list[StoreRemoval], retry_s: float) -> None:
    """The first try of the removals just committed; the request's outcome stands whatever happens here."""
    try:
        removals.remove_now(session, store, scheduled, retry_s)
    except Exception:  # the database went away after the commit: the rows are there, the reaper does it
        session.rollback()
        log.warning("could not try the store removals of %d prefixes now; the reaper will", len(scheduled),
                    exc_info=True)  # fmt: skip
