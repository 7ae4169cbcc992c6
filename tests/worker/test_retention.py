"""Artifacts of jobs finished longer ago than the retention period are deleted; the jobs stay."""

from __future__ import annotations

from datetime import timedelta

from jobs.artifacts import job_key, open_store
from jobs.store import repository
from jobs.store.models import utcnow
from worker.retention import expire_old_artifacts

from .conftest import load


def test_artifacts_past_the_retention_period_are_deleted_and_the_job_says_so(sessions, make_job, tmp_path):
    store = open_store((tmp_path / "store").as_uri())
    (tmp_path / "m.bin").write_bytes(b"\0" * 10)
    old = make_job(state="succeeded", finished_at=utcnow() - timedelta(days=40))
    recent = make_job(state="succeeded", finished_at=utcnow() - timedelta(days=1))
    stored = {}
    with sessions.begin() as session:
        for job_id in (old, recent):
            obj = store.put_file(tmp_path / "m.bin", job_key(job_id, "model.tar.gz"))
            repository.add_artifact(session, job_id, "model.tar.gz", "model", uri=obj.uri, size=10, sha256=obj.sha256)
            stored[job_id] = obj.uri
    assert expire_old_artifacts(sessions, store, 0, retry_s=1.0) == []  # 0 keeps everything
    assert expire_old_artifacts(sessions, store, 30, retry_s=1.0) == [old]
    gone, kept = load(sessions, old), load(sessions, recent)
    assert gone.state == "succeeded" and gone.artifacts == [] and gone.artifacts_expired_at is not None
    assert kept.artifacts and kept.artifacts_expired_at is None
    assert not (tmp_path / "store" / "jobs" / str(old)).exists()
    assert (tmp_path / "store" / "jobs" / str(recent)).exists()
    assert expire_old_artifacts(sessions, store, 30, retry_s=1.0) == []  # done once
