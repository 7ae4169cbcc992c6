"""What a route needs, as annotated types: ``def route(session: SessionDep, owner: CurrentOwner)``.

Everything hangs off ``app.state`` (set by :func:`api.main.create_app`), so an app made
for a test database serves that database only; tests override :func:`get_dispatcher`
to capture messages instead of sending them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import authenticate, revocable_key_hash
from api.dashboard.session import has_session_cookie, session_owner, session_revocable_hash
from jobs.artifacts import ArtifactStore
from jobs.queue import Dispatcher
from jobs.settings import Settings


# Trivial dependencies are ``async``: a sync one costs a thread-pool hop per request.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; the route commits, anything left open is rolled back.

    ``async`` so that no thread-pool hop is spent on it: making a Session does no I/O
    (the connection is checked out by the first query, in the route's thread), and
    closing after a commit, or in autocommit, sends nothing to the server.
    GET and HEAD only read: their session runs in autocommit, which spares the BEGIN and
    ROLLBACK round trips (each statement still sees committed data only).
    """
    factory = (
        request.app.state.read_sessionmaker if request.method in ("GET", "HEAD") else request.app.state.sessionmaker
    )
    session: Session = factory()
    try:
        yield session
    finally:
        session.close()


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


async def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]


#: Declares the scheme in OpenAPI ("Authorize" in the docs); the checking is ours, for clearer 401s.
_bearer = HTTPBearer(auto_error=False, description="An API key from `ppruning apikey create`.")


def get_current_owner(
    request: Request,
    session: SessionDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The key's owner; without an Authorization header, the dashboard session's (its CSRF token checked)."""
    authorization = request.headers.get("authorization")
    if authorization is None and has_session_cookie(request):
        return session_owner(request, session)
    return authenticate(session, authorization, request.app.state.bootstrap_keys)


def revocable_caller_hash(request: Request) -> str | None:
    """The digest a live stream re-checks: the bearer key's, or the dashboard session's."""
    authorization = request.headers.get("authorization")
    if authorization is None and has_session_cookie(request):
        return session_revocable_hash(request)
    return revocable_key_hash(authorization, request.app.state.bootstrap_keys)


CurrentOwner = Annotated[str, Depends(get_current_owner)]
