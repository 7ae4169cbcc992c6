"""What a route needs, as annotated types: ``def route(session: SessionDep, owner: CurrentOwner)``.

Everything hangs off ``app.state`` (set by :func:`api.main.create_app`), so an app made
for a test database serves that database only; tests override :func:`get_dispatcher`
to capture messages instead of sending them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import authenticate
from api.dispatch import Dispatcher
from api.settings import Settings
from api.storage import ArtifactStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the route commits, anything left open is rolled back."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


def get_store(request: Request) -> ArtifactStore:
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
    return authenticate(session, request.headers.get("authorization"), request.app.state.bootstrap_keys)


CurrentOwner = Annotated[str, Depends(get_current_owner)]
