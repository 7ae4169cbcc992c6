"""A job whose computation finished keeps its results while the artifact store refuses them, and
uploads them once it takes them again; a store that never does fails the job naming no server path."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from jobs.settings import Settings
from jobs.store.claims import claim_job
from jobs.store.models import JobEvent
from tests.support.readonly import ReadOnly
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec
from worker import attempt


def _settings(tmp_path, pg_url, tiny_model, retry_for_s: float) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                    allowed_model_roots=[tiny_model.parent, FIXTURES], upload_retry_s=retry_for_s)  # fmt: skip


def _claimed(sessions, make_job, tiny_model):  # type: ignore[no-untyped-def]
    job_id = make_job(prune_spec(tiny_model, FIXTURES, measure=False))
    with sessions.begin() as session:
        return claim_job(session, job_id, "w1", 60.0)


def _upload_waits(sessions, job_id) -> list[str]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id))
        return [m for m in messages if "upload is tried again" in m]


def test_a_finished_computation_waits_out_a_read_only_store_and_succeeds(
    sessions, make_job, pg_url, tiny_model, tmp_path
):
    settings = _settings(tmp_path, pg_url, tiny_model, retry_for_s=120)
    (tmp_path / "a").mkdir()
    claim = _claimed(sessions, make_job, tiny_model)
    read_only = ReadOnly(tmp_path / "a")

    def writable_after_a_wait() -> None:
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline and not _upload_waits(sessions, claim.job_id):
            time.sleep(0.2)
        read_only.release()

    helper = threading.Thread(target=writable_after_a_wait)
    helper.start()
    try:
        result = attempt.run_attempt(claim, settings, sessions)
    finally:
        helper.join()
        read_only.release()
    assert result.outcome is attempt.Outcome.SUCCEEDED, result.failure
    job = load(sessions, claim.job_id)
    assert job.state == "succeeded" and {a.name for a in job.artifacts} >= {"report.json", "model.tar.gz"}
    waits = _upload_waits(sessions, claim.job_id)
    assert waits and str(tmp_path) not in waits[0]


def test_a_store_that_stays_read_only_fails_the_job_without_a_server_path(
    sessions, make_job, pg_url, tiny_model, tmp_path
):
    settings = _settings(tmp_path, pg_url, tiny_model, retry_for_s=3)
    (tmp_path / "a").mkdir()
    claim = _claimed(sessions, make_job, tiny_model)
    with ReadOnly(tmp_path / "a"):
        result = attempt.run_attempt(claim, settings, sessions)
    assert result.outcome is attempt.Outcome.FAILED
    job = load(sessions, claim.job_id)
    assert job.error_type == "StorageRefused" and job.artifacts == []
    assert str(tmp_path) not in job.error_message and "attempt-1" in job.error_message, job.error_message
