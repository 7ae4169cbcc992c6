"""Dashboard sessions: a signed, HttpOnly, SameSite=Lax cookie that stands for an API key.

The cookie holds the sha256 of the key (never the key), a CSRF token and an expiry,
signed with HMAC-SHA256 under ``PPRUNING_DASHBOARD_SECRET``. Every request resolves the
owner from that digest again (:func:`api.auth.owner_of_key_hash`, the bearer path's own
resolution), so a revoked key ends its sessions at once and a session sees exactly what
its key sees. A request that changes state (anything but GET/HEAD/OPTIONS) must carry the
session's CSRF token in ``X-CSRF-Token`` (or the ``csrf`` form field): refused with 403
otherwise, which a cross-site form or script cannot supply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response
from sqlalchemy.orm import Session

from api.auth import owner_of_key_hash, revocable_digest
from api.errors import Forbidden, Unauthorized

COOKIE = "ppruning_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The path the cookie is sent to: the pages and the API routes they call.
COOKIE_PATH = "/"


@dataclass(frozen=True)
class DashboardSession:
    key_hash: str
    csrf: str
    expires: int

    @classmethod
    def new(cls, key_hash: str, lifetime_s: int) -> DashboardSession:
        return cls(key_hash, secrets.token_urlsafe(32), int(time.time()) + lifetime_s)


class SessionSigner:
    """Turns a session into a cookie value and back; a forged, altered or expired cookie reads as None."""

    def __init__(self, secret: str, lifetime_s: int) -> None:
        # No secret configured: a random one, so a process never signs with a guessable key.
        self._key = hashlib.sha256((secret or secrets.token_hex(32)).encode()).digest()
        self.lifetime_s = lifetime_s

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def dumps(self, session: DashboardSession) -> str:
        body = json.dumps({"k": session.key_hash, "c": session.csrf, "e": session.expires}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload.encode())}"

    def loads(self, value: str | None) -> DashboardSession | None:
        if not value or "." not in value:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = DashboardSession(str(data["k"]), str(data["c"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None


def signer(request: Request) -> SessionSigner:
    return request.app.state.dashboard_signer


def current_session(request: Request) -> DashboardSession | None:
    """The request's valid session, if any (signature and expiry checked; the key is not)."""
    return signer(request).loads(request.cookies.get(COOKIE))


def has_session_cookie(request: Request) -> bool:
    return COOKIE in request.cookies


def check_csrf(request: Request, session: DashboardSession, token: str | None = None) -> None:
    """403 unless the request is safe or carries the session's token (header, or ``token`` from a form)."""
    if request.method in SAFE_METHODS:
        return
    sent = token if token is not None else request.headers.get(CSRF_HEADER)
    if not sent or not hmac.compare_digest(sent, session.csrf):
        raise Forbidden(
            "this request changes state and came with the dashboard's session cookie but without its CSRF token "
            "(header X-CSRF-Token); reload the page, or use 'Authorization: Bearer <key>'"
        )


def session_owner(request: Request, db: Session) -> str:
    """The owner behind the session cookie (401 without a valid one), the CSRF token checked."""
    session = current_session(request)
    if session is None:
        raise Unauthorized("the dashboard session is missing, altered or expired; sign in again at /ui/login")
    check_csrf(request, session)
    return owner_of_key_hash(db, session.key_hash, request.app.state.bootstrap_keys)


def session_revocable_hash(request: Request) -> str | None:
    """What a live stream opened with the cookie re-checks (None for a bootstrap key)."""
    session = current_session(request)
    if session is None:
        return None
    return revocable_digest(session.key_hash, request.app.state.bootstrap_keys)


def set_cookie(request: Request, response: Response, session: DashboardSession) -> None:
    secure = request.app.state.settings.base_url.startswith("https://")
    response.set_cookie(
        COOKIE,
        signer(request).dumps(session),
        max_age=max(0, session.expires - int(time.time())),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
