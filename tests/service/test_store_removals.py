"""Delete and cancel reach the artifact store through an outbox: a store that fails loses nothing.

The store is a real file store whose ``jobs`` folder is made read-only (``tests.support.readonly``),
on the real PostgreSQL; the reaper's pass is :func:`jobs.store.removals.retry_due`, called here
with a clock moved past the backoff (``tests/worker/test_store_outbox_worker.py`` runs the same
with a real worker's reaper loop).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from jobs.artifacts import job_key, job_prefix, open_store, resume_key
from jobs.store import removals, repository
from jobs.store.models import StoreRemoval, utcnow
from jobs.store.session import get_sessionmaker, session_scope
from jobs.store.states import JobState
from tests.support.readonly import read_only


def _root(settings) -> Path:  # type: ignore[no-untyped-def]
    return Path(settings.artifact_root.removeprefix("file://"))


def _put(settings, key: str, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    (tmp_path / "blob").write_bytes(b"\0" * 64)
    stored = open_store(settings.artifact_root).put_file(tmp_path / "blob", key)
    return Path(stored.uri.removeprefix("file://"))


def _finish(pg_url: str, job_id: uuid.UUID) -> None:
    with session_scope(pg_url) as session:
        job = repository.get_job(session, job_id)
        repository.transition(session, job, JobState.RUNNING)
        repository.transition(session, job, JobState.SUCCEEDED)


def _pending(pg_url: str, job_ids: list[uuid.UUID]) -> list[StoreRemoval]:
    with session_scope(pg_url) as session:
        rows = removals.pending(session, job_ids)
        session.expunge_all()
        return rows


def _reaper_pass(pg_url: str, settings, hours: float) -> removals.RemovalPass:  # type: ignore[no-untyped-def]
    later = utcnow() + timedelta(hours=hours)
    return removals.retry_due(get_sessionmaker(pg_url), open_store(settings.artifact_root), 1.0, now=later)


def test_deleting_a_sweep_while_the_store_fails_leaves_nothing_once_it_works_again(
    client, auth, prune_spec, pg_url, service_settings, owner, tmp_path
):
    sweep_spec = {**prune_spec, "kind": "sweep", "targets": {"flops_reduction": [0.2, 0.3]}}
    sweep_spec.pop("target")
    headers = {**auth, "Idempotency-Key": f"sweep-{uuid.uuid4().hex[:8]}"}
    r = client.post("/jobs", json=sweep_spec, headers=headers)
    assert r.status_code == 202, r.text
    parent = uuid.UUID(r.json()["id"])
    with session_scope(pg_url) as session:
        kids = [
            repository.create_job(session, owner=owner, kind="prune", spec=child, parent_id=parent)[0].id
            for child in ({**prune_spec, "target": {"flops_reduction": t}} for t in (0.2, 0.3))
        ]
    for job_id in (parent, *kids):
        _finish(pg_url, job_id)
    ids = [parent, *kids]
    files = [_put(service_settings, job_key(job_id, "attempt-1/report.json"), tmp_path) for job_id in ids]
    files.append(_put(service_settings, f"{resume_key(kids[0])}/state.pt", tmp_path))

    with read_only(*(path.parent for path in files)):  # the store refuses every removal
        assert client.delete(f"/jobs/{parent}", headers=auth).status_code == 204
        assert all(client.get(f"/jobs/{job_id}", headers=auth).status_code == 404 for job_id in ids)
        pending = _pending(pg_url, ids)
        assert sorted(row.prefix for row in pending) == sorted(job_prefix(job_id) for job_id in ids)
        assert all(row.attempts == 1 and row.last_error for row in pending)  # tried at once, and failed
        assert _reaper_pass(pg_url, service_settings, hours=0) == removals.RemovalPass()  # backing off
        assert _reaper_pass(pg_url, service_settings, hours=2) == removals.RemovalPass(removed=0, failed=3)
        assert {row.attempts for row in _pending(pg_url, ids)} == {2}
        assert all(path.exists() for path in files)

    assert _reaper_pass(pg_url, service_settings, hours=4) == removals.RemovalPass(removed=3, failed=0)
    assert _pending(pg_url, ids) == []
    assert not any(path.exists() for path in files)
    assert not any((_root(service_settings) / job_prefix(job_id)).exists() for job_id in ids)
    again = client.post("/jobs", json=sweep_spec, headers=headers)  # the job's key stays taken
    assert again.status_code == 409 and again.json()["error"]["type"] == "idempotency_key_deleted"


def test_cancelling_a_queued_job_while_the_store_fails_removes_its_resume_state_later(
    client, auth, prune_spec, pg_url, service_settings, tmp_path
):
    job_id = uuid.UUID(client.post("/jobs", json=prune_spec, headers=auth).json()["id"])
    state = _put(service_settings, f"{resume_key(job_id)}/state.pt", tmp_path)  # an earlier attempt's

    with read_only(state.parent):
        r = client.post(f"/jobs/{job_id}/cancel", headers=auth)
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert state.exists()
        assert [row.prefix for row in _pending(pg_url, [job_id])] == [resume_key(job_id)]

    assert _reaper_pass(pg_url, service_settings, hours=1).removed == 1
    assert not state.exists() and _pending(pg_url, [job_id]) == []


def test_a_store_that_works_removes_at_once_and_leaves_no_outbox_row(
    client, auth, prune_spec, pg_url, service_settings, tmp_path
):
    job_id = uuid.UUID(client.post("/jobs", json=prune_spec, headers=auth).json()["id"])
    _finish(pg_url, job_id)
    stored = _put(service_settings, job_key(job_id, "attempt-1/head_mask.pt"), tmp_path)
    assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 204
    assert not stored.exists() and _pending(pg_url, [job_id]) == []


def test_the_wait_between_tries_doubles_up_to_an_hour():
    assert [removals.backoff_s(n, 30.0) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert removals.backoff_s(50, 30.0) == removals.MAX_BACKOFF_S == 3600.0
