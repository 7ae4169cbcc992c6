"""A queued job cancelled through the API takes the resume state of its earlier attempts with it;
a running one keeps it until its worker stops (the worker deletes it then)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.artifacts import StorageError, open_store, resume_key
from jobs.store.claims import claim_job
from jobs.store.session import session_scope


def _put_state(settings, job_id: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """A state object where a worker's resume store keeps it; its URI."""
    (tmp_path / "state.pt").write_bytes(b"state of step 5")
    store = open_store(settings.artifact_root)
    return store.put_file(tmp_path / "state.pt", f"{resume_key(job_id)}/state.pt").uri


def test_cancelling_a_queued_job_deletes_its_resume_state(client, auth, prune_spec, service_settings, tmp_path):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    uri = _put_state(service_settings, job_id, tmp_path)  # left by an attempt whose worker died

    r = client.post(f"/jobs/{job_id}/cancel", headers=auth)

    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    with pytest.raises(StorageError, match="missing"):
        open_store(service_settings.artifact_root).stat(uri)


def test_cancelling_a_running_job_leaves_its_resume_state_to_its_worker(
    client, auth, prune_spec, service_settings, pg_url, tmp_path
):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    with session_scope(pg_url) as session:
        assert claim_job(session, job_id, "w1", 60.0) is not None
    uri = _put_state(service_settings, job_id, tmp_path)

    r = client.post(f"/jobs/{job_id}/cancel", headers=auth)

    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    assert open_store(service_settings.artifact_root).stat(uri) > 0  # the running attempt may still save to it
