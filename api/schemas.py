"""The API's response bodies (the job specs themselves live in :mod:`jobs.specs`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, Field


def _as_utc(value: datetime) -> datetime:
    """Every stored time is UTC; SQLite gives them back without a zone, PostgreSQL with one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A time in a response: always UTC and written with ``Z``, whichever database stored it
#: (a POST's reply and a later GET of the same job read the same).
UtcTime = Annotated[datetime, AfterValidator(_as_utc)]

# --------------------------------------------------------------------------- responses


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class JobError(BaseModel):
    type: str | None
    message: str | None


class ArtifactOut(BaseModel):
    name: str
    kind: str
    size: int
    sha256: str
    url: str
    created_at: UtcTime
    meta: dict[str, Any] | None = Field(
        default=None, description="Provenance: the job's record.json digest, model revision, seed, git revision."
    )

    @classmethod
    def of(cls, artifact: Any, job_url: str) -> ArtifactOut:
        """The response body of an ``jobs.store.models.Artifact`` row of the job at ``job_url``."""
        return cls(
            name=artifact.name,
            kind=artifact.kind,
            size=artifact.size,
            sha256=artifact.sha256,
            url=f"{job_url}/artifacts/{quote(artifact.name)}",
            created_at=artifact.created_at,
            meta=artifact.meta,
        )


class JobSummary(BaseModel):
    id: uuid.UUID
    url: str
    kind: str
    parent_id: uuid.UUID | None = Field(default=None, description="The sweep this job is a child of.")
    state: str
    model: str | None = Field(default=None, description="The spec's `model.id` (a finetune from a job: none).")
    method: str | None = Field(default=None, description="The spec's pruning method, where it has one.")
    target: dict[str, float] | None = Field(
        default=None, description="The spec's target (a sweep: its targets' name and first value)."
    )
    stage: str | None
    progress: float
    message: str | None
    cancel_requested: bool
    created_at: UtcTime
    updated_at: UtcTime
    started_at: UtcTime | None
    finished_at: UtcTime | None


class JobOut(JobSummary):
    spec: dict[str, Any]
    attempts: int
    worker: str | None
    error: JobError | None
    metrics: dict[str, dict[str, float]] = Field(description="split -> metric -> value")
    artifacts: list[ArtifactOut]
    result: dict[str, Any] | None
    artifacts_expired_at: UtcTime | None = Field(
        default=None, description="When the retention period deleted this job's artifacts (the job stays)."
    )


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class EventOut(BaseModel):
    id: int
    created_at: UtcTime
    level: str
    stage: str | None
    message: str
    data: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(description="Pass as ?after= to read newer events; null when none were returned.")


#: The 422 every route with parameters can answer, in the service's error shape (not FastAPI's default).
VALIDATION_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "A path, query or body value is invalid; `field` names it."}
}
