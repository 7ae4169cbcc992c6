"""One poller per process for every live event stream: the database is read once per poll, not once per stream.

A stream (``GET /jobs/{id}/events`` with ``Accept: text/event-stream``) holds no database
session and runs no query of its own: it registers a :class:`Subscriber` here and writes
what the hub hands it. The hub's one task reads, every ``poll_s``, in a worker thread and
with one short autocommit session that is closed before the next poll:

1. the state of every followed job and the id of its newest event (one statement: the job
   rows and ``max(job_events.id)`` read together, so a final state comes with the id of
   the events committed with it);
2. for each job with news, the events after the oldest position of its subscribers (one
   indexed range read per job, ``BATCH`` at most; a full batch makes the hub poll again at once);
3. whether the API keys of the open streams are still valid: a revoked key ends its streams
   at the next poll, as a job of another owner never starts one.

So 200 streams on 10 jobs cost two or three queries per poll, the same as one stream, and
streams never take connections from the pool the routes need. A database that is away
makes the hub retry with backoff while streams send keep-alives; nothing is dropped.

The number of open streams is bounded per owner and in total (per process: with several
API processes, each has its own hub and its own bounds). Past a bound, the route answers
429 with ``Retry-After`` (:class:`TooManyStreams`).

A subscriber that does not read (a stalled client) stops receiving once ``MAX_PENDING``
items wait for it; its position stays where it was, so it resumes without a gap when it reads again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi.sse import format_sse_event
from sqlalchemy.orm import Session

from api.schemas import EventOut
from jobs.store import keys, repository
from jobs.store.models import JobEvent
from jobs.store.states import TERMINAL, JobState

log = logging.getLogger(__name__)

#: Events read per job and poll; a full batch means more are waiting.
BATCH = 500
#: Items that may wait for one subscriber before the hub stops handing it more.
MAX_PENDING = 2 * BATCH
#: Longest wait between polls while the database is away.
MAX_BACKOFF_S = 5.0


class TooManyStreams(Exception):
    """Opening one more stream would pass a bound (``scope``: 'owner' or 'service')."""

    def __init__(self, scope: str, limit: int) -> None:
        who = "this key's owner has" if scope == "owner" else "the service has"
        setting = "PPRUNING_MAX_EVENT_STREAMS_PER_OWNER" if scope == "owner" else "PPRUNING_MAX_EVENT_STREAMS"
        super().__init__(
            f"{who} {limit} event streams open, the most allowed ({setting}={limit}); close one, "
            "retry after Retry-After seconds, or poll GET /jobs/{id}"
        )
        self.scope = scope
        self.limit = limit


#: What a subscriber receives: ("event", id, the SSE message's text), ("end", data) or ("error", data).
Item = tuple[Any, ...]


@dataclass(eq=False)
class Subscriber:
    """One open stream: the job it follows, whose key opened it, and what waits to be written."""

    job_id: uuid.UUID
    owner: str
    #: sha256 of the stream's API key; None for a bootstrap key (held in settings, never revoked).
    key_hash: str | None
    #: Id of the last event handed to this subscriber.
    last: int
    items: deque[Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    #: The hub passed it over for want of room: it asks for a poll once it has written its backlog.
    skipped: bool = False

    def push(self, item: Item) -> None:
        self.items.append(item)
        if item[0] != "event":
            self.done = True
        self.wake.set()

    @property
    def has_room(self) -> bool:
        return not self.done and len(self.items) < MAX_PENDING


@dataclass(frozen=True)
class JobNews:
    """One followed job as one poll saw it."""

    state: str
    owner: str
    end: dict[str, Any]
    last_event: int
    #: Contiguous runs of events: (the position read after, the events after it in id order, each as
    #: (id, its SSE message): formatted once, however many streams send it).
    ranges: list[tuple[int, list[tuple[int, str]]]]


def event_item(e: JobEvent) -> dict[str, Any]:
    """The JSON listing's item of one event (also the ``data`` of its SSE message)."""
    out = EventOut(id=e.id, created_at=e.created_at, level=e.level, stage=e.stage, message=e.message, data=e.data)
    return out.model_dump(mode="json")


def _end_record(job: Any) -> dict[str, Any]:
    return {
        "state": job.state,
        "progress": job.progress,
        "message": job.message,
        "error": {"type": job.error_type, "message": job.error_message} if job.error_type else None,
    }


def read_news(
    session: Session, cursors: dict[uuid.UUID, list[int]], key_hashes: set[str]
) -> tuple[dict[uuid.UUID, JobNews], set[str]]:
    """(what each followed job has for its subscribers, the key hashes still valid); see the module docstring.

    ``cursors``: per job, the positions of its subscribers that have room. A job missing from
    the answer is gone (deleted).
    """
    news: dict[uuid.UUID, JobNews] = {}
    for row in repository.watch_jobs(session, list(cursors)):
        positions = sorted(set(cursors[row.id]))
        ranges = []
        if positions and row.last_event > positions[0]:
            first = _read_range(session, row.id, positions[0])
            ranges.append((positions[0], first))
            if len(first) == BATCH and positions[-1] > first[-1][0]:  # a laggard must not starve the others
                ranges.append((positions[-1], _read_range(session, row.id, positions[-1])))
        end = _end_record(row) if JobState(row.state) in TERMINAL else {}
        news[row.id] = JobNews(row.state, row.owner, end, int(row.last_event), ranges)
    valid = keys.valid_key_hashes(session, key_hashes) if key_hashes else set()
    return news, valid


