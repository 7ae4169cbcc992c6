"""POST/GET/cancel/delete of /jobs on the real PostgreSQL, messages captured at the dispatch boundary."""

from __future__ import annotations

import uuid
from pathlib import Path

from jobs.artifacts import job_key, open_store
from jobs.store import repository
from jobs.store.models import Job
from jobs.store.session import session_scope
from jobs.store.states import JobState
from tests.service.conftest import count_jobs


def _set_state(pg_url: str, job_id: str, *states: JobState, **fields) -> None:
    """Walk the job through the state machine the way the worker would."""
    with session_scope(pg_url) as session:
        job = session.get(Job, uuid.UUID(job_id))
        for state in states:
            repository.transition(session, job, state, **fields)


def test_submit_commits_a_queued_job_then_sends_its_id(client, auth, prune_spec, dispatcher, pg_url, owner):
    r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "queued" and body["kind"] == "prune"
    assert r.headers["Location"] == body["url"] and body["url"].endswith(f"/jobs/{body['id']}")
    assert dispatcher.sent == [(uuid.UUID(body["id"]), "gpu")]
    # the stored spec is complete: the method's defaults are filled in
    assert body["spec"]["params"]["lambda_val"] == 5.0 and body["spec"]["seed"] == 3407
    with session_scope(pg_url) as session:
        job = session.get(Job, uuid.UUID(body["id"]))
        assert job.owner == owner and job.state == "queued" and len(job.request_hash) == 64


def test_a_cpu_job_goes_to_the_cpu_queue(client, auth, prune_spec, dispatcher):
    r = client.post("/jobs", json={**prune_spec, "device": "cpu"}, headers=auth)
    assert r.status_code == 202
    assert dispatcher.sent[0][1] == "cpu"


