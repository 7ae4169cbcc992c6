"""healthz, readyz (database and broker, for real), metrics, and the error shape of unknown routes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from jobs.queue import CeleryDispatcher


def test_healthz_answers_without_a_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_the_real_database_and_redis(service_settings, redis_url):
    app = create_app(service_settings, dispatcher=CeleryDispatcher(redis_url))
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_naming_an_unreachable_broker(service_settings):
    app = create_app(service_settings, dispatcher=CeleryDispatcher("redis://127.0.0.1:1/0"))
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["type"] == "not_ready" and "broker" in error["message"] and "database" not in error["message"]


def test_readyz_is_503_naming_an_unreachable_database(service_settings, dispatcher):
    settings = service_settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(settings, dispatcher=dispatcher)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and "database" in r.json()["error"]["message"]


def test_metrics_count_jobs_by_state_and_time_requests_by_route(client, auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    client.get(f"/jobs/{job_id}", headers=auth)
    client.get("/no/such/route")
    text = client.get("/metrics").text
    queued = [line for line in text.splitlines() if line.startswith('ppruning_jobs{state="queued"}')]
    assert queued and float(queued[0].split()[-1]) >= 1
    assert 'ppruning_http_request_duration_seconds_count{method="POST",route="/jobs",status="202"} 1.0' in text
    assert 'route="/jobs/{job_id}",status="200"' in text  # the template, not the raw id
    assert job_id not in text and 'route="unmatched",status="404"' in text


def test_unknown_routes_and_methods_use_the_error_shape(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.put("/jobs")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"
