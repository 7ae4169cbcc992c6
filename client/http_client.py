"""A small HTTP client of the service, for CI pipelines, the demo and the tests.

It speaks the public API only (``POST /jobs``, ``GET /jobs/{id}``, ``GET
/jobs/{id}/events`` as Server-Sent Events, ``POST /jobs/{id}/cancel``, ``GET
/jobs/{id}/artifacts/{name}``); nothing here reads the database. ``follow`` reads the
live event stream and resumes it with ``Last-Event-ID`` after a dropped connection,
falling back to polling when the stream is not available. Downloads stream to a
temporary file, resume with ``Range`` after a dropped connection, and are checked
against the sha256 the service sends.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file: what the service sends as ``Content-Length`` and ``X-Content-SHA256``."""
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


class ClientError(Exception):
    """The service answered with an error, or a download did not match its digest."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: Seconds the service asked to wait (``Retry-After`` of a 429 or 503), when it said.
        self.retry_after = retry_after


class WaitTimeout(ClientError):
    """``wait`` ran out of time before the job finished."""


class StreamUnavailable(ClientError):
    """The event stream cannot be read (an older service, a proxy that buffers): poll instead."""


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event: ``id`` (the job event's id; None for ``end``), type, JSON data."""

    id: int | None
    event: str
    data: dict[str, Any]


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events of an SSE byte stream's lines (comments and ``retry`` skipped, multi-line data joined)."""
    event_id: int | None = None
    kind, data = "message", []
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"text": text}
                yield SseEvent(event_id, kind, payload if isinstance(payload, dict) else {"value": payload})
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and value.isdigit():
            event_id = int(value)


class Client:
    def __init__(self, url: str, api_key: str, *, timeout_s: float = 30.0, http: httpx.Client | None = None) -> None:
        """``http``: an existing httpx client to use instead (e.g. FastAPI's TestClient)."""
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self.http.headers["Authorization"] = f"Bearer {api_key}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ calls
    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
                text = f"{error.get('type', 'error')}: {error.get('message', response.text)}"
            except ValueError:
                text = response.text[:500]
            retry_after = response.headers.get("Retry-After", "")
            raise ClientError(f"{response.request.method} {response.request.url.path} -> {response.status_code} {text}",
                              response.status_code, float(retry_after) if retry_after.isdigit() else None)  # fmt: skip
        return response.json()

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(self.http.post("/jobs", json=spec, headers=headers))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.post(f"/jobs/{job_id}/cancel"))

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 1.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is finished; ``on_update`` sees every poll (progress display)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                job = self.job(job_id)
            except ClientError as exc:  # a restarting database: the service says when to ask again
                if exc.status != 503:
                    raise
                time.sleep(max(poll_s, min(30.0, exc.retry_after or poll_s)))
                continue
            if on_update is not None:
                on_update(job)
            if job["state"] in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} still {job['state']} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def events(
        self,
        job_id: str,
        *,
        after: int = 0,
        read_timeout_s: float = 60.0,
        reconnects: int = 5,
        deadline: float | None = None,
    ) -> Iterator[SseEvent]:
        """The job's events live (Server-Sent Events), ending with the ``end`` event.

        A dropped connection is resumed with ``Last-Event-ID`` (no gap, no repeat), up to
        ``reconnects`` times in a row without news; :class:`StreamUnavailable` when the
        service does not stream (the caller falls back to polling). :class:`WaitTimeout`
        once ``time.monotonic()`` passes ``deadline`` with no event in between.
        """
        last, failures = after, 0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            read = read_timeout_s if deadline is None else max(0.5, min(read_timeout_s, deadline - time.monotonic()))
            timeout = httpx.Timeout(self.http.timeout.connect, read=read)
            try:
                with self.http.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=timeout) as response:
                    if response.status_code in (429, 503):  # too many streams, or the service is busy: poll
                        response.read()
                        raise StreamUnavailable(f"the service cannot stream now ({response.status_code})")
                    if response.status_code >= 400:
                        response.read()
                        self._json(response)
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        raise StreamUnavailable("the service answered without an event stream")
                    for event in parse_sse(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last = event.id
                        if event.event == "error":  # e.g. the key was revoked: reconnecting would not help
                            raise ClientError(f"the event stream ended: {event.data.get('message', event.data)}")
                        yield event
                        if event.event == "end":
                            return
            except httpx.TransportError as exc:  # dropped, refused, timed out: resume where we were
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(f"job {job_id} still running when the wait ran out") from None
                failures += 1
                if failures > reconnects:
                    raise StreamUnavailable(f"the event stream kept failing: {exc}") from exc
                time.sleep(min(5.0, 0.2 * 2**failures))
                continue
            failures += 1  # the server closed the stream before 'end': reconnect
            if failures > reconnects:
                raise StreamUnavailable("the event stream kept closing before the job ended")

    def follow(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 2.0,
        on_event: Callable[[SseEvent], None] | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Follow the job's event stream until it ends, then return the job; polls when streaming fails.

        ``on_event`` sees every streamed event; ``on_update`` every polled job (fallback).
        :class:`WaitTimeout` after ``timeout_s``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            for event in self.events(job_id, deadline=deadline):
                if on_event is not None:
                    on_event(event)
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout(f"job {job_id} still running after {timeout_s:.0f}s")
            return self.job(job_id)
        except StreamUnavailable:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self.wait(job_id, timeout_s=remaining, poll_s=poll_s, on_update=on_update)

    def download(self, job_id: str, name: str, dest: Path, *, attempts: int = 3) -> Path:
        """Stream artifact ``name`` to ``dest``; resumes with Range; verifies the sha256."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        part.unlink(missing_ok=True)
        expected: str | None = None
        for attempt in range(1, attempts + 1):
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self.http.stream("GET", f"/jobs/{job_id}/artifacts/{name}", headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._json(response)
                    expected = response.headers.get("X-Content-SHA256", expected)
                    mode = "ab" if response.status_code == 206 else "wb"
                    with part.open(mode) as fh:
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                break
            except httpx.TransportError:
                if attempt == attempts:
                    raise
        _, digest = file_sha256(part)
        if expected and digest != expected:
            part.unlink()
            raise ClientError(f"download of {name} has sha256 {digest}, the service said {expected}")
        os.replace(part, dest)
        return dest


def describe(job: dict[str, Any]) -> str:
    """One line for a progress display: state, bar, stage and message."""
    width = 24
    done = int(width * float(job.get("progress") or 0.0))
    bar = "#" * done + "." * (width - done)
    stage = job.get("stage") or "-"
    percent = 100 * float(job.get("progress") or 0.0)
    return f"{job['state']:<9} [{bar}] {percent:5.1f}% {stage:<12} {job.get('message') or ''}"