def test_the_minimal_hub_spec_of_the_issue_is_accepted(client, auth, dispatcher):
    spec = {
        "kind": "prune",
        "model": {"id": "bert-base-uncased"},
        "task": {"name": "sst2"},
        "method": "ppruning",
        "target": {"flops_reduction": 0.3},
    }
    r = client.post("/jobs", json=spec, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["model"] == {"id": "bert-base-uncased", "revision": None}


def test_same_idempotency_key_and_body_returns_the_same_job_once(client, auth, prune_spec, dispatcher, pg_url, owner):
    headers = {**auth, "Idempotency-Key": "ci-run-42"}
    first = client.post("/jobs", json=prune_spec, headers=headers)
    again = client.post("/jobs", json=prune_spec, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(dispatcher.sent) == 1 and count_jobs(pg_url, owner) == 1


def test_same_idempotency_key_with_another_body_is_409(client, auth, prune_spec, pg_url, owner):
    headers = {**auth, "Idempotency-Key": "ci-run-43"}
    assert client.post("/jobs", json=prune_spec, headers=headers).status_code == 202
    other = {**prune_spec, "target": {"flops_reduction": 0.2}}
    r = client.post("/jobs", json=other, headers=headers)
    assert r.status_code == 409
    assert r.json()["error"]["type"] == "idempotency_conflict"
    assert count_jobs(pg_url, owner) == 1


def test_idempotency_keys_are_per_owner(client, auth, other_auth, prune_spec):
    a = client.post("/jobs", json=prune_spec, headers={**auth, "Idempotency-Key": "shared"})
    b = client.post("/jobs", json=prune_spec, headers={**other_auth, "Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


def test_get_job_shows_progress_metrics_error_and_artifacts(
    client, auth, prune_spec, pg_url, service_settings, tmp_path
):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    _set_state(pg_url, job_id, JobState.RUNNING, stage="collect", progress=0.4)
    running = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert (running["state"], running["stage"], running["progress"]) == ("running", "collect", 0.4)
    assert running["started_at"] is not None and running["finished_at"] is None

    (tmp_path / "report.json").write_text('{"ok": true}')
    stored = open_store(service_settings.artifact_root).put_file(
        tmp_path / "report.json", job_key(job_id, "report.json")
    )
    with session_scope(pg_url) as session:
        jid = uuid.UUID(job_id)
        repository.add_artifact(
            session, jid, "report.json", "report", uri=stored.uri, size=stored.size, sha256=stored.sha256
        )
        repository.record_metrics(session, jid, {"validation": {"accuracy": 0.91}, "": {"flops_reduction": 0.3}})
        repository.transition(session, session.get(Job, jid), JobState.SUCCEEDED, progress=1.0)
    body = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert body["state"] == "succeeded" and body["finished_at"] is not None and body["error"] is None
    assert body["metrics"] == {"validation": {"accuracy": 0.91}, "": {"flops_reduction": 0.3}}
    [artifact] = body["artifacts"]
    assert artifact["size"] == stored.size and artifact["sha256"] == stored.sha256
    assert artifact["url"].endswith(f"/jobs/{job_id}/artifacts/report.json")


def test_a_failed_job_shows_its_error(client, auth, prune_spec, pg_url):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    _set_state(pg_url, job_id, JobState.FAILED, error_type="data_error", error_message="column 'label' missing")
    body = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert body["error"] == {"type": "data_error", "message": "column 'label' missing"}


def test_list_is_newest_first_with_a_cursor_that_neither_skips_nor_repeats(client, auth, prune_spec):
    ids = [client.post("/jobs", json=prune_spec, headers=auth).json()["id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params, headers=auth).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)) and pages == 3


def test_list_filters_by_state_and_kind(client, auth, prune_spec, pg_url):
    keep = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    gone = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    client.post(f"/jobs/{gone}/cancel", headers=auth)
    queued = client.get("/jobs", params={"state": "queued", "kind": "prune"}, headers=auth).json()["items"]
    assert [j["id"] for j in queued] == [keep]
    both = client.get("/jobs", params=[("state", "queued"), ("state", "cancelled")], headers=auth).json()["items"]
    assert {j["id"] for j in both} == {keep, gone}
    assert client.get("/jobs", params={"kind": "finetune"}, headers=auth).json()["items"] == []


def test_list_rejects_bad_filters_cursor_and_limit(client, auth):
    for params, field in [
        ({"state": "sleeping"}, "state.0"),
        ({"kind": "compress"}, "kind.0"),  # "sweep" is a kind since issue 8
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ]:
        r = client.get("/jobs", params=params, headers=auth)
        assert r.status_code == 422, params
        assert r.json()["error"]["field"] == field


def test_cancel_a_queued_job_cancels_it_at_once(client, auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    r = client.post(f"/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["finished_at"]


def test_cancel_a_running_job_flags_it_for_the_worker(client, auth, prune_spec, pg_url):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    _set_state(pg_url, job_id, JobState.RUNNING)
    r = client.post(f"/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 202
    assert r.json()["state"] == "running" and r.json()["cancel_requested"] is True


def test_cancel_a_finished_job_is_409(client, auth, prune_spec, pg_url):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    _set_state(pg_url, job_id, JobState.RUNNING, JobState.SUCCEEDED)
    r = client.post(f"/jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 409 and r.json()["error"]["type"] == "conflict"


def test_events_are_listed_in_order_after_a_given_id(client, auth, prune_spec, pg_url):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    with session_scope(pg_url) as session:
        for i in range(3):
            repository.add_event(session, uuid.UUID(job_id), f"step {i}", stage="collect", data={"i": i})
    page = client.get(f"/jobs/{job_id}/events", headers=auth).json()
    messages = [e["message"] for e in page["items"]]
    assert messages[0].startswith("queued") and messages[1:] == ["step 0", "step 1", "step 2"]
    newer = client.get(f"/jobs/{job_id}/events", params={"after": page["items"][1]["id"]}, headers=auth).json()
    assert [e["message"] for e in newer["items"]] == ["step 1", "step 2"]
    assert newer["next_after"] == page["next_after"]


def test_delete_removes_a_finished_job_and_its_files(client, auth, prune_spec, pg_url, service_settings, tmp_path):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    (tmp_path / "m.pt").write_bytes(b"\0" * 100)
    store = open_store(service_settings.artifact_root)
    stored = store.put_file(tmp_path / "m.pt", job_key(job_id, "head_mask.pt"))
    with session_scope(pg_url) as session:
        repository.add_artifact(
            session, uuid.UUID(job_id), "head_mask.pt", "mask", uri=stored.uri, size=100, sha256=stored.sha256
        )
    _set_state(pg_url, job_id, JobState.RUNNING)
    assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 409
    _set_state(pg_url, job_id, JobState.SUCCEEDED)
    assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 204
    assert client.get(f"/jobs/{job_id}", headers=auth).status_code == 404
    assert not Path(stored.uri.removeprefix("file://")).exists()


def test_delete_a_queued_job_is_409(client, auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    r = client.delete(f"/jobs/{job_id}", headers=auth)
    assert r.status_code == 409 and "cancel" in r.json()["error"]["message"]


def test_unknown_and_malformed_job_ids(client, auth):
    missing = uuid.uuid4()
    for method, path in [("get", ""), ("get", "/events"), ("post", "/cancel"), ("delete", ""), ("get", "/artifacts")]:
        r = client.request(method.upper(), f"/jobs/{missing}{path}", headers=auth)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found", (method, path)
    r = client.get("/jobs/not-a-uuid", headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "job_id"


def test_a_failed_send_marks_the_job_failed_with_the_reason(client, auth, prune_spec, dispatcher, pg_url, owner):
    dispatcher.fail_with = ConnectionError("broker at redis://nowhere refused the connection")
    r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["type"] == "dispatch_failed"
    job_id = r.headers["Location"].rsplit("/", 1)[-1]
    body = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert body["state"] == "failed" and body["error"]["type"] == "dispatch_failed"
    assert "ConnectionError" in body["error"]["message"] and "nowhere" not in body["error"]["message"]
    assert count_jobs(pg_url, owner) == 1


def test_pipeline_and_finetune_jobs_are_accepted(client, auth, prune_spec, pg_url):
    pipeline = {**prune_spec, "kind": "pipeline", "finetune": {"epochs": 1, "learning_rate": 3e-5}}
    r = client.post("/jobs", json=pipeline, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["finetune"]["epochs"] == 1
    finetune = {"kind": "finetune", "model": prune_spec["model"], "task": {"name": "sst2"}, "preset": "paper"}
    r = client.post("/jobs", json=finetune, headers=auth)
    assert r.status_code == 202, r.text


def test_finetune_from_a_prune_job_needs_it_to_have_succeeded(client, auth, other_auth, prune_spec, pg_url):
    prune_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    spec = {"kind": "finetune", "from_job": prune_id, "task": {"name": "sst2"}}
    r = client.post("/jobs", json=spec, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "from_job"
    assert "queued" in r.json()["error"]["message"]
    _set_state(pg_url, prune_id, JobState.RUNNING, JobState.SUCCEEDED)
    assert client.post("/jobs", json=spec, headers=auth).status_code == 202
    # another owner cannot fine-tune it: for them the job does not exist
    r = client.post("/jobs", json=spec, headers=other_auth)
    assert r.status_code == 422 and "not found" in r.json()["error"]["message"]


def test_reusing_the_idempotency_key_of_a_deleted_job_is_409_not_a_second_run(
    client, auth, prune_spec, dispatcher, pg_url
):
    headers = {**auth, "Idempotency-Key": "ci-run-deleted"}
    job_id = client.post("/jobs", json=prune_spec, headers=headers).json()["id"]
    _set_state(pg_url, job_id, JobState.RUNNING, JobState.SUCCEEDED)
    assert client.delete(f"/jobs/{job_id}", headers=auth).status_code == 204
    again = client.post("/jobs", json=prune_spec, headers=headers)
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["type"] == "idempotency_key_deleted" and job_id in error["message"] and "deleted" in error["message"]
    assert len(dispatcher.sent) == 1
