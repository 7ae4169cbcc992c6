"""Newcomer paths of the embedded mode: no setup step, and readiness that tells the truth about the schema."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from api.main import create_app
from jobs.queue import CeleryDispatcher
from jobs.settings import Settings
from jobs.store.migrate import prepare_embedded, upgrade
from tests.service.conftest import RecordingDispatcher


def test_readyz_is_not_ready_while_the_schema_is_behind_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    settings = Settings(data_dir=tmp_path, database_url=url, artifact_root=(tmp_path / "a").as_uri())
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher()), raise_server_exceptions=False) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and "ppruning db upgrade" in r.json()["error"]["message"]
        upgrade(url)
        assert client.get("/readyz").status_code == 200


def test_the_embedded_mode_makes_its_folder_and_schema_on_start(tmp_path):
    settings = Settings(data_dir=tmp_path / "not-yet" / "data")
    prepare_embedded(settings)
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        assert "jobs" in inspect(conn).get_table_names()
    engine.dispose()


def test_db_upgrade_and_apikey_create_work_with_a_data_dir_that_does_not_exist_yet(tmp_path, capsys):
    from ppruning.cli.main import main as cli

    url = f"sqlite:///{tmp_path / 'missing' / 'ppruning.db'}"
    assert cli(["db", "upgrade", "--database-url", url]) == 0
    other = f"sqlite:///{tmp_path / 'other' / 'ppruning.db'}"
    assert cli(["apikey", "create", "ci", "--database-url", other]) == 0
    assert capsys.readouterr().out.strip()


def test_the_embedded_broker_works_when_its_folder_does_not_exist_yet(tmp_path):
    dispatcher = CeleryDispatcher(f"sqla+sqlite:///{tmp_path / 'absent' / 'broker.db'}")
    try:
        dispatcher.send(uuid.uuid4(), "cpu")
    finally:
        dispatcher.close()


def test_serve_on_another_port_names_that_port_in_job_urls(tmp_path, tiny_bert_path):
    """``ppruning serve --port P`` with no PPRUNING_BASE_URL: the job's URL and Location name port P."""
    import json
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.support.served import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PPRUNING_")}
    env.update(
        PPRUNING_DATA_DIR=str(tmp_path / "data"),
        PPRUNING_API_KEYS=json.dumps(["me:secret"]),
        PPRUNING_ALLOWED_MODEL_ROOTS=json.dumps([str(tiny_bert_path)]),
    )
    serve = [sys.executable, "-m", "ppruning.cli.main", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(serve, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.3)
        spec = {"kind": "prune", "model": {"id": str(tiny_bert_path)}, "task": {"name": "sst2"},
                "target": {"flops_reduction": 0.3}}  # fmt: skip
        r = httpx.post(f"{base}/jobs", json=spec, headers={"Authorization": "Bearer secret"}, timeout=30)
        assert r.status_code == 202, r.text
        assert r.json()["url"].startswith(f"{base}/jobs/"), r.json()["url"]
        assert r.headers["location"].startswith(f"{base}/jobs/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_cpu_only_deployment_answers_in_utc_names_its_device_and_lists_every_kind(tmp_path, tiny_bert_path):
    """The small things a newcomer reads first: one time format in POST and GET replies (SQLite
    returns times without a zone), the device a job will run on in its first event (not a
    'gpu' queue on a machine without one), every job kind in the OpenAPI document, and a
    sweep that takes the same 'sampling' block as a prune."""
    from jobs.kinds import job_kinds

    settings = Settings(data_dir=tmp_path, api_keys=["me:secret"], device="cpu", allowed_model_roots=[tiny_bert_path])
    prepare_embedded(settings)
    auth = {"Authorization": "Bearer secret"}
    spec = {"kind": "prune", "model": {"id": str(tiny_bert_path)}, "task": {"name": "sst2"},
            "target": {"flops_reduction": 0.3}, "sampling": {"max_instances": 8}}  # fmt: skip
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher()), raise_server_exceptions=False) as client:
        posted = client.post("/jobs", json=spec, headers=auth)
        assert posted.status_code == 202, posted.text
        got = client.get(f"/jobs/{posted.json()['id']}", headers=auth).json()
        for key in ("created_at", "updated_at"):
            assert posted.json()[key].endswith("Z") and got[key] == posted.json()[key], (posted.json(), got)
        events = client.get(f"/jobs/{got['id']}/events", headers=auth).json()["items"]
        assert events[0]["created_at"].endswith("Z")
        assert "on cpu" in events[0]["message"] and "queued on 'gpu'" not in events[0]["message"], events[0]

        sweep = {**spec, "kind": "sweep", "targets": {"flops_reduction": [0.2, 0.3]}, "measure": False}
        del sweep["target"]
        r = client.post("/jobs", json=sweep, headers=auth)
        assert r.status_code == 202, r.text
        assert r.json()["spec"]["sampling"]["max_instances"] == 8

        document = client.get("/openapi.json").json()
        submit = document["paths"]["/jobs"]["post"]["description"]
        for kind in job_kinds():
            assert f"`{kind}`" in document["info"]["description"] and f"`{kind}`" in submit, kind
