"""The Python SDK of the service: one typed method per API operation (see :data:`Client.OPERATIONS`).

It speaks the public HTTP API only; nothing here reads the database. ``follow`` reads the
live event stream and resumes it with ``Last-Event-ID`` after a dropped connection,
falling back to polling when the stream is not available. Downloads stream to a
temporary file, resume with ``Range`` after a dropped connection, and are checked
against the sha256 the service sends.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ppruning_client.sse import SseEvent, parse_sse

__all__ = ["Client", "ClientError", "ServiceUnreachable", "SseEvent", "StreamUnavailable", "WaitTimeout", "parse_sse"]

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file: what the service sends as ``Content-Length`` and ``X-Content-SHA256``."""
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest()


class ClientError(Exception):
    """The service answered with an error, or a download did not match its digest."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        #: Seconds the service asked to wait (``Retry-After`` of a 429 or 503), when it said.
        self.retry_after = retry_after
        #: The input at fault (``target.flops_reduction``), when the service named one.
        self.field = field


def error_text(body: Any) -> tuple[str, str | None]:
    """One line for an error body ``{"error": {"type", "message", "field", ...}}`` and its field.

    The field leads the message unless the message already starts with it; when the body
    lists several problems (``problems`` or ``errors``: strings or objects with ``field``
    and ``message``), every one is shown, not only the first.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise ValueError("not the service's error shape")
    field = error.get("field") or None

    def located(item_field: str | None, message: str) -> str:
        return message if not item_field or message.startswith(f"{item_field}:") else f"{item_field}: {message}"

    problems = error.get("problems") or error.get("errors")
    if isinstance(problems, list) and problems:
        parts = []
        for problem in problems:
            if isinstance(problem, dict):
                parts.append(located(problem.get("field"), str(problem.get("message", problem))))
            else:
                parts.append(str(problem))
        message = "; ".join(parts)
    else:
        message = str(error.get("message", ""))
        message = located(field, message)
    return f"{error.get('type', 'error')}: {message}", field


class WaitTimeout(ClientError):
    """``wait`` ran out of time before the job finished."""


class StreamUnavailable(ClientError):
    """The event stream cannot be read (an older service, a proxy that buffers): poll instead."""


class ServiceUnreachable(ClientError):
    """No answer from the service at all: nothing listens at the URL, DNS failed, or it timed out."""


