"""A job's resume state in the artifact store: where a restarted attempt continues its training from.

A resumable method (``MethodSpec.resumable``: SMP, its magnitude baseline) saves its
training state through a :class:`ppruning.ResumeStore` every ``resume_every_s`` seconds.
In a job that store is :class:`ArtifactResume`: one object under the job's resume prefix,
``jobs/<id>/resume/`` (:func:`jobs.artifacts.resume_key`), rather than a local folder,
because a worker that dies takes its disk with it and the next attempt may run elsewhere.

The prefix belongs to the job, not to an attempt: a new attempt deletes only its
predecessors' ``attempt-<n>/`` uploads, so attempt n+1 finds what attempt n saved. It is
deleted when the job ends (succeeded, failed for good, cancelled) by whoever ends it: the
attempt (:func:`worker.attempt.run_attempt`), the claim step or the reaper
(:mod:`worker.ended`), or the API cancelling a queued job. A retry keeps it.

Writes are atomic (a file store renames a complete temporary file into place; an S3
object appears when its upload completes), so a worker killed mid-save leaves the
previous state. ``before_save`` is the attempt's checkpoint: an attempt that has lost its
lease (declared dead, still running) stops there instead of overwriting its successor's state.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.artifacts import ArtifactStore, StorageError, open_store, resume_key
from jobs.settings import Settings
from jobs.store.removals import remove_or_defer
from jobs.store.session import get_sessionmaker
from ppruning import decode_resume_state, encode_resume_state

log = logging.getLogger(__name__)

#: The one object under a job's resume prefix.
STATE_OBJECT = "state.pt"


class ArtifactResume:
    """``load``/``save``/``clear`` of one job's state in the artifact store (a :class:`ppruning.ResumeStore`)."""

    def __init__(
        self,
        store: ArtifactStore,
        job_id: uuid.UUID | str,
        *,
        scratch: Path | None = None,
        before_save: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.prefix = resume_key(job_id)
        self.key = f"{self.prefix}/{STATE_OBJECT}"
        #: Where the encoded state is written before upload (the attempt's work folder: states can be large).
        self.scratch = scratch
        self.before_save = before_save

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it cannot be read (the run then starts at step 0)."""
        try:
            data = b"".join(self.store.open_range(self.store.uri_for(self.key)))
        except StorageError:
            return None
        try:
            return decode_resume_state(data)
        except Exception:  # unreadable: starting over costs time, failing the job for it would cost the job
            log.warning("the resume state at %s cannot be read; training starts from step 0", self.key, exc_info=True)
            return None

    def save(self, state: dict[str, Any]) -> None:
        if self.before_save is not None:
            self.before_save()
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="resume-", dir=self.scratch) as tmp:
            local = Path(tmp) / STATE_OBJECT
            local.write_bytes(encode_resume_state(state))
            self.store.put_file(local, self.key)

    def clear(self) -> None:
        self.store.delete_prefix(self.prefix)


def drop_resume_state(settings: Settings, job_id: uuid.UUID | str) -> None:
    """Delete a job's resume state once the job has ended; never raises (the job's outcome stands).
    A store that fails now leaves it to the store's outbox, which the reaper retries until it is gone."""
    try:
        sessions = get_sessionmaker(settings.database_url)
        store = open_store(settings.artifact_root)
        remove_or_defer(sessions, store, uuid.UUID(str(job_id)), resume_key(job_id), reason="ended")
    except Exception:
        log.warning("could not delete the resume state of job %s", job_id, exc_info=True)
