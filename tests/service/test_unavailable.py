"""When the database or the broker is away: what a client sees names no host or port, and a
database restart is a retryable 503 (with ``Retry-After``), never a 500."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.main import create_app
from jobs.queue import CeleryDispatcher
from tests.service.conftest import RecordingDispatcher

#: What a driver's message says about where it tried to connect; none of it may reach a client.
WHERE = ("127.0.0.1", ":1", "port 1", "6379", "5432", "nobody")


def _leaks(text_: str) -> list[str]:
    return [w for w in WHERE if w in text_]


def test_readyz_names_no_host_or_port_of_an_unreachable_database_or_broker(service_settings):
    settings = service_settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    app = create_app(settings, dispatcher=CeleryDispatcher("redis://127.0.0.1:1/0"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert "database: unreachable" in message and "broker: unreachable" in message
    assert _leaks(message) == [], message


def test_a_failed_dispatch_names_no_broker_host_or_port(client, auth, prune_spec, dispatcher):
    dispatcher.fail_with = ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    r = client.post("/jobs", json=prune_spec, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["type"] == "dispatch_failed"
    assert _leaks(r.json()["error"]["message"]) == [] and int(r.headers["Retry-After"]) > 0
    job = client.get(r.headers["Location"], headers=auth).json()
    assert job["state"] == "failed" and "ConnectionError" in job["error"]["message"]
    assert _leaks(job["error"]["message"]) == [] and _leaks(job["message"] or "") == []


def test_a_database_restart_is_a_retryable_503_then_the_service_recovers(service_settings, pg_url, auth, prune_spec):
    """Every pooled connection of the app is terminated (what a PostgreSQL restart does to them)."""
    tag = f"restart-{uuid.uuid4().hex[:8]}"
    url = make_url(pg_url).update_query_dict({"application_name": tag}).render_as_string(hide_password=False)
    app = create_app(service_settings.model_copy(update={"database_url": url}), dispatcher=RecordingDispatcher())
    with TestClient(app, raise_server_exceptions=False) as c:
        job_id = c.post("/jobs", json=prune_spec, headers=auth).json()["id"]
        assert c.get(f"/jobs/{job_id}", headers=auth).status_code == 200
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            killed = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :t"),
                {"t": tag},
            ).scalar()
        admin.dispose()
        assert killed >= 1
        r = c.get(f"/jobs/{job_id}", headers=auth)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["type"] == "database_unavailable" and int(r.headers["Retry-After"]) > 0
        assert _leaks(r.json()["error"]["message"]) == []
        assert c.get(f"/jobs/{job_id}", headers=auth).status_code == 200  # the pool reconnects