class Client:
    """A typed client of every operation of the API (:data:`OPERATIONS` maps each to its route)."""

    #: SDK method -> (HTTP method, route) it calls; a test checks it covers every route of the API.
    OPERATIONS: dict[str, tuple[str, str]] = {
        "submit": ("POST", "/jobs"),
        "jobs": ("GET", "/jobs"),
        "job": ("GET", "/jobs/{job_id}"),
        "event_page": ("GET", "/jobs/{job_id}/events"),
        "events": ("GET", "/jobs/{job_id}/events"),
        "cancel": ("POST", "/jobs/{job_id}/cancel"),
        "delete": ("DELETE", "/jobs/{job_id}"),
        "artifacts": ("GET", "/jobs/{job_id}/artifacts"),
        "download": ("GET", "/jobs/{job_id}/artifacts/{name}"),
        "methods": ("GET", "/methods"),
        "method": ("GET", "/methods/{name}"),
        "tasks": ("GET", "/tasks"),
        "health": ("GET", "/healthz"),
        "ready": ("GET", "/readyz"),
        "metrics": ("GET", "/metrics"),
    }

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 30.0, http: httpx.Client | None = None) -> None:
        """``http``: an existing httpx client to use instead (e.g. FastAPI's TestClient)."""
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout_s)
        self.http.headers["Authorization"] = f"Bearer {api_key}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ calls
    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request; a transport failure (nothing listening, DNS, timeout) is :class:`ServiceUnreachable`.

        A read (GET, HEAD) that meets a connection the server closed as it was reused ("Server
        disconnected without sending a response": the pooled connection idled out on the server
        side first) is sent once more on a new connection; nothing else is retried here.
        """
        try:
            try:
                return self.http.request(method, path, **options)
            except httpx.RemoteProtocolError:
                if method.upper() not in ("GET", "HEAD"):
                    raise
                return self.http.request(method, path, **options)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"cannot reach the service at {self.url}: {type(exc).__name__}: {exc}") from exc

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            field = None
            try:
                text, field = error_text(response.json())
            except ValueError:
                text = response.text[:500]
            retry_after = response.headers.get("Retry-After", "")
            raise ClientError(f"{response.request.method} {response.request.url.path} -> {response.status_code} {text}",
                              response.status_code, float(retry_after) if retry_after.isdigit() else None,
                              field)  # fmt: skip
        return response

    def _json(self, response: httpx.Response) -> Any:
        return self._check(response).json()

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Submit a job spec; the same ``idempotency_key`` again returns the same job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json(self._request("POST", "/jobs", json=spec, headers=headers))

    def jobs(
        self,
        *,
        state: Iterable[str] = (),
        kind: Iterable[str] = (),
        parent: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        model: Iterable[str] = (),
        method: Iterable[str] = (),
    ) -> dict[str, Any]:
        """One page of the owner's jobs, newest first: ``{"items": [...], "next_cursor": ...}``."""
        params: list[tuple[str, str | int]] = [("state", s) for s in state] + [("kind", k) for k in kind]
        params += [("model", m) for m in model] + [("method", m) for m in method]
        params.append(("limit", limit))
        params += [("parent", parent)] if parent else []
        params += [("cursor", cursor)] if cursor else []
        return self._json(self._request("GET", "/jobs", params=params))

    def iter_jobs(
        self, *, state: Iterable[str] = (), kind: Iterable[str] = (), parent: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every matching job, newest first, following ``next_cursor`` page after page."""
        state, kind, cursor = list(state), list(kind), None
        while True:
            page = self.jobs(state=state, kind=kind, parent=parent, limit=page_size, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def job(self, job_id: str) -> dict[str, Any]:
        """The job: state, stage, progress, result, error, artifacts."""
        return self._json(self._request("GET", f"/jobs/{job_id}"))

    def event_page(self, job_id: str, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Logged events with an id above ``after``: ``{"items": [...], "next_after": ...}`` (no streaming)."""
        return self._json(self._request("GET", f"/jobs/{job_id}/events", params={"after": after, "limit": limit}))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job at once, a running one at its next checkpoint; a finished job is a 409."""
        return self._json(self._request("POST", f"/jobs/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its artifacts (a job still running is a 409: cancel it first)."""
        self._check(self._request("DELETE", f"/jobs/{job_id}"))

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's artifacts: name, kind, size, sha256, url."""
        return self._json(self._request("GET", f"/jobs/{job_id}/artifacts"))

    def methods(self) -> list[dict[str, Any]]:
        """Every pruning method with its parameters and JSON Schemas."""
        return self._json(self._request("GET", "/methods"))["items"]

    def method(self, name: str) -> dict[str, Any]:
        """One pruning method."""
        return self._json(self._request("GET", f"/methods/{name}"))

    def tasks(self) -> list[dict[str, Any]]:
        """Every task: data, columns, metrics, the ``task`` fields a spec may set."""
        return self._json(self._request("GET", "/tasks"))["items"]

    def health(self) -> dict[str, Any]:
        """``/healthz``: the API process answers."""
        return self._json(self._request("GET", "/healthz"))

    def ready(self) -> dict[str, Any]:
        """``/readyz``: database and broker reachable (a :class:`ClientError` with status 503 when not)."""
        return self._json(self._request("GET", "/readyz"))

    def metrics(self) -> str:
        """``/metrics``: the Prometheus text (a deployment may ask for its own token as the key)."""
        return self._check(self._request("GET", "/metrics")).text

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
                        self._check(response)
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
                        self._check(response)
                    expected = response.headers.get("X-Content-SHA256", expected)
                    mode = "ab" if response.status_code == 206 else "wb"
                    with part.open(mode) as fh:
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                break
            except httpx.TransportError as exc:
                if attempt == attempts:
                    message = (
                        f"cannot reach the service at {self.url} (download of {name}): {type(exc).__name__}: {exc}"
                    )
                    raise ServiceUnreachable(message) from exc
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
