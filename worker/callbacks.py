"""Tell a job's ``callback_url`` how it ended: one signed POST, retried a few times.

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
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from jobs.callback_policy import CallbackRefused, Target, resolve_target
from jobs.settings import Settings
from jobs.store import repository as repo

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-PPruning-Signature"
ATTEMPTS = 4
FIRST_DELAY_S = 1.0
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


def post_callback(
    url: str,
    payload: dict[str, Any],
    secret: str,
    *,
    allow_private: bool = False,
    attempts: int = ATTEMPTS,
    first_delay_s: float = FIRST_DELAY_S,
    client: httpx.Client | None = None,
) -> bool:
    """POST ``payload`` to ``url``; True once the receiver answered 2xx.

    Retries on connection errors, 5xx and 429 with doubling delays; a 4xx other than 429
    means the receiver rejects it and is not retried. A URL refused by
    :mod:`jobs.callback_policy` is not called at all (False).
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
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
    delay = first_delay_s
    try:
        for attempt in range(1, attempts + 1):
            headers[SIGNATURE_HEADER] = sign(body, secret)
            try:
                request = client.build_request("POST", pinned, content=body, headers=headers, extensions=extensions)
                response = client.send(request, follow_redirects=False)
                if 200 <= response.status_code < 300:
                    return True
                retry = response.status_code >= 500 or response.status_code == 429
                log.warning("callback %s answered %s (attempt %d)", url, response.status_code, attempt)
                if not retry:
                    return False
            except httpx.HTTPError as exc:
                log.warning("callback %s failed: %s (attempt %d)", url, exc, attempt)
            if attempt < attempts:
                time.sleep(delay)
                delay *= 2
        return False
    finally:
        if own:
            client.close()


def notify(sessions: sessionmaker[Session], settings: Settings, job_id: Any) -> None:
    """POST the final state to the spec's ``callback_url``, if it has one."""
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
    post_callback(url, payload, settings.callback_secret, allow_private=settings.callback_allow_private)
