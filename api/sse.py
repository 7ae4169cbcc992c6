"""A job's events as Server-Sent Events: ``GET /jobs/{id}/events`` with ``Accept: text/event-stream``.

Each event is ``id: <JobEvent.id>``, ``event: <type>`` and ``data: <the JSON listing's
item>``. The type is the event's ``data.type`` ('stage', 'progress', ...) or 'log'. The
stream starts after ``Last-Event-ID`` (a reconnecting client sends it) or ``?after=``,
sends a keep-alive comment (``: ping``) when nothing happened for ``keepalive_s``, and ends
with ``event: end`` (``data``: the job's state, error and progress) once the job is
finished and every event before that has been sent: a client that reconnects after the
end gets the remaining events, if any, and the end again. A stream whose API key is
revoked meanwhile ends with ``event: error`` (``data``: ``{"type": "unauthorized", ...}``).

The stream itself reads nothing from the database: the app's :class:`api.event_hub.EventHub`
polls for every open stream at once and hands each its events. The framing is FastAPI's
(:mod:`fastapi.sse`: ``EventSourceResponse``, ``format_sse_event``, its keep-alive comment);
the route answers JSON pages and streams from one path, so it returns the response itself
rather than being a generator route.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event

from api.event_hub import EventHub, TooManyStreams, format_event

MEDIA_TYPE: str = EventSourceResponse.media_type  # text/event-stream


def wants_stream(accept: str | None) -> bool:
    return bool(accept) and MEDIA_TYPE in accept.lower()  # type: ignore[union-attr]


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


async def _stream(hub: EventHub, job_id: uuid.UUID, owner: str, key_hash: str | None, after: int,
                  retry_ms: int, keepalive_s: float) -> AsyncIterator[str]:  # fmt: skip
    """The stream's body. It registers with the hub only once it runs, and always unregisters
    (a client that goes away cancels it): a response never started leaves nothing registered."""
    try:
        sub = hub.subscribe(job_id, owner, key_hash, after)
    except TooManyStreams as exc:  # the bounds filled up between the route's check and now
        yield format_event(None, "error", {"type": "too_many_streams", "message": str(exc)})
        return
    try:
        yield format_sse_event(retry=retry_ms).decode()
        while True:
            sub.wake.clear()
            while sub.items:
                item = sub.items.popleft()
                if item[0] == "event":
                    yield item[2]
                    continue
                yield format_event(None, item[0], item[1])
                return
            if sub.skipped:
                sub.skipped = False
                hub.kick()
            try:
                await asyncio.wait_for(sub.wake.wait(), timeout=keepalive_s)
            except TimeoutError:
                yield KEEPALIVE_COMMENT.decode()
    finally:
        hub.unsubscribe(sub)


def event_stream(
    hub: EventHub,
    job_id: uuid.UUID,
    owner: str,
    key_hash: str | None,
    after: int,
    *,
    keepalive_s: float = 15.0,
) -> EventSourceResponse:
    return EventSourceResponse(
        _stream(hub, job_id, owner, key_hash, after, int(hub.poll_s * 4000), keepalive_s),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )
