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
