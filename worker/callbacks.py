"""Tell a job's ``callback_url`` how it ended: one signed POST, retried a few times by Celery.

The job's worker only queues the callback (:func:`notify`); the task ``worker.send_callback``
on the ``callbacks`` queue sends it (:func:`send_once`) and Celery retries it with backoff
(``autoretry_for``), so no job worker waits on a slow or failing receiver.

The body is JSON. ``X-PPruning-Signature: t=<unix seconds>,sha256=<hex>`` carries the
time of sending and the HMAC-SHA256, under ``PPRUNING_CALLBACK_SECRET``, of
``"<t>." + body`` (the exact body bytes). A receiver recomputes the HMAC over the same
string, compares it with ``hmac.compare_digest`` and refuses a ``t`` older than a few
minutes, so a captured callback cannot be replayed later (:func:`verify` does all three).

Callbacks are always signed. A deployment without ``PPRUNING_CALLBACK_SECRET`` sends none: the
API refuses a ``callback_url`` at submission (a 422 naming it), and a worker that lacks the
secret drops the callback with a warning rather than send it unsigned. (A generated secret
would differ per machine and be unknown to the receivers, so none is made up.)

Before sending, the host is resolved and checked again (:mod:`jobs.callback_policy`:
DNS may have changed since submission) and the connection goes to the address that was
checked, with the original ``Host`` and TLS server name; proxies from the environment
are not used (they would connect elsewhere) and redirects are not followed. A callback
that keeps failing is logged and dropped: the job's state in the database is the answer,
the callback only saves a poll.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from celery import current_app
from sqlalchemy.orm import Session, sessionmaker

from jobs.callback_policy import CallbackRefused, Target, resolve_target
from jobs.queue import CALLBACK_QUEUE, CALLBACK_TASK_NAME
from jobs.settings import Settings
from jobs.store import repository as repo

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-PPruning-Signature"
#: Tries of one callback, and the first wait between them (doubled each time; Celery's retry_backoff).
ATTEMPTS = 4
FIRST_DELAY_S = 1
TIMEOUT_S = 10.0
#: How old a signature :func:`verify` still accepts, in seconds.
TOLERANCE_S = 300


def _mac(timestamp: int, body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The header value for ``body`` sent at ``timestamp`` (default: now): ``t=<unix>,sha256=<hex>``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},sha256={_mac(t, body, secret)}"


def verify(
    body: bytes, header: str, secret: str, *, tolerance_s: float = TOLERANCE_S, now: float | None = None
) -> bool:
    """What a receiver does with the header: the HMAC of ``"t.body"`` matches and ``t`` is recent."""
    fields = dict(part.strip().partition("=")[::2] for part in header.split(","))
    timestamp, digest = fields.get("t", ""), fields.get("sha256", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not digest:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(_mac(int(timestamp), body, secret), digest)


def pinned_request(url: str, target: Target) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """``url`` aimed at the checked address: the URL with the IP as host, the original ``Host`` and SNI."""
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(target.address))
    headers = {"Host": original.netloc.decode("ascii")}
    extensions: dict[str, Any] = {"sni_hostname": original.host} if original.scheme == "https" else {}
    return pinned, headers, extensions


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


class CallbackRetry(Exception):
    """A callback that may succeed later (no connection, a 5xx or 429): its task is retried with backoff."""


def send_once(
    url: str, payload: dict[str, Any], secret: str, *, allow_private: bool = False, client: httpx.Client | None = None
) -> bool:
    """One signed POST of ``payload`` to ``url``: True once the receiver answered 2xx.

    False, and nothing more to try, when the URL is refused by :mod:`jobs.callback_policy`,
    the worker has no secret, or the receiver rejects it (a 4xx other than 429).
    :class:`CallbackRetry` when it may work later (a connection error, 5xx, 429).
    """
    try:
        target = resolve_target(url, allow_private=allow_private)
    except CallbackRefused as exc:
        log.warning("callback %s not sent: %s", url, exc)
        return False
    if not secret:  # submission refuses callbacks without a secret; a worker without one never sends unsigned
        log.warning("PPRUNING_CALLBACK_SECRET is empty on this worker: the callback to %s is not sent", url)
        return False
    pinned, headers, extensions = pinned_request(url, target)
    body = encode(payload)
    headers.update({"Content-Type": "application/json", "User-Agent": "ppruning-worker"})
    headers[SIGNATURE_HEADER] = sign(body, secret)  # signed when sent: a retry carries a fresh time
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
    try:
        request = client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
        response = client.send(request, follow_redirects=False)
    except httpx.HTTPError as exc:
        log.warning("callback %s failed: %s", url, exc)
        raise CallbackRetry(f"callback {url} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            client.close()
    if 200 <= response.status_code < 300:
        return True
    log.warning("callback %s answered %s", url, response.status_code)
    if response.status_code >= 500 or response.status_code == 429:
        raise CallbackRetry(f"callback {url} answered {response.status_code}")
    return False


def enqueue(url: str, payload: dict[str, Any]) -> None:
    """Hand the POST to the callback task (:data:`worker.tasks.send_callback`) on its own queue, through the
    worker's Celery app (the current one in a worker process)."""
    current_app.send_task(CALLBACK_TASK_NAME, args=[url, payload], queue=CALLBACK_QUEUE, ignore_result=True)


def notify(
    sessions: sessionmaker[Session],
    settings: Settings,
    job_id: Any,
    send: Callable[[str, dict[str, Any]], Any] = enqueue,
) -> None:
    """Send the final state to the spec's ``callback_url``, if it has one (``send``: by the callback task)."""
    with sessions() as session:
        job = repo.get_job(session, job_id, details=True)
        if job is None or not isinstance(job.spec, dict) or not job.spec.get("callback_url"):
            return
        payload = {
            "id": str(job.id),
            "kind": job.kind,
            "state": job.state,
            "error_type": job.error_type,
            "error_message": job.error_message,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "url": f"{settings.base_url.rstrip('/')}/jobs/{job.id}",
            "metrics": repo.metrics_by_split(job.metrics),
            "artifacts": {a.name: {"size": a.size, "sha256": a.sha256} for a in job.artifacts},
        }
        url = str(job.spec["callback_url"])
    send(url, json.loads(encode(payload)))  # what the task's JSON message carries
