"""A job's events as Server-Sent Events: ``GET /jobs/{id}/events`` with ``Accept: text/event-stream``.

Each event is ``id: <JobEvent.id>``, ``event: <type>`` and ``data: <the JSON listing's
item>``. The type is the event's ``data.type`` ('stage', 'progress', ...) or 'log'. The
stream starts after ``Last-Event-ID`` (a reconnecting client sends it) or ``?after=``,
sends a ``: keep-alive`` comment when nothing happened for ``keepalive_s``, and ends
with ``event: end`` (``data``: the job's state, error and progress) once the job is
finished and every event before that has been sent: a client that reconnects after the
end gets the remaining events, if any, and the end again.

The database is polled every ``poll_s`` with a fresh autocommit session per poll, in a
worker thread, so no transaction stays open and the event loop never blocks. The job's
state is read before its events, so the events committed with the final state are in
the last batch.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.schemas import EventOut
from jobs.store import repository
from jobs.store.models import JobEvent
from jobs.store.states import TERMINAL, JobState

MEDIA_TYPE = "text/event-stream"
BATCH = 500


def wants_stream(accept: str | None) -> bool:
    return bool(accept) and MEDIA_TYPE in accept.lower()  # type: ignore[union-attr]


def event_item(e: JobEvent) -> dict[str, Any]:
    """The JSON listing's item of one event (also the ``data`` of its SSE message)."""
    out = EventOut(id=e.id, created_at=e.created_at, level=e.level, stage=e.stage, message=e.message, data=e.data)
    return out.model_dump(mode="json")


def format_event(event_id: int | None, kind: str, data: dict[str, Any]) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def _poll(sessions: Callable[[], Session], job_id: uuid.UUID, owner: str, after: int) -> tuple[dict | None, list]:
    """(the job's end record if it is finished, else {} ; None if it is gone) and the events after ``after``."""
    with sessions() as session:
        job = repository.get_job(session, job_id, owner)
        if job is None:
            return None, []
        end: dict[str, Any] = {}
        if JobState(job.state) in TERMINAL:
            end = {
                "state": job.state,
                "progress": job.progress,
                "message": job.message,
                "error": {"type": job.error_type, "message": job.error_message} if job.error_type else None,
            }
        events = repository.list_events(session, job_id, after=after, limit=BATCH)
        return end, [(e.id, (e.data or {}).get("type") or "log", event_item(e)) for e in events]


#: Event ids are BIGINT: the largest value a resume point may take.
MAX_EVENT_ID = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def parse_last_event_id(header: str | None, after: int) -> int:
    """The resume point: the ``Last-Event-ID`` header when it is an event id, else ``after``.

    Only ASCII digits count (``str.isdigit`` accepts '²'), and only ids a BIGINT holds;
    anything else is ignored, as the SSE spec has clients ignore what they cannot use.
    """
    text = (header or "").strip()
    if _DECIMAL.fullmatch(text) and int(text) <= MAX_EVENT_ID:
        return int(text)
    return after


async def _stream(
    sessions: Callable[[], Session],
    job_id: uuid.UUID,
    owner: str,
    after: int,
    poll_s: float,
    keepalive_s: float,
) -> AsyncIterator[str]:
    yield f"retry: {int(poll_s * 4000)}\n\n"
    last = after
    quiet = 0.0
    while True:
        end, events = await anyio.to_thread.run_sync(_poll, sessions, job_id, owner, last)
        if end is None:
            yield format_event(None, "end", {"state": "deleted"})
            return
        for event_id, kind, item in events:
            yield format_event(event_id, kind, item)
            last = event_id
        if events:
            quiet = 0.0
            if len(events) == BATCH:
                continue  # more are waiting: no sleep
        if end and not events:
            yield format_event(None, "end", end)
            return
        if end:
            continue  # the job is finished: one more poll to be sure nothing is left
        if quiet >= keepalive_s:
            yield ": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(poll_s)
        quiet += poll_s


def event_stream(
    sessions: Callable[[], Session],
    job_id: uuid.UUID,
    owner: str,
    after: int,
    *,
    poll_s: float = 0.5,
    keepalive_s: float = 15.0,
) -> StreamingResponse:
    return StreamingResponse(
        _stream(sessions, job_id, owner, after, poll_s, keepalive_s),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )
