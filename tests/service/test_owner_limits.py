"""Operator limits: jobs per owner (429 with Retry-After) and the spec format version."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from api.main import create_app
from jobs.store import repository
from jobs.store.models import Job
from jobs.store.session import session_scope
from jobs.store.states import JobState


def test_past_the_queued_limit_submit_is_429_with_retry_after(service_settings, dispatcher, auth, prune_spec):
    settings = service_settings.model_copy(update={"max_queued_jobs_per_owner": 2, "limit_retry_after_s": 30})
    with TestClient(create_app(settings, dispatcher=dispatcher), raise_server_exceptions=False) as client:
        for _ in range(2):
            assert client.post("/jobs", json=prune_spec, headers=auth).status_code == 202
        r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 429, r.text
    assert r.headers["Retry-After"] == "30" and r.json()["error"]["type"] == "too_many_jobs"
    assert "PPRUNING_MAX_QUEUED_JOBS_PER_OWNER" in r.json()["error"]["message"]
    assert len(dispatcher.sent) == 2


def test_the_running_limit_caps_running_jobs_and_refuses_no_submission(
    service_settings, dispatcher, auth, prune_spec, pg_url
):
    settings = service_settings.model_copy(update={"max_running_jobs_per_owner": 1})
    with TestClient(create_app(settings, dispatcher=dispatcher), raise_server_exceptions=False) as client:
        job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
        with session_scope(pg_url) as session:
            repository.transition(session, session.get(Job, uuid.UUID(job_id)), JobState.RUNNING)
        r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 202, r.text  # it waits queued; the workers start it when a slot is free


def _sweep(prune_spec: dict, targets: int) -> dict:
    body = {k: v for k, v in prune_spec.items() if k != "target"}
    return {**body, "kind": "sweep", "targets": {"flops_reduction": [0.1 + 0.1 * i for i in range(targets)]}}


def test_a_sweep_counts_as_itself_and_its_children_against_the_queued_limit(
    service_settings, dispatcher, auth, prune_spec
):
    settings = service_settings.model_copy(update={"max_queued_jobs_per_owner": 5})
    with TestClient(create_app(settings, dispatcher=dispatcher), raise_server_exceptions=False) as client:
        r = client.post("/jobs", json=_sweep(prune_spec, 5), headers=auth)  # 6 jobs: never fits
        assert r.status_code == 422 and r.json()["error"]["field"] == "targets", r.text
        assert client.post("/jobs", json=prune_spec, headers=auth).status_code == 202  # 1 queued
        assert client.post("/jobs", json=_sweep(prune_spec, 3), headers=auth).status_code == 202  # 1 + 4 = 5
        r = client.post("/jobs", json=prune_spec, headers=auth)  # the sweep's children are still to come
        assert r.status_code == 429 and "sweep counts its children" in r.json()["error"]["message"], r.text
        r = client.post("/jobs", json=_sweep(prune_spec, 2), headers=auth)
        assert r.status_code == 429


def test_specs_carry_their_format_version_and_an_unknown_one_is_refused(client, auth, prune_spec):
    r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 202 and r.json()["spec"]["spec_version"] == 1
    r = client.post("/jobs", json={**prune_spec, "spec_version": 2}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "spec_version"
