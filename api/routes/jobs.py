"""``/jobs``: submit, list, read, follow, cancel and delete jobs.

Routes stay thin: validate (pydantic, then the kind's checks: :func:`jobs.kinds.checked_spec`),
call repository functions, commit once, and only then talk to the broker. Cancel and delete
are the job layer's (:mod:`jobs.lifecycle`), which also reaches the artifact store.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api import sse
from api.deps import CurrentOwner, DispatcherDep, SessionDep, SettingsDep, StoreDep, revocable_caller_hash
from api.errors import NotFound, ServiceUnavailable, TooManyJobs
from api.event_hub import EventHub, TooManyStreams
from api.schemas import (
    VALIDATION_RESPONSE,
    ArtifactOut,
    ErrorOut,
    EventOut,
    EventPage,
    JobError,
    JobOut,
    JobPage,
    JobSummary,
)
from jobs import lifecycle, sweeps
from jobs.errors import InvalidSpec
from jobs.kinds import checked_spec, declared, kind_enum, openapi_examples, parse_spec, parse_submitted, spec_union
from jobs.queue import queue_for, queued_message
from jobs.settings import Settings
from jobs.specs import SweepJobSpec
from jobs.store import repository
from jobs.store.models import Artifact, Job, Metric
from jobs.store.states import JobState

log = logging.getLogger(__name__)

#: The request body of ``POST /jobs`` and the ``kind`` filter of ``GET /jobs``: every declared job kind.
JobSpec = spec_union()
JobKind = kind_enum()

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=VALIDATION_RESPONSE)

_ERRORS = {
    401: {"model": ErrorOut, "description": "No key, an unknown key or a revoked key."},
    404: {"model": ErrorOut, "description": "No such job for this key's owner."},
}
_SUBMIT_ERRORS = {
    400: {"model": ErrorOut, "description": "The body is not JSON."},
    401: _ERRORS[401],
    409: {
        "model": ErrorOut,
        "description": "The Idempotency-Key was used with another body (`idempotency_conflict`), or the job it "
        "created was deleted (`idempotency_key_deleted`): send the request with a new key.",
    },
    413: {"model": ErrorOut, "description": "The body is larger than the service accepts."},
    422: {"model": ErrorOut, "description": "The spec is invalid; `field` names the input at fault."},
    429: {
        "model": ErrorOut,
        "description": "The owner has as many queued or running jobs as the service allows; retry after "
        "`Retry-After` seconds.",
    },
    503: {"model": ErrorOut, "description": "The broker refused the job; it was marked failed."},
}


# --------------------------------------------------------------------------- views


def job_url(request: Request, job_id: uuid.UUID) -> str:
    """The job's absolute URL from ``PPRUNING_BASE_URL``: the ``Host`` header is the client's to forge."""
    return f"{request.app.state.settings.base_url.rstrip('/')}/jobs/{job_id}"


def spec_summary(spec: dict) -> dict:
    """What a list shows of a spec: model id, method, the target(s) set (none where the kind has no such field)."""
    model = spec.get("model")
    target = spec.get("target")
    if isinstance(spec.get("targets"), dict):  # a sweep: {"flops_reduction": [0.2, 0.3]} -> its range's ends
        name, values = next(((k, v) for k, v in spec["targets"].items() if isinstance(v, list) and v), (None, None))
        target = {f"{name}_min": min(values), f"{name}_max": max(values)} if name else None
    return {
        "model": model.get("id") if isinstance(model, dict) else None,
        "method": spec.get("method") if isinstance(spec.get("method"), str) else None,
        "target": {k: v for k, v in target.items() if isinstance(v, int | float)} if isinstance(target, dict) else None,
    }


def summary_fields(job: Job, request: Request) -> dict:
    return {
        "id": job.id,
        "url": job_url(request, job.id),
        "kind": job.kind,
        "parent_id": job.parent_id,
        **spec_summary(job.spec or {}),
        "state": job.state,
        "stage": job.stage,
        "progress": job.progress,
        "message": job.message,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def job_view(
    job: Job, request: Request, artifacts: list[Artifact] | None = None, metrics: list[Metric] | None = None
) -> JobOut:
    base = job_url(request, job.id)
    artifacts = job.artifacts if artifacts is None else artifacts
    metrics = job.metrics if metrics is None else metrics
    error = None
    if job.error_type or job.error_message:
        error = JobError(type=job.error_type, message=job.error_message)
    return JobOut(
        **summary_fields(job, request),
        spec=job.spec,
        attempts=job.attempts,
        worker=job.worker,
        error=error,
        metrics=repository.metrics_by_split(metrics),
        artifacts=[ArtifactOut.of(a, base) for a in artifacts],
        result=job.result,
        artifacts_expired_at=job.artifacts_expired_at,
    )


def owned_job(session: SessionDep, owner: str, job_id: uuid.UUID, *, details: bool = False) -> Job:
    job = repository.get_job(session, job_id, owner, details=details)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def strict_spec(request: Request) -> JobSpec | None:
    """The body read again, strictly (:func:`jobs.kinds.parse_submitted`): ``"0.3"`` is no number.

    The ``spec`` parameter keeps the schema and the examples in OpenAPI; FastAPI validates it
    laxly, so this runs first and its errors win. An empty body is left to FastAPI's 422.
    """
    body = await request.body()
    if not body.strip():
        return None
    try:
        return parse_submitted(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


# --------------------------------------------------------------------------- routes


#: POST /jobs's description: what it does, then every declared job kind (the spec's ``kind``).
SUBMIT_DESCRIPTION = (
    "Validate the spec, store the job as `queued`, then send its id to the workers. The row is committed "
    "before the message is sent; if the broker refuses the message, the job is marked `failed` with the "
    "reason and the response is 503.\n\nJob kinds (`kind` of the spec):\n"
    + "".join(f"\n- `{kind.name}`: {kind.summary}" for kind in declared())
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=_SUBMIT_ERRORS,
    summary="Submit a job",
    description=SUBMIT_DESCRIPTION,
)
def submit_job(
    request: Request,
    response: Response,
    spec: Annotated[JobSpec, Body(openapi_examples=openapi_examples())],
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Same key and same body: the same job comes back. Same key, other body: 409. "
            "A key whose job was deleted: 409, never a second run.",
        ),
    ] = None,
    strict: Annotated[JobSpec | None, Depends(strict_spec)] = None,
) -> JobOut:
    """Validate the spec, store the job as `queued`, then send its id to the workers.

    The row is committed before the message is sent; if the broker refuses the message,
    the job is marked `failed` with the reason and the response is 503.
    """
    spec = strict or spec
    body_hash = repository.request_hash(spec.model_dump(mode="json"))
    if idempotency_key is not None:
        existing = repository.find_by_idempotency_key(session, owner, idempotency_key)
        if existing is not None:
            return _replayed(existing, idempotency_key, body_hash, request, response)
    _check_owner_limits(session, owner, settings, spec)
    stored = checked_spec(spec, settings, session, owner)
    job, created = repository.create_job(
        session, owner=owner, kind=spec.kind, spec=stored, idempotency_key=idempotency_key, body_hash=body_hash
    )
    if not created:  # a concurrent request with the same key won the insert
        return _replayed(job, idempotency_key or "", body_hash, request, response)
    queue = queue_for(stored)
    repository.add_event(session, job.id, queued_message(queue, stored, settings.device))
    session.commit()
    try:
        dispatcher.send(job.id, queue)
    except Exception as exc:  # the broker is down or refused: never leave the job silently queued
        _fail_undispatched(session, job, exc)
        raise ServiceUnavailable(
            f"the job {job.id} was stored but could not be sent to the workers ({_broker_failure(exc)}); "
            "it is marked failed, submit it again later",
            type="dispatch_failed",
            headers={"Location": job_url(request, job.id), "Retry-After": str(settings.unavailable_retry_after_s)},
        ) from None
    response.headers["Location"] = job_url(request, job.id)
    return job_view(job, request, artifacts=[], metrics=[])


def queued_places(spec: JobSpec | dict) -> int:
    """The queued jobs a submission makes: one, and a sweep one more per target (its children)."""
    if isinstance(spec, dict):
        spec = parse_spec(spec)
    return 1 + len(spec.targets.values) if isinstance(spec, SweepJobSpec) else 1


def _check_owner_limits(session: SessionDep, owner: str, settings: Settings, spec: JobSpec) -> None:
    """429 past the per-owner queued limit (a replayed request never counts: it creates nothing).

    A sweep counts as itself and its children, and so does a queued sweep whose children the
    worker has not made yet. The running limit is no submission check: it caps how many of an
    owner's jobs the workers run at once (:mod:`jobs.store.owner_slots`); the rest wait queued.
    """
    limit = settings.max_queued_jobs_per_owner
    if not limit:
        return
    adding = queued_places(spec)
    if adding > limit:
        raise InvalidSpec(
            f"targets: this sweep makes {adding} jobs (itself and one per target), more than the "
            f"{limit} queued jobs an owner may have (PPRUNING_MAX_QUEUED_JOBS_PER_OWNER); sweep fewer targets",
            field="targets",
        )
    queued = repository.count_owner_jobs(session, owner)[JobState.QUEUED.value]
    queued += sum(queued_places(s) - 1 for s in sweeps.queued_sweep_specs(session, owner))
    if queued + adding > limit:
        raise TooManyJobs(
            f"this key's owner has {queued} queued jobs (a sweep counts its children) and this one makes "
            f"{adding}, past the most the service allows (PPRUNING_MAX_QUEUED_JOBS_PER_OWNER={limit}); "
            "retry when some have started",
            headers={"Retry-After": str(settings.limit_retry_after_s)},
        )


def _replayed(job: Job, key: str, body_hash: str, request: Request, response: Response) -> JobOut:
    if job.request_hash != body_hash:
        raise repository.IdempotencyConflict(key, job.id)
    response.headers["Location"] = job_url(request, job.id)
    response.headers["Idempotent-Replayed"] = "true"
    return job_view(job, request)


def _broker_failure(exc: Exception) -> str:
    """The broker's failure in words a client may read: its type, never the driver's message
    (which names the broker's host and port); the log keeps the message."""
    return f"the broker did not take the message: {type(exc).__name__}"


def _fail_undispatched(session: SessionDep, job: Job, exc: Exception) -> None:
    log.error("could not send job %s to the broker: %s: %s", job.id, type(exc).__name__, exc)
    reason = f"could not send the job to the workers ({_broker_failure(exc)})"
    session.rollback()
    session.refresh(job)
    if job.state == JobState.QUEUED.value:
        repository.transition(
            session, job, JobState.FAILED, error_type="dispatch_failed", error_message=reason, message=reason
        )
        repository.add_event(session, job.id, reason, level="error")
        session.commit()


@router.get("", response_model=JobPage, responses={401: _ERRORS[401], 422: {"model": ErrorOut}}, summary="List jobs")
def list_jobs(
    request: Request,
    session: SessionDep,
    owner: CurrentOwner,
    state: Annotated[list[JobState] | None, Query(description="Filter; repeat for several.")] = None,
    kind: Annotated[list[JobKind] | None, Query(description="Filter; repeat for several.")] = None,
    parent: Annotated[uuid.UUID | None, Query(description="Only the children of this sweep.")] = None,
    model: Annotated[list[str] | None, Query(description="The spec's `model.id`, exactly; repeat for several.")] = None,
    method: Annotated[list[str] | None, Query(description="The pruning method; repeat for several.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> JobPage:
    """The owner's jobs, newest first."""
    page = repository.list_jobs(
        session,
        owner,
        states=[s.value for s in state or ()],
        kinds=[k.value for k in kind or ()],
        parent_id=parent,
        models=model or (),
        methods=method or (),
        limit=limit,
        cursor=cursor,
    )
    return JobPage(
        items=[JobSummary(**summary_fields(job, request)) for job in page.items], next_cursor=page.next_cursor
    )


@router.get("/{job_id}", response_model=JobOut, responses=_ERRORS, summary="Read a job")
def get_job(request: Request, job_id: uuid.UUID, session: SessionDep, owner: CurrentOwner) -> JobOut:
    """State, stage, progress, timestamps, metrics, error and artifacts (with size and sha256)."""
    return job_view(owned_job(session, owner, job_id, details=True), request)


@router.get(
    "/{job_id}/events",
    response_model=EventPage,
    responses={
        **_ERRORS,
        200: {
            "description": "JSON pages; with `Accept: text/event-stream`, a live Server-Sent Events stream.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        429: {
            "model": ErrorOut,
            "description": "Streams only: the owner (or the service) has as many streams open as allowed "
            "(`too_many_streams`); retry after `Retry-After` seconds, or poll.",
        },
    },
    summary="A job's log, as pages or live (SSE)",
)
def list_job_events(
    request: Request,
    job_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    after: Annotated[int, Query(ge=0, le=sse.MAX_EVENT_ID, description="Only events with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=32, description="SSE: resume after this event id.")
    ] = None,
) -> Response | EventPage:
    """Events in id order. `Accept: text/event-stream` streams them as they happen (see `api.sse`):
    `id` = event id, `event` = `data.type` or `log`, keep-alive comments, and a final `end`
    event with the job's state once it has finished. Open streams are bounded per owner and
    in total (429 with `Retry-After` past them); a stream whose key is revoked ends with `event: error`."""
    owned_job(session, owner, job_id)
    if sse.wants_stream(request.headers.get("accept")):
        return _open_stream(request, session, owner, job_id, sse.parse_last_event_id(last_event_id, after), settings)
    events = repository.list_events(session, job_id, after=after, limit=limit)
    return EventPage(
        items=[
            EventOut(id=e.id, created_at=e.created_at, level=e.level, stage=e.stage, message=e.message, data=e.data)
            for e in events
        ],
        next_after=events[-1].id if events else None,
    )


def _open_stream(
    request: Request, session: SessionDep, owner: str, job_id: uuid.UUID, after: int, settings: Settings
) -> Response:
    """The live stream: within the bounds (429 past them), holding no database session (the hub reads for it)."""
    hub: EventHub = request.app.state.event_hub
    try:
        hub.check_room(owner)
    except TooManyStreams as exc:
        raise TooManyJobs(
            str(exc), type="too_many_streams", headers={"Retry-After": str(settings.limit_retry_after_s)}
        ) from None
    key_hash = revocable_caller_hash(request)
    session.close()  # the request's session would otherwise stay checked out for the stream's whole life
    return sse.event_stream(hub, job_id, owner, key_hash, after)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={
        **_ERRORS,
        202: {"model": JobOut, "description": "Running: the worker stops at its next checkpoint."},
        409: {"model": ErrorOut, "description": "The job has already finished."},
    },
    summary="Cancel a job",
)
def cancel_job(
    request: Request,
    response: Response,
    job_id: uuid.UUID,
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    store: StoreDep,
) -> JobOut:
    """Queued: cancelled at once (200). Running: flagged for the worker (202). Finished: 409.

    A sweep takes its children with it: queued ones at once, running ones by their flag;
    the sweep itself ends `cancelled` when the last of them has stopped. A job cancelled
    here, while queued, may hold the resume state of an earlier attempt; it goes too
    (a running job's worker deletes its own when it stops).
    """
    job = owned_job(session, owner, job_id, details=True)
    lifecycle.cancel_job(session, store, job, retry_s=settings.removal_retry_s)
    if job.state == JobState.RUNNING.value:
        response.status_code = status.HTTP_202_ACCEPTED
    return job_view(job, request)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 409: {"model": ErrorOut, "description": "The job has not finished; cancel it first."}},
    summary="Delete a job and its artifacts",
)
def delete_job(
    job_id: uuid.UUID, session: SessionDep, owner: CurrentOwner, settings: SettingsDep, store: StoreDep
) -> Response:
    """Finished jobs only. The rows go at once; the stored files go now or, when the store fails,
    as soon as it works again (the workers retry until they are gone)."""
    job = owned_job(session, owner, job_id)
    lifecycle.delete_job(session, store, job, retry_s=settings.removal_retry_s)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
