"""The ground every other test stands on: settings, migrations, the state machine, fixtures."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from jobs.settings import Settings
from jobs.store.migrate import downgrade, upgrade
from jobs.store.states import TERMINAL, IllegalTransition, JobState, can_transition, check_transition


def test_settings_default_to_the_embedded_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("PPRUNING_DATABASE_URL", raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'ppruning.db'}"
    assert s.broker_url.startswith("sqla+sqlite:///")
    assert s.artifact_root == (tmp_path.resolve() / "artifacts").as_uri()
    assert s.embedded


def test_settings_read_the_prefixed_environment(monkeypatch):
    monkeypatch.setenv("PPRUNING_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("PPRUNING_BROKER_URL", "redis://h:6379/0")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.broker_url == "redis://h:6379/0"
    assert not s.embedded


def test_terminal_states_have_no_way_out():
    assert TERMINAL == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    for state in TERMINAL:
        with pytest.raises(IllegalTransition):
            check_transition(state, JobState.RUNNING)


def test_a_running_attempt_may_be_requeued_but_a_queued_job_cannot_succeed():
    assert can_transition("running", "queued")
    assert not can_transition("queued", "succeeded")


def test_migrations_create_every_table_on_postgres(pg_url, db_session):
    tables = set(inspect(db_session.connection()).get_table_names())
    assert {"jobs", "artifacts", "metrics", "job_events", "api_keys", "alembic_version"} <= tables


def test_migrations_downgrade_and_upgrade_cleanly_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    downgrade(url)
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert "jobs" not in names
    upgrade(url)
    engine.dispose()


def test_redis_fixture_gives_a_private_database(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    assert client.get("k") == b"v"


def test_tiny_models_load_through_from_pretrained(tiny_bert_path, tiny_gpt2_path, tiny_llama_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    for path in (tiny_bert_path, tiny_gpt2_path, tiny_llama_path):
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        batch = tok(["the movie was great", "a bad plot"], padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**batch)
        assert out.last_hidden_state.shape[0] == 2


def test_real_minilm_weights_are_available_offline(minilm_path):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(minilm_path)
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.num_attention_heads) == ("bert", 6, 12)
