"""Submissions that would make the service reach where it must not: refused with a 422 naming the field."""

from __future__ import annotations

import shutil

import pytest

from tests.service.conftest import count_jobs

SSRF_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:5432/",
    "http://[::1]:6379/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://10.1.2.3/hook",
    "http://user:pw@internal/",
    "https://user@ci.example.com/hook",
]


def _refused(r, field: str, pg_url: str, owner: str, dispatcher) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field, error
    assert count_jobs(pg_url, owner) == 0 and dispatcher.sent == []
    return error


@pytest.mark.parametrize("url", SSRF_URLS)
def test_a_callback_url_to_a_private_host_or_with_credentials_is_422(
    client, auth, prune_spec, dispatcher, pg_url, owner, url
):
    r = client.post("/jobs", json={**prune_spec, "callback_url": url}, headers=auth)
    _refused(r, "callback_url", pg_url, owner, dispatcher)


def test_a_public_callback_url_is_accepted(client, auth, prune_spec):
    r = client.post("/jobs", json={**prune_spec, "callback_url": "https://93.184.215.14/hook"}, headers=auth)
    assert r.status_code == 202, r.text


def test_a_model_folder_with_a_file_linking_outside_the_roots_is_422(
    client, auth, prune_spec, model_root, dispatcher, pg_url, owner, tmp_path
):
    secret = tmp_path / "secret.txt"
    secret.write_text("private\n")
    linked = model_root / f"linked-{owner}"
    shutil.copytree(model_root / "bert", linked)
    (linked / "vocab.txt").unlink()
    (linked / "vocab.txt").symlink_to(secret)
    r = client.post("/jobs", json={**prune_spec, "model": {"id": str(linked)}}, headers=auth)
    error = _refused(r, "model.id", pg_url, owner, dispatcher)
    assert "vocab.txt" in error["message"] and str(tmp_path) not in error["message"]
    nested = model_root / f"nested-{owner}"
    shutil.copytree(model_root / "bert", nested)
    (nested / "extra").symlink_to(tmp_path, target_is_directory=True)  # a folder link leading out
    r = client.post("/jobs", json={**prune_spec, "model": {"id": str(nested)}}, headers=auth)
    _refused(r, "model.id", pg_url, owner, dispatcher)


def test_a_path_outside_the_roots_is_refused_without_naming_the_roots(
    client, auth, prune_spec, model_root, dispatcher, pg_url, owner
):
    r = client.post("/jobs", json={**prune_spec, "model": {"id": "/etc"}}, headers=auth)
    error = _refused(r, "model.id", pg_url, owner, dispatcher)
    assert str(model_root) not in error["message"] and "not allowed" in error["message"]


def test_a_callback_url_is_refused_when_the_service_has_no_secret_to_sign_it(
    service_settings, dispatcher, auth, prune_spec, pg_url, owner
):
    from fastapi.testclient import TestClient

    from api.main import create_app

    unsigned = service_settings.model_copy(update={"callback_secret": ""})
    with TestClient(create_app(unsigned, dispatcher=dispatcher), raise_server_exceptions=False) as client:
        r = client.post("/jobs", json={**prune_spec, "callback_url": "https://93.184.215.14/hook"}, headers=auth)
        error = _refused(r, "callback_url", pg_url, owner, dispatcher)
        assert "PPRUNING_CALLBACK_SECRET" in error["message"]
        assert client.post("/jobs", json=prune_spec, headers=auth).status_code == 202  # no callback: fine
