"""Input at the edges of what the API reads: a 4xx in the error shape (or, where the protocol says so,
ignored), never a 500 and never a quietly different answer."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.sse import parse_last_event_id
from jobs.settings import Settings
from tests.service.conftest import RecordingDispatcher
from tests.service.test_artifacts_api import PAYLOAD, stored_job  # noqa: F401 - the fixture

TOO_BIG = str(2**63)


def _error(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] and error["message"]
    return error


# --------------------------------------------------------------------------- events


def test_an_event_id_past_bigint_is_a_422_on_postgresql(client, auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    error = _error(client.get(f"/jobs/{job_id}/events", params={"after": TOO_BIG}, headers=auth), 422)
    assert error["field"] == "after"
    assert client.get(f"/jobs/{job_id}/events", params={"after": str(2**63 - 1)}, headers=auth).status_code == 200


def test_an_event_id_past_bigint_is_a_422_on_sqlite(tmp_path):
    from jobs.store.migrate import upgrade

    settings = Settings(data_dir=tmp_path, api_keys=["edge:edge-secret"])
    upgrade(settings.database_url)
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher()), raise_server_exceptions=False) as c:
        r = c.get(f"/jobs/{uuid.uuid4()}/events?after={TOO_BIG}", headers={"Authorization": "Bearer edge-secret"})
        assert _error(r, 422)["field"] == "after"


@pytest.mark.parametrize("header", ["²", "١٢", TOO_BIG, "99999999999999999999999", "-1", "1e3"])
def test_a_last_event_id_that_is_no_event_id_is_ignored(header):
    assert parse_last_event_id(header, 7) == 7


def test_the_stream_ignores_an_unusable_last_event_id_and_sends_everything(client, auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=auth)  # finished: the stream ends by itself
    for header in ["²", TOO_BIG]:
        headers = {**auth, "Accept": "text/event-stream", "Last-Event-ID": header.encode("latin-1")}
        with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as r:
            assert r.status_code == 200
            text = r.read().decode()
        assert "queued to run on" in text and "event: end" in text


def test_an_artifact_name_with_a_nul_byte_is_404(client, auth, stored_job):  # noqa: F811
    error = _error(client.get(f"/jobs/{stored_job}/artifacts/report.json%00", headers=auth), 404)
    assert error["type"] == "not_found"


# --------------------------------------------------------------------------- ranges


def test_a_range_with_a_space_inside_is_not_read_as_another_range(client, auth, stored_job):  # noqa: F811
    r = client.get(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers={**auth, "Range": "bytes=0-1 2"})
    assert r.status_code == 416 and r.json()["error"]["type"] == "range_not_satisfiable"


def test_the_range_unit_is_case_insensitive(client, auth, stored_job):  # noqa: F811
    r = client.get(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers={**auth, "Range": "BYTES=0-1"})
    assert r.status_code == 206 and r.content == PAYLOAD[:2]


def test_if_range_that_does_not_match_the_etag_gives_the_whole_file(client, auth, stored_job):  # noqa: F811
    url = f"/jobs/{stored_job}/artifacts/head_mask.pt"
    etag = client.get(url, headers=auth).headers["ETag"]
    for stale in ['"0000"', "Wed, 21 Oct 2015 07:28:00 GMT", f"W/{etag}"]:
        r = client.get(url, headers={**auth, "Range": "bytes=0-1", "If-Range": stale})
        assert r.status_code == 200 and r.content == PAYLOAD and "Content-Range" not in r.headers
    r = client.get(url, headers={**auth, "Range": "bytes=0-1", "If-Range": etag})
    assert r.status_code == 206 and r.content == PAYLOAD[:2]
