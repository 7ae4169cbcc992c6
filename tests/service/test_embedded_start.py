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

