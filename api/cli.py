"""Service commands of the ``ppruning`` CLI: ``db upgrade``/``db downgrade``.

Registered through the ``ppruning.cli`` entry point so the library never imports the service.
"""

from __future__ import annotations

import argparse


def _db_upgrade(args: argparse.Namespace) -> int:
    from api.db.migrate import upgrade
    from api.settings import get_settings

    url = args.database_url or get_settings().database_url
    upgrade(url, args.revision)
    print(f"database at {_redact(url)} is at revision {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from api.db.migrate import downgrade
    from api.settings import get_settings

    url = args.database_url or get_settings().database_url
    downgrade(url, args.revision)
    print(f"database at {_redact(url)} downgraded to {args.revision}")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="Manage the job database schema (Alembic migrations).")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="Apply migrations (default: to the newest).")
    up.add_argument("revision", nargs="?", default="head")
    up.add_argument("--database-url", help="Override PPRUNING_DATABASE_URL.")
    up.set_defaults(func=_db_upgrade)
    down = db_sub.add_parser("downgrade", help="Revert migrations (default: all of them).")
    down.add_argument("revision", nargs="?", default="base")
    down.add_argument("--database-url", help="Override PPRUNING_DATABASE_URL.")
    down.set_defaults(func=_db_downgrade)