def format_event(event_id: int | None, kind: str, data: dict[str, Any]) -> str:
    """One SSE message in FastAPI's framing: ``event``, one line of JSON ``data``, ``id`` (job events only)."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return format_sse_event(data_str=text, event=kind, id=None if event_id is None else str(event_id)).decode()


def _read_range(session: Session, job_id: uuid.UUID, after: int) -> list[tuple[int, str]]:
    events = repository.list_events(session, job_id, after=after, limit=BATCH)
    return [(e.id, format_event(e.id, (e.data or {}).get("type") or "log", event_item(e))) for e in events]


class EventHub:
    """The poller and its subscribers; one per app (``app.state.event_hub``), used from the event loop only."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        *,
        poll_s: float = 0.5,
        max_streams: int = 1000,
        max_per_owner: int = 100,
    ) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self.max_streams = max_streams
        self.max_per_owner = max_per_owner
        self._subs: dict[uuid.UUID, set[Subscriber]] = {}
        self._owners: Counter[str] = Counter()
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self.polls = 0  # for tests and the soak benchmark: how many times the database was read

    @property
    def open_streams(self) -> int:
        return self._count

    def check_room(self, owner: str) -> None:
        """:class:`TooManyStreams` when one more stream of ``owner`` would pass a bound."""
        if self.max_streams and self._count >= self.max_streams:
            raise TooManyStreams("service", self.max_streams)
        if self.max_per_owner and self._owners[owner] >= self.max_per_owner:
            raise TooManyStreams("owner", self.max_per_owner)

    def subscribe(self, job_id: uuid.UUID, owner: str, key_hash: str | None, after: int) -> Subscriber:
        """Register a stream (within the bounds) and make sure the poller runs; call from the event loop."""
        self._bind_loop()
        self.check_room(owner)
        sub = Subscriber(job_id, owner, key_hash, after)
        self._subs.setdefault(job_id, set()).add(sub)
        self._owners[owner] += 1
        self._count += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")
        assert self._kick is not None
        self._kick.set()  # a new stream gets its backlog now, not after the poll interval
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.job_id]
        self._owners[sub.owner] -= 1
        if self._owners[sub.owner] <= 0:
            del self._owners[sub.owner]
        self._count -= 1

    def _bind_loop(self) -> None:
        """Subscribers and the poller belong to one event loop; a new loop (a test's new client) starts afresh."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._kick = asyncio.Event()
            self._task = None
            self._subs.clear()
            self._owners.clear()
            self._count = 0

    async def _run(self) -> None:
        backoff = self.poll_s
        while self._subs:
            assert self._kick is not None
            self._kick.clear()
            cursors = {
                job_id: [s.last for s in subs if s.has_room] for job_id, subs in self._subs.items()
            }
            keys = {s.key_hash for subs in self._subs.values() for s in subs if s.key_hash is not None}
            try:
                news, valid = await anyio.to_thread.run_sync(self._read, cursors, keys)
            except Exception as exc:  # the database is away: keep the streams, try again later
                log.warning("event streams: the poll failed (%s: %s); retrying", type(exc).__name__, exc)
                await self._pause(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            backoff = self.poll_s
            more = self._deliver(set(cursors), news, valid, keys)
            if not more:
                await self._pause(self.poll_s)

    def _read(self, cursors: dict[uuid.UUID, list[int]], keys: set[str]) -> tuple[dict, set[str]]:
        with self.sessions() as session:
            self.polls += 1
            return read_news(session, cursors, keys)

    async def _pause(self, seconds: float) -> None:
        assert self._kick is not None
        try:
            await asyncio.wait_for(self._kick.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _deliver(
        self, polled: set[uuid.UUID], news: dict[uuid.UUID, JobNews], valid: set[str], keys: set[str]
    ) -> bool:
        """Hand each subscriber what is new for it; True when a batch was full (poll again at once).

        Only jobs this poll asked about: a stream opened on another job while it ran waits for the next.
        """
        more = False
        for job_id, subs in list(self._subs.items()):
            if job_id not in polled:
                more = True
                continue
            job = news.get(job_id)
            for sub in list(subs):
                if sub.done:
                    continue
                if sub.key_hash is not None and sub.key_hash in keys and sub.key_hash not in valid:
                    sub.push(("error", {"type": "unauthorized", "message": "the API key of this stream was revoked"}))
                elif job is None or job.owner != sub.owner:
                    sub.push(("end", {"state": "deleted"}))
                else:
                    more |= self._deliver_events(sub, job)
        return more

    @staticmethod
    def _deliver_events(sub: Subscriber, job: JobNews) -> bool:
        """Events that follow ``sub.last`` without a gap (from the run that holds its position), then the end."""
        for start, run in job.ranges:
            if run and start <= sub.last < run[-1][0]:
                for event_id, text in run:
                    if event_id > sub.last:
                        if not sub.has_room:
                            break
                        sub.push(("event", event_id, text))
                        sub.last = event_id
                break
        if sub.last < job.last_event:
            if sub.has_room:
                return True  # more to read for it (a full batch): poll again at once
            sub.skipped = True  # it must write first; it asks for a poll when it has
            return False
        if job.end:
            sub.push(("end", job.end))
        return False

    def kick(self) -> None:
        """Poll now (a subscriber that was passed over has written its backlog)."""
        if self._kick is not None:
            self._kick.set()
