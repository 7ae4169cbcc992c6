"""The schema exists only through Alembic: a fresh PostgreSQL database upgrades, downgrades and upgrades again."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from jobs.store.migrate import downgrade, upgrade
from jobs.store.models import Base


def test_migrations_upgrade_a_fresh_database_and_downgrade_cleanly(pg_admin_url):
    name = f"ppruning_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        upgrade(url)
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert set(Base.metadata.tables) <= tables
            # the models and the migrations agree on every column
            for table in Base.metadata.sorted_tables:
                live = {c["name"] for c in inspect(conn).get_columns(table.name)}
                assert live == set(table.columns.keys()), table.name
        downgrade(url)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade(url)
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_db_upgrade_command_applies_migrations_to_the_embedded_sqlite(tmp_path):
    from ppruning.cli.main import main as cli

    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    assert cli(["db", "upgrade", "--database-url", url]) == 0
    engine = create_engine(url)
    with engine.connect() as conn:
        assert "jobs" in inspect(conn).get_table_names()
    engine.dispose()
