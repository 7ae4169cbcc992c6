"""Fixtures of the worker tests: job rows committed for real (the worker is another process,
or another session), and a session factory on the test's PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import Job


@pytest.fixture
def sessions(pg_url: str) -> sessionmaker[Session]:
    from api.db.session import get_sessionmaker

    return get_sessionmaker(pg_url)


@pytest.fixture
def make_job(sessions: sessionmaker[Session]) -> Iterator[Callable[..., uuid.UUID]]:
    """Insert and commit a job; every job made is deleted after the test."""
    made: list[uuid.UUID] = []

    def make(spec: dict[str, Any] | None = None, kind: str = "prune", **fields: Any) -> uuid.UUID:
        fields = {"progress": 0.0, "attempts": 0, "cancel_requested": False, **fields}
        job = Job(owner="tester", kind=kind, spec=spec or {"kind": kind}, **fields)
        with sessions.begin() as session:
            session.add(job)
        made.append(job.id)
        return job.id

    yield make
    with sessions.begin() as session:
        session.execute(delete(Job).where(Job.id.in_(made)))


def load(sessions: sessionmaker[Session], job_id: uuid.UUID) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job
