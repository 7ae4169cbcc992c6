"""Fixtures of the worker tests: job rows committed for real (the worker is another process,
or another session), and a session factory on the test's PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from jobs.store.models import Job
from ppruning_client.http_client import Client
from tests.worker.harness import API_KEY, Backend, WorkerProcess, new_name


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of the worker tests alone (overrides the suite's shared one).

    Real workers run a reaper that re-sends every queued job it finds: in a database
    shared with other tests it would pick up their rows.
    """
    from tests.support.databases import migrated_database

    with migrated_database(pg_admin_url, "ppruning_worker_test") as url:
        yield url


@pytest.fixture
def sessions(pg_url: str) -> sessionmaker[Session]:
    from jobs.store.session import get_sessionmaker

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
    from sqlalchemy.orm import selectinload

    with sessions() as session:
        job = session.get(Job, job_id, options=[selectinload(Job.artifacts), selectinload(Job.metrics)])
        assert job is not None
        session.expunge(job)
        return job


# --------------------------------------------------------------------------- a real worker and the API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "custom"


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-e2e")


@pytest.fixture(scope="module")
def tiny_model(e2e_root: Path) -> Path:
    from tests.support.tiny_models import save_tiny_bert

    return save_tiny_bert(e2e_root / "models" / "tiny-bert")


@pytest.fixture(scope="module")
def bert_mlm(e2e_root: Path) -> Path:
    """A tiny BERT saved with its MLM head: what SMP's default head reads."""
    from tests.support.tiny_models import save_tiny_bert_mlm

    return save_tiny_bert_mlm(e2e_root / "models" / "tiny-bert-mlm")


@pytest.fixture(scope="module")
def slow_model(e2e_root: Path) -> Path:
    """Still tiny on disk, but wide FFNs make clustering take seconds: time to kill or cancel mid-job."""
    from tests.support.tiny_models import save_tiny_bert

    return save_tiny_bert(e2e_root / "models" / "wide-bert", num_hidden_layers=6, intermediate_size=2048)


@pytest.fixture(scope="module")
def service_backend(pg_url: str, redis_url: str, e2e_root: Path) -> Backend:
    data = e2e_root / "service"
    data.mkdir(exist_ok=True)
    return Backend("service", pg_url, redis_url, data, [e2e_root / "models", FIXTURES])


@pytest.fixture
def spawn() -> Iterator[Callable[[Backend], WorkerProcess]]:
    """Start real worker processes; every one is stopped (or killed) after the test."""
    started: list[WorkerProcess] = []

    def start(backend: Backend, ready: bool = True) -> WorkerProcess:
        proc = WorkerProcess(backend, new_name("w"))
        started.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@contextmanager
def api_client(backend: Backend) -> Iterator[Client]:
    """The real FastAPI app in process (TestClient), behind the CI client."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    app = create_app(backend.settings())
    with TestClient(app, base_url="http://testserver") as http:
        yield Client("http://testserver", API_KEY, http=http)
    app.state.dispatcher.close()


@contextmanager
def served_api(backend: Backend) -> Iterator[str]:
    """The real app behind real uvicorn on a free port (in a thread); yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    from api.cli import KEEP_ALIVE_S
    from api.main import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(backend.settings())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
    )  # as `ppruning serve` runs it
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.dispatcher.close()
