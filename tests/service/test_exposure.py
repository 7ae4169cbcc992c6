"""What the API tells a caller about itself: URLs from its configured base, metrics behind a token when asked."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app


def test_job_urls_and_location_come_from_the_base_url_not_the_host_header(client, auth, prune_spec, service_settings):
    r = client.post("/jobs", json=prune_spec, headers={**auth, "Host": "evil.example"})
    assert r.status_code == 202, r.text
    base = service_settings.base_url.rstrip("/")
    job = r.json()
    assert r.headers["Location"] == job["url"] == f"{base}/jobs/{job['id']}"
    listed = client.get("/jobs", headers={**auth, "Host": "evil.example"}).json()["items"]
    assert all(item["url"].startswith(base + "/") and "evil" not in item["url"] for item in listed)


def test_metrics_stay_open_by_default(client):
    assert client.get("/metrics").status_code == 200


def test_metrics_need_the_operator_token_when_one_is_set(service_settings, dispatcher):
    settings = service_settings.model_copy(update={"metrics_token": "scrape-secret"})
    with TestClient(create_app(settings, dispatcher=dispatcher), raise_server_exceptions=False) as c:
        refused = c.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200 and "ppruning_jobs" in ok.text
