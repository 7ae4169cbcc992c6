"""Apply Alembic migrations programmatically (``ppruning db upgrade``, tests, prestart)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from jobs.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def make_sqlite_parent(url: str) -> None:
    """A SQLite file's folder must exist before SQLite can create the file ("unable to open database file")."""
    if url.startswith(("sqlite", "sqla+sqlite")):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(database_url: str, revision: str = "head") -> None:
    make_sqlite_parent(database_url)
    command.upgrade(alembic_config(database_url), revision)


def schema_status(engine: Engine) -> str | None:
    """None when the database is at the newest migration, else what is wrong, in one line."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return None
    found = f"at revision {current}" if current else "not migrated"
    return f"the schema is {found}, the code needs {head}: run 'ppruning db upgrade'"


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)



def prepare_embedded(settings: Settings) -> None:
    """The embedded mode needs no setup step: its folder is made and its SQLite schema migrated on start.

    A server database (PostgreSQL) is left to ``ppruning db upgrade``; ``/readyz`` says when it is behind.
    """
    make_sqlite_parent(settings.broker_url)
    if settings.embedded:
        upgrade(settings.database_url)
