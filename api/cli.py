"""Service commands of the ``ppruning`` CLI: ``db upgrade|downgrade``, ``serve``, ``apikey create|revoke``.

Registered through the ``ppruning.cli`` entry points (one per command, each needing the
``service`` extra) so the library never imports the service.
"""

from __future__ import annotations

import argparse
import os
import sys


def _db_upgrade(args: argparse.Namespace) -> int:
    from jobs.settings import get_settings
    from jobs.store.migrate import upgrade

    url = args.database_url or get_settings().database_url
    upgrade(url, args.revision)
    print(f"database at {_redact(url)} is at revision {args.revision}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from jobs.settings import get_settings
    from jobs.store.migrate import downgrade

    url = args.database_url or get_settings().database_url
    downgrade(url, args.revision)
    print(f"database at {_redact(url)} downgraded to {args.revision}")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(sub: argparse._SubParsersAction) -> None:
    """All the service commands at once: ``serve``, ``apikey`` and ``db``."""
    register_serve(sub)
    register_apikey(sub)
    register_db(sub)


def register_db(sub: argparse._SubParsersAction) -> None:
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


# --------------------------------------------------------------------------- serve, apikey


#: Bind addresses that name no host a client could reach; job URLs name the loopback instead.
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def served_base_url(host: str, port: int) -> str:
    """The URL of the API ``serve`` runs on ``host``:``port``, as a client on this machine reaches it."""
    name = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    if ":" in name:  # an IPv6 literal
        name = f"[{name}]"
    return f"http://{name}:{port}"


def _follow_served_address(args: argparse.Namespace) -> None:
    """Job URLs name the port actually served, unless ``PPRUNING_BASE_URL`` says where clients reach the API.

    The setting is the operator's (a proxy, a public name); left unset, its default's port 8000
    would send every client of ``serve --port 8765`` to the wrong place. The uvicorn workers
    read settings from the environment, so the derived value goes there.
    """
    from jobs.settings import get_settings, settings_or_exit

    if "base_url" in settings_or_exit().model_fields_set:
        return
    os.environ["PPRUNING_BASE_URL"] = served_base_url(args.host, args.port)
    get_settings.cache_clear()


#: Seconds an idle keep-alive connection stays open. Above the clients' own idle expiry (httpx
#: drops a pooled connection after 5 s, uvicorn's default): when both are 5 s, a client can send a
#: request on a connection the server is closing that instant and get "Server disconnected
#: without sending a response". Load balancers in front should idle out sooner still.
KEEP_ALIVE_S = 75


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jobs.settings import settings_or_exit
    from jobs.store.migrate import prepare_embedded

    _follow_served_address(args)
    prepare_embedded(settings_or_exit())  # a bad setting stops here with one line, not in every request

    uvicorn.run(
        "api.main:app_factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return 0


def _apikey_create(args: argparse.Namespace) -> int:
    from api.auth import new_secret
    from jobs.settings import get_settings
    from jobs.store import keys
    from jobs.store.migrate import upgrade
    from jobs.store.session import session_scope

    secret = new_secret()
    url = args.database_url or get_settings().database_url
    if url.startswith("sqlite"):  # the embedded database may not exist yet
        upgrade(url)
    with session_scope(url) as session:
        if keys.find_api_key_by_name(session, args.name) is not None:
            print(f"ppruning: an API key named {args.name!r} exists already", file=sys.stderr)
            return 2
        keys.create_api_key(session, args.name, args.owner or args.name, secret)
    print(secret)
    print(f"key {args.name!r} for owner {args.owner or args.name!r}; shown once, store it now", file=sys.stderr)
    return 0


def _apikey_revoke(args: argparse.Namespace) -> int:
    from jobs.settings import get_settings
    from jobs.store import keys
    from jobs.store.session import session_scope

    with session_scope(args.database_url or get_settings().database_url) as session:
        key = keys.revoke_api_key(session, args.name)
    if key is None:
        print(f"ppruning: no API key named {args.name!r}", file=sys.stderr)
        return 2
    print(f"key {args.name!r} revoked")
    return 0


def register_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="Run the REST service (uvicorn).",
        description="Run the REST service. Job URLs in responses name --host and --port unless "
        "PPRUNING_BASE_URL is set (set it when clients reach the API through another address).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 listens on every interface")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes.")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true")
    serve.set_defaults(func=_serve)


def register_apikey(sub: argparse._SubParsersAction) -> None:
    key = sub.add_parser("apikey", help="Create or revoke API keys.")
    key_sub = key.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="Create a key and print it once.")
    create.add_argument("name", help="A unique name for the key (used to revoke it).")
    create.add_argument("--owner", help="Whose jobs the key sees (default: the name).")
    create.add_argument("--database-url", help="Override PPRUNING_DATABASE_URL.")
    create.set_defaults(func=_apikey_create)
    revoke = key_sub.add_parser("revoke", help="Revoke a key; requests with it get 401 from then on.")
    revoke.add_argument("name")
    revoke.add_argument("--database-url", help="Override PPRUNING_DATABASE_URL.")
    revoke.set_defaults(func=_apikey_revoke)
