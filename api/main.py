"""The FastAPI application: routers, error handlers, body limit and request metrics.

:func:`create_app` builds one app bound to one settings object (its database, broker
and artifact store); ``ppruning serve`` runs :func:`app_factory` under uvicorn, tests
call ``create_app(Settings(database_url=pg_url, ...))``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry, Gauge, Histogram
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import bootstrap_hashes
from api.dashboard import pages as dashboard
from api.dashboard.session import SessionSigner
from api.errors import error_body, install_error_handlers
from api.event_hub import EventHub
from api.routes import artifacts, discovery, health, jobs
from jobs.artifacts import ArtifactStore, open_store
from jobs.kinds import declared, job_kinds
from jobs.queue import CeleryDispatcher, Dispatcher
from jobs.settings import Settings, get_settings
from jobs.spec_checks import warm_up
from jobs.store.session import get_engine, get_sessionmaker

DESCRIPTION = """Prune Hugging Face transformer models as jobs.

POST a job spec to `/jobs`, poll `/jobs/{id}`, download its artifacts from
`/jobs/{id}/artifacts/{name}`. Every request needs `Authorization: Bearer <key>`
(`ppruning apikey create NAME`). Errors share one shape:
`{"error": {"type": ..., "message": ..., "field": ...}}`.

Job kinds (`kind` of the spec):
"""


def describe_api() -> str:
    """The API's description, with one line per declared job kind."""
    return DESCRIPTION + "".join(f"\n- `{kind.name}`: {kind.summary}" for kind in declared()) + "\n"


class Telemetry:
    """Prometheus collectors of one app, in a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "ppruning_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.jobs = Gauge("ppruning_jobs", "Jobs in the database, by state.", ["state"], registry=self.registry)

    def set_job_counts(self, counts: dict[str, int]) -> None:
        for state, n in counts.items():
            self.jobs.labels(state=state).set(n)


class RequestMetrics:
    """Pure ASGI middleware timing every request under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.latency.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)


class BodySizeLimit:
    """413 for bodies over ``max_bytes``: by ``Content-Length`` up front, or counted as they stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; our handler shapes it.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        import json

        body = json.dumps(error_body("payload_too_large", self._message())).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _lazy_store(root_uri: str) -> Callable[[], ArtifactStore]:
    """Open the store on first use (an s3:// root makes a client), then reuse it."""
    lock = threading.Lock()
    holder: dict[str, ArtifactStore] = {}

    def get() -> ArtifactStore:
        with lock:
            if "store" not in holder:
                holder["store"] = open_store(root_uri)
            return holder["store"]

    return get


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI ``operationId``: its function's name, a verb and a noun (``submit_job``, ``list_jobs``),
    so generated clients get method names that read like the SDK's rather than ``submit_job_jobs_post``."""
    return route.name


def create_app(settings: Settings | None = None, *, dispatcher: Dispatcher | None = None) -> FastAPI:
    """An app bound to ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    app = FastAPIOffline(  # /docs and /redoc load their assets from this app: they work offline
        title="P-pruning service",
        generate_unique_id_function=operation_id,
        version=_version(),
        description=describe_api(),
        openapi_tags=[
            {"name": "jobs", "description": "Submit and follow pruning and fine-tuning jobs."},
            {"name": "artifacts", "description": "Download what a job produced."},
            {"name": "health", "description": "Liveness, readiness, metrics."},
        ],
    )
    telemetry = Telemetry()
    warm_up()
    app.state.settings = settings
    app.state.sessionmaker = get_sessionmaker(settings.database_url)
    app.state.read_sessionmaker = sessionmaker(
        bind=get_engine(settings.database_url).execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
    )
    app.state.dispatcher = dispatcher or CeleryDispatcher(settings.broker_url)
    app.state.bootstrap_keys = bootstrap_hashes(settings.api_keys)
    app.state.store = _lazy_store(settings.artifact_root)
    app.state.telemetry = telemetry
    app.state.event_hub = EventHub(
        app.state.read_sessionmaker,
        poll_s=settings.event_poll_s,
        max_streams=settings.max_event_streams,
        max_per_owner=settings.max_event_streams_per_owner,
    )

    app.include_router(jobs.router)
    app.include_router(artifacts.router)
    app.include_router(health.router)
    app.include_router(discovery.router)
    app.state.dashboard_signer = SessionSigner(settings.dashboard_secret, settings.dashboard_session_s)
    app.include_router(dashboard.router)
    app.mount("/ui/static", StaticFiles(directory=dashboard.STATIC), name="dashboard-static")
    install_error_handlers(app, set(job_kinds()))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, telemetry=telemetry)  # outermost: times everything, 413s included
    return app


def _version() -> str:
    from ppruning import __version__

    return __version__


def app_factory() -> Any:
    """Entry point for ``uvicorn --factory api.main:app_factory`` (``ppruning serve``)."""
    return create_app()
