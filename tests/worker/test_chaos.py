"""Chaos: PostgreSQL and Redis restart and the artifact store turns read-only while a real worker runs jobs.

The services are private ones (:mod:`tests.support.private_services`), so restarting them
disturbs no other test run. The run must end with every job final, each succeeded job with
exactly one set of artifacts (one attempt's folder, every recorded object present with its
size), and nothing orphaned: no folder in the store of a job or attempt the database does not
point to, no resume state, no temporary file, no work folder left on the worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from jobs.store.migrate import upgrade
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.readonly import ReadOnly
from tests.worker.conftest import FIXTURES, served_api
from tests.worker.harness import API_KEY, Backend, WorkerProcess, new_name, prune_spec

FINAL = {"succeeded", "failed", "cancelled"}
JOBS = 3


@pytest.fixture
def services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    pg, redis = PrivatePostgres(), None
    try:
        redis = PrivateRedis()
        yield pg, redis
    finally:
        if redis is not None:
            redis.stop()
        pg.stop()


def _get(http: httpx.Client, path: str) -> dict | None:
    """The resource, or None while the service is unavailable (a restarting database is a 503)."""
    try:
        r = http.get(path)
    except httpx.HTTPError:
        return None
    assert r.status_code in (200, 503), r.text  # never a 500
    return r.json() if r.status_code == 200 else None


def _states(http: httpx.Client, ids: list[str]) -> dict[str, str] | None:
    states = {}
    for job_id in ids:
        job = _get(http, f"/jobs/{job_id}")
        if job is None:
            return None
        states[job_id] = job["state"]
    return states


def _problems(http: httpx.Client, ids: list[str]) -> list[dict]:
    """Every job's warnings and errors, each tagged with its job."""
    found = []
    for job_id in ids:
        events = _get(http, f"/jobs/{job_id}/events?limit=1000") or {"items": []}
        found += [{"job": job_id, **e} for e in events["items"] if e["level"] != "info"]
    return found


def _wait_until(what: str, predicate, timeout_s: float, describe=None) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate``; on a timeout, say what was seen (``describe()``) so a failing run explains itself."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    seen = f": {describe()}" if describe is not None else ""
    raise AssertionError(f"timed out waiting for {what}{seen}")


def test_restarts_and_a_read_only_store_end_with_every_job_final_and_nothing_orphaned(
    services, e2e_root, tiny_model, tmp_path
):
    pg, redis = services
    db_url = pg.create_database("chaos")
    upgrade(db_url)
    data = tmp_path / "service"
    data.mkdir()
    backend = Backend("chaos", db_url, redis.url, data, [e2e_root / "models", FIXTURES])
    (data / "artifacts").mkdir()
    worker = WorkerProcess(backend, new_name("chaos"))
    read_only: ReadOnly | None = None
    try:
        worker.wait_ready()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        with served_api(backend) as url, httpx.Client(base_url=url, timeout=30, headers=auth) as http:
            ids = []
            for i in range(JOBS):
                r = http.post("/jobs", json=prune_spec(tiny_model, FIXTURES, measure=False, seed=i))
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])

            def some_running() -> bool:
                states = _states(http, ids)
                return states is not None and "running" in states.values()

            _wait_until("a running job", some_running, 120)
            pg.restart()
            _wait_until("a running job after the database restart", some_running, 120)
            redis.restart()
            _wait_until("a running job after the broker restart", some_running, 120)
            read_only = ReadOnly(data / "artifacts")
            time.sleep(6)
            read_only.release()

            def all_final() -> bool:
                states = _states(http, ids)
                return states is not None and set(states.values()) <= FINAL

            _wait_until(
                "every job final", all_final, 240,
                lambda: (_states(http, ids), [(e["job"], e["message"][:120]) for e in _problems(http, ids)],
                         worker.log()[-3000:]),
            )
            jobs = [_get(http, f"/jobs/{job_id}") for job_id in ids]
            for job_id in ids:  # what the faults did, for the log of a failing run
                events = _get(http, f"/jobs/{job_id}/events?limit=1000") or {"items": []}
                print(job_id, [e["message"][:100] for e in events["items"] if e["level"] != "info"])
    finally:
        if read_only is not None:
            read_only.release()
        worker.stop()
    log = worker.log()
    assert [job["state"] for job in jobs] == ["succeeded"] * JOBS, (
        [(j["state"], j["error"]) for j in jobs], log[-3000:]
    )
    _assert_one_set_each_and_nothing_orphaned(db_url, ids, data)


def _assert_one_set_each_and_nothing_orphaned(db_url: str, ids: list[str], data: Path) -> None:
    from jobs.store import repository
    from jobs.store.session import get_sessionmaker

    store = data / "artifacts" / "jobs"
    expected: dict[str, set[str]] = {}
    with get_sessionmaker(db_url)() as session:
        for job_id in ids:
            folders = set()
            artifacts = repository.list_artifacts(session, uuid.UUID(job_id))
            assert artifacts, job_id
            for artifact in artifacts:
                path = Path(unquote(urlparse(artifact.uri).path))
                assert path.is_file() and path.stat().st_size == artifact.size, artifact.name
                folders.add(path.parent.name)
            assert len(folders) == 1 and next(iter(folders)).startswith("attempt-"), (job_id, folders)
            expected[job_id] = folders
    on_disk = {p.name: {q.name for q in p.iterdir()} for p in store.iterdir()} if store.exists() else {}
    assert on_disk == expected, on_disk  # no other job, no other attempt, no resume state
    assert [p for p in store.rglob("*") if ".tmp-" in p.name] == []
    work = data / "work"
    assert not work.exists() or list(work.iterdir()) == []
