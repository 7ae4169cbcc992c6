"""Bearer keys: hashed at rest, revocable, bootstrap pairs, and owners that cannot see each other's jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from jobs.store.models import ApiKey
from jobs.store.session import session_scope
from ppruning.cli.main import main as cli


def test_requests_without_a_usable_key_are_401(client, prune_spec):
    for headers in [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer pp_unknown"},
    ]:
        for method, path in [("POST", "/jobs"), ("GET", "/jobs"), ("GET", f"/jobs/{uuid.uuid4()}")]:
            r = client.request(method, path, json=prune_spec if method == "POST" else None, headers=headers)
            assert r.status_code == 401, (headers, path)
            assert r.json()["error"]["type"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Bearer"


def test_a_bootstrap_key_from_the_settings_works(client, prune_spec):
    r = client.get("/jobs", headers={"Authorization": "Bearer bootstrap-secret"})
    assert r.status_code == 200


def test_apikey_create_prints_a_working_key_once_and_stores_only_its_hash(client, pg_url, capsys):
    name = f"ci-{uuid.uuid4().hex[:8]}"
    assert cli(["apikey", "create", name, "--owner", "team-a", "--database-url", pg_url]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("pp_") and len(secret) > 40
    with session_scope(pg_url) as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == name))
        assert row.owner == "team-a" and secret not in row.key_hash and len(row.key_hash) == 64
    assert client.get("/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert cli(["apikey", "create", name, "--database-url", pg_url]) == 2  # names are unique


def test_a_revoked_key_is_401(client, pg_url, capsys):
    name = f"ci-{uuid.uuid4().hex[:8]}"
    cli(["apikey", "create", name, "--database-url", pg_url])
    secret = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/jobs", headers=headers).status_code == 200
    assert cli(["apikey", "revoke", name, "--database-url", pg_url]) == 0
    r = client.get("/jobs", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert cli(["apikey", "revoke", "no-such-key", "--database-url", pg_url]) == 2


def test_another_owner_gets_404_for_every_route_of_a_job(client, auth, other_auth, prune_spec):
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    for method, path in [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("DELETE", ""),
        ("GET", "/artifacts"),
        ("GET", "/artifacts/report.json"),
    ]:
        r = client.request(method, f"/jobs/{job_id}{path}", headers=other_auth)
        assert r.status_code == 404, (method, path)
    assert client.get("/jobs", headers=other_auth).json()["items"] == []
    assert client.get(f"/jobs/{job_id}", headers=auth).json()["state"] == "queued"  # untouched


def test_serve_parses_host_port_and_workers():
    from ppruning.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "2"])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 9001, 2)
