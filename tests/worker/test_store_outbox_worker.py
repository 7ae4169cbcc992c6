"""A real worker's reaper loop retries the store removals that failed, until the files are gone.

The API deletes a finished job while the store refuses to remove anything (a read-only
folder: ``tests.support.readonly``); the worker's reaper keeps trying with backoff, and
once the store works again nothing of the job is left, in the store or in the outbox.
A worker that ends a job while the store fails leaves its resume state to the same outbox.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from jobs.artifacts import job_key, job_prefix, open_store, resume_key
from jobs.settings import Settings
from jobs.store import removals
from jobs.store.models import StoreRemoval, utcnow
from tests.support.readonly import read_only
from tests.worker.conftest import api_client
from tests.worker.harness import wait_for
from worker.resume_store import drop_resume_state

pytestmark = pytest.mark.slow


def _pending(sessions, job_id: uuid.UUID) -> list[StoreRemoval]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        rows = removals.pending(session, [job_id])
        session.expunge_all()
        return rows


def _put(store, key: str, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    (tmp_path / "blob").write_bytes(b"\1" * 128)
    return Path(store.put_file(tmp_path / "blob", key).uri.removeprefix("file://"))


def test_the_reaper_of_a_running_worker_removes_a_deleted_jobs_files_once_the_store_works(
    service_backend, spawn, make_job, sessions, tmp_path
):
    spawn(service_backend)  # its reaper runs every second
    store = open_store(service_backend.artifact_root)
    job_id = make_job(state="succeeded", finished_at=utcnow(), attempts=1)
    stored = _put(store, job_key(job_id, "attempt-1/model.tar.gz"), tmp_path)

    with read_only(stored.parent), api_client(service_backend) as client:
        assert client.http.delete(f"/jobs/{job_id}").status_code == 204
        assert client.http.get(f"/jobs/{job_id}").status_code == 404
        wait_for(lambda: any(row.attempts >= 3 for row in _pending(sessions, job_id)), 30, "the reaper's retries")
        assert stored.exists()

    wait_for(lambda: not _pending(sessions, job_id), 60, "the reaper to finish the removal")
    assert not stored.exists() and not store.holds(job_prefix(job_id))  # nothing of the job is left


def test_a_resume_state_the_store_refuses_to_drop_is_left_to_the_outbox(service_backend, sessions, tmp_path):
    settings: Settings = service_backend.settings()
    store = open_store(settings.artifact_root)
    job_id = uuid.uuid4()
    state = _put(store, f"{resume_key(job_id)}/state.pt", tmp_path)

    with read_only(state.parent):
        drop_resume_state(settings, job_id)  # a worker ending the job; never raises
        assert state.exists() and [row.prefix for row in _pending(sessions, job_id)] == [resume_key(job_id)]

    time.sleep(0.01)
    assert removals.retry_due(sessions, store, settings.removal_retry_s).removed == 1
    assert not state.exists() and _pending(sessions, job_id) == []
