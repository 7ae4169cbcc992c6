"""Liveness, readiness and Prometheus metrics; no API key needed.

``/healthz`` says the process serves requests: it runs on the event loop itself, never
waiting for a thread or a database connection, so a saturated pool cannot make a live
process look dead. ``/readyz`` says it can do its job: the database answers with its
schema at the newest migration, and the broker accepts connections (503 otherwise, naming
which, but never where: the answer needs no key, so hosts, ports and drivers' messages go
to the log only).
``/metrics`` is Prometheus text: jobs by state (read from the database at scrape time)
and request latency by route (per process: with several uvicorn workers each scrape
sees the worker that answered it). The job counts cover every owner, so with
``PPRUNING_METRICS_TOKEN`` set a scrape must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import DispatcherDep, SessionDep, SettingsDep
from api.errors import ServiceUnavailable, Unauthorized
from api.schemas import ErrorOut
from jobs.store import repository
from jobs.store.migrate import schema_status

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def check_health() -> dict[str, str]:
    return {"status": "ok"}


def _unreachable(name: str, exc: Exception) -> str:
    """What ``/readyz`` says about a failing dependency: its exception's type, not its message
    (a driver's message names the host and port); the log has the full story."""
    log.warning("readiness: %s check failed: %s: %s", name, type(exc).__name__, exc)
    return f"unreachable ({type(exc).__name__})"


@router.get("/readyz", summary="Database and broker reachable", responses={503: {"model": ErrorOut}})
def check_ready(session: SessionDep, dispatcher: DispatcherDep) -> dict[str, object]:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = schema_status(session.get_bind()) or "ok"
    except Exception as exc:
        checks["database"] = _unreachable("database", exc)
    try:
        dispatcher.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = _unreachable("broker", exc)
    failing = {name: why for name, why in checks.items() if why != "ok"}
    if failing:
        raise ServiceUnavailable(
            "not ready: " + "; ".join(f"{name}: {why}" for name, why in failing.items()), type="not_ready"
        )
    return {"status": "ready", "checks": checks}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={401: {"model": ErrorOut, "description": "PPRUNING_METRICS_TOKEN is set and was not given."}},
)
def get_metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Open unless the operator set `PPRUNING_METRICS_TOKEN`; then `Authorization: Bearer <token>`."""
    if settings.metrics_token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.metrics_token}".encode()):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <PPRUNING_METRICS_TOKEN>'")
    telemetry = request.app.state.telemetry
    telemetry.set_job_counts(repository.count_jobs_by_state(session))
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
