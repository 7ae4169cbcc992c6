"""Fixtures of the service tests: an app bound to the test database, keys, a dispatcher that records.

The app talks to the real PostgreSQL of ``pg_url``; rows are committed for real (each
test uses its own owner, so tests never see each other's jobs). Messages to the workers
are captured at the dispatch boundary; tests that need the broker use real Redis.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from jobs.settings import Settings


@dataclass
class RecordingDispatcher:
    """Stands at the boundary the API owns: records (job_id, queue) instead of publishing."""

    sent: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    fail_with: Exception | None = None

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((job_id, queue))

    def ping(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory, tiny_bert_path: Path) -> Path:
    """The allowed root: a copy of the tiny BERT (``bert/``), a custom-task CSV, and ``escape``,
    a symlink to a folder outside the root (which must stay refused)."""
    root = tmp_path_factory.mktemp("allowed")
    shutil.copytree(tiny_bert_path, root / "bert")
    (root / "escape").symlink_to(tiny_bert_path, target_is_directory=True)
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("sentence,label\nfine movie,1\nbad movie,0\n")
    return root


@pytest.fixture(scope="session")
def service_settings(pg_url: str, model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=pg_url,
        broker_url="redis://127.0.0.1:6379/15",  # unused: the dispatcher is replaced
        artifact_root=tmp_path_factory.mktemp("artifacts").as_uri(),
        allowed_model_roots=[model_root],
        api_keys=["bootstrap-owner:bootstrap-secret"],
        max_body_bytes=64_000,
        callback_secret="service-tests-callback-key",
    )


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def app(service_settings: Settings, dispatcher: RecordingDispatcher):  # type: ignore[no-untyped-def]
    return create_app(service_settings, dispatcher=dispatcher)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _new_key(pg_url: str, owner: str) -> str:
    from api.auth import new_secret
    from jobs.store import keys
    from jobs.store.session import session_scope

    secret = new_secret()
    with session_scope(pg_url) as session:
        keys.create_api_key(session, f"key-{uuid.uuid4().hex[:10]}", owner, secret)
    return secret


@pytest.fixture
def owner() -> str:
    return f"owner-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def auth(pg_url: str, owner: str) -> dict[str, str]:
    """Headers with a fresh key of a fresh owner, stored hashed in api_keys."""
    return {"Authorization": f"Bearer {_new_key(pg_url, owner)}"}


@pytest.fixture
def other_auth(pg_url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_new_key(pg_url, f'other-{uuid.uuid4().hex[:10]}')}"}


@pytest.fixture
def prune_spec(model_root: Path) -> dict:
    """A valid prune spec on the tiny BERT under the allowed root."""
    return {
        "kind": "prune",
        "model": {"id": str(model_root / "bert")},
        "task": {"name": "sst2"},
        "method": "ppruning",
        "target": {"flops_reduction": 0.3},
    }


def count_jobs(pg_url: str, owner: str) -> int:
    from sqlalchemy import func, select

    from jobs.store.models import Job
    from jobs.store.session import session_scope

    with session_scope(pg_url) as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner)))
