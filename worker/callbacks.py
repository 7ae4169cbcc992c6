"""Tell a job's ``callback_url`` how it ended: one signed POST, retried a few times.

The body is JSON; ``X-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body
bytes under ``PPRUNING_CALLBACK_SECRET``, so the receiver can check that the service sent
it (compare with ``hmac.compare_digest``). A callback that keeps failing is logged and
dropped: the job's state in the database is the answer, the callback only saves a poll.
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

from jobs.settings import Settings
from jobs.store import repository as repo

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"
ATTEMPTS = 4
FIRST_DELAY_S = 1.0
TIMEOUT_S = 10.0


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str, secret: str) -> bool:
    """What a receiver does with the header (also used by the tests)."""
    return hmac.compare_digest(sign(body, secret), header)


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def post_callback(
    url: str,
    payload: dict[str, Any],
    secret: str,
    *,
    attempts: int = ATTEMPTS,
    first_delay_s: float = FIRST_DELAY_S,
    client: httpx.Client | None = None,
) -> bool:
    """POST ``payload`` to ``url``; True once the receiver answered 2xx.

    Retries on connection errors, 5xx and 429 with doubling delays; a 4xx other than 429
    means the receiver rejects it and is not retried.
    """
    body = encode(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "ppruning-worker"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    else:
        log.warning("PPRUNING_CALLBACK_SECRET is empty: the callback to %s is not signed", url)
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
    delay = first_delay_s
    try:
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(url, content=body, headers=headers)
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
    post_callback(url, payload, settings.callback_secret)
