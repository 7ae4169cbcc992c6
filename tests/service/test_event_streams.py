"""Live event streams under many watchers: no database connection held per stream, bounds with
a clear 429, liveness that never waits for the pool, and a revoked key's streams ending."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from contextlib import AsyncExitStack

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.main import create_app
from jobs.store import keys, repository
from jobs.store.models import Job
from jobs.store.session import get_engine, session_scope
from jobs.store.states import JobState
from tests.service.conftest import RecordingDispatcher, _new_key
from tests.support.served import serve

STREAM = {"Accept": "text/event-stream"}


def own_engine_url(pg_url: str) -> str:
    """The test database under another URL: an engine (and pool) of its own, whose checkouts can be counted."""
    tag = f"sse-{uuid.uuid4().hex[:8]}"
    return make_url(pg_url).update_query_dict({"application_name": tag}).render_as_string(hide_password=False)


def submit(url: str, auth: dict[str, str], spec: dict) -> str:
    r = httpx.post(f"{url}/jobs", json=spec, headers=auth, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def open_streams(stack: AsyncExitStack, client: httpx.AsyncClient, path: str, auth: dict, n: int) -> list:
    """``n`` streams opened at once; each answered 200 with its ``retry:`` line read."""

    async def one() -> httpx.Response:
        response = await stack.enter_async_context(client.stream("GET", path, headers={**auth, **STREAM}))
        assert response.status_code == 200, await response.aread()
        return response

    return list(await asyncio.gather(*(one() for _ in range(n))))


def test_open_streams_hold_no_database_connection_and_share_one_poller(service_settings, pg_url, auth, prune_spec):
    url_db = own_engine_url(pg_url)
    settings = service_settings.model_copy(update={"database_url": url_db, "event_poll_s": 0.2})
    app = create_app(settings, dispatcher=RecordingDispatcher())
    with serve(app) as url:
        job_id = submit(url, auth, prune_spec)

        async def scenario() -> tuple[int, float]:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=url, timeout=5.0, limits=limits) as client, AsyncExitStack() as stack:
                await open_streams(stack, client, f"/jobs/{job_id}/events", auth, 40)  # more than the pool holds
                polls = app.state.event_hub.polls
                await asyncio.sleep(1.0)
                polls = app.state.event_hub.polls - polls
                held = get_engine(url_db).pool.checkedout()
                started = time.perf_counter()
                r = await client.get(f"/jobs/{job_id}", headers=auth)
                assert r.status_code == 200, r.text
                return held, time.perf_counter() - started, polls

        held, took, polls = asyncio.run(scenario())
    assert held <= 1, f"{held} connections checked out of the pool with 40 streams open"
    assert took < 2.0
    assert polls <= 10, f"{polls} polls in 1 s for 40 streams on one job: one poller should read for all"


def test_streams_past_the_bounds_get_429_with_retry_after_and_a_closed_one_frees_its_place(
    service_settings, pg_url, auth, other_auth, prune_spec
):
    settings = service_settings.model_copy(update={"max_event_streams_per_owner": 2, "max_event_streams": 3})
    app = create_app(settings, dispatcher=RecordingDispatcher())
    with serve(app) as url:
        mine = submit(url, auth, prune_spec)
        theirs = submit(url, other_auth, prune_spec)

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
                async with AsyncExitStack() as stack:
                    await open_streams(stack, client, f"/jobs/{mine}/events", auth, 2)
                    r = await client.get(f"/jobs/{mine}/events", headers={**auth, **STREAM})
                    assert r.status_code == 429 and r.json()["error"]["type"] == "too_many_streams"
                    assert int(r.headers["Retry-After"]) > 0 and "PER_OWNER" in r.json()["error"]["message"]
                    await open_streams(stack, client, f"/jobs/{theirs}/events", other_auth, 1)  # 3 in all
                    r = await client.get(f"/jobs/{theirs}/events", headers={**other_auth, **STREAM})
                    assert r.status_code == 429 and "PPRUNING_MAX_EVENT_STREAMS=" in r.json()["error"]["message"]
                    listing = await client.get(f"/jobs/{mine}/events", headers=auth)  # pages are not streams
                    assert listing.status_code == 200
                for _ in range(50):  # the closed streams leave the hub
                    if app.state.event_hub.open_streams == 0:
                        break
                    await asyncio.sleep(0.1)
                async with AsyncExitStack() as stack:
                    await open_streams(stack, client, f"/jobs/{mine}/events", auth, 2)

        asyncio.run(scenario())


def test_healthz_answers_while_every_thread_waits_for_the_database_pool(service_settings, pg_url, auth, prune_spec):
    url_db = own_engine_url(pg_url)
    app = create_app(service_settings.model_copy(update={"database_url": url_db}), dispatcher=RecordingDispatcher())
    with serve(app) as url:
        job_id = submit(url, auth, prune_spec)
        engine = get_engine(url_db)
        held = [engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]  # the pool is empty
        results: list[int] = []

        def read() -> None:
            try:
                results.append(httpx.get(f"{url}/jobs/{job_id}", headers=auth, timeout=60).status_code)
            except httpx.HTTPError:
                results.append(-1)

        readers = [threading.Thread(target=read) for _ in range(60)]  # more than the thread pool's 40
        try:
            for t in readers:
                t.start()
            time.sleep(1.0)
            started = time.perf_counter()
            r = httpx.get(f"{url}/healthz", timeout=5)
            took = time.perf_counter() - started
        finally:
            for conn in held:
                conn.close()
            for t in readers:
                t.join(timeout=60)
    assert r.status_code == 200 and took < 0.5, took
    assert set(results) == {200}  # the readers were served once connections came back


def test_a_stream_whose_key_is_revoked_ends_with_an_error_event(service_settings, pg_url, owner, prune_spec):
    secret = _new_key(pg_url, owner)
    auth = {"Authorization": f"Bearer {secret}"}
    app = create_app(service_settings.model_copy(update={"event_poll_s": 0.2}), dispatcher=RecordingDispatcher())
    with serve(app) as url:
        job_id = submit(url, auth, prune_spec)
        with httpx.Client(base_url=url, timeout=httpx.Timeout(5.0, read=5.0)) as client:
            with client.stream("GET", f"/jobs/{job_id}/events", headers={**auth, **STREAM}) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                seen: list[str] = []
                for line in lines:  # the 'queued' event first
                    seen.append(line)
                    if line.startswith("data:"):
                        break
                with session_scope(pg_url) as session:
                    key = session.scalar(
                        text("SELECT name FROM api_keys WHERE key_hash = :h"), {"h": keys.hash_key(secret)}
                    )
                    keys.revoke_api_key(session, key)
                seen += list(lines)  # the stream ends by itself; a read timeout fails the test
            assert client.get(f"/jobs/{job_id}/events", headers=auth).status_code == 401
    assert "event: error" in seen and any('"unauthorized"' in line for line in seen)


def test_a_stream_sends_what_is_committed_later_then_the_end(service_settings, pg_url, auth, prune_spec):
    app = create_app(service_settings.model_copy(update={"event_poll_s": 0.1}), dispatcher=RecordingDispatcher())
    with serve(app) as url:
        job_id = uuid.UUID(submit(url, auth, prune_spec))
        with httpx.Client(base_url=url, timeout=httpx.Timeout(5.0, read=5.0)) as client:
            with client.stream("GET", f"/jobs/{job_id}/events", headers={**auth, **STREAM}) as response:
                lines = response.iter_lines()
                next(line for line in lines if line.startswith("data:"))
                with session_scope(pg_url) as session:
                    job = session.get(Job, job_id)
                    repository.transition(session, job, JobState.RUNNING)
                    for i in range(3):
                        repository.add_event(session, job_id, f"step {i}")
                    repository.transition(session, job, JobState.FAILED, error_type="X", error_message="boom")
                rest = list(lines)
    data = [line for line in rest if line.startswith("data:")]
    assert [d for d in data if "step " in d] == [d for d in data[:3]] and len(data) == 4
    assert "event: end" in rest and '"state":"failed"' in data[-1]


def test_a_reconnecting_stream_of_a_finished_job_gets_the_rest_in_batches_without_gap_or_repeat(
    service_settings, pg_url, auth, prune_spec
):
    app = create_app(service_settings, dispatcher=RecordingDispatcher())
    with serve(app) as url:
        job_id = uuid.UUID(submit(url, auth, prune_spec))
        with session_scope(pg_url) as session:
            for i in range(1200):  # more than one batch
                repository.add_event(session, job_id, f"e{i}")
            repository.cancel_job(session, session.get(Job, job_id))
        listing = httpx.get(f"{url}/jobs/{job_id}/events", params={"limit": 1000}, headers=auth).json()["items"]
        middle = listing[600]["id"]
        with httpx.Client(base_url=url, timeout=10) as client:
            r = client.get(f"/jobs/{job_id}/events", headers={**auth, **STREAM, "Last-Event-ID": str(middle)})
    ids = [int(line[4:]) for line in r.text.splitlines() if line.startswith("id: ")]
    assert ids[0] > middle and ids == sorted(ids) and len(ids) == len(set(ids)) and len(ids) == 1202 - 601
    assert r.text.rstrip().splitlines()[-2] == "event: end"


def test_a_stream_opened_while_a_poll_runs_is_not_taken_for_one_of_a_deleted_job():
    from api.event_hub import EventHub

    async def scenario() -> None:
        hub = EventHub(lambda: None)  # type: ignore[arg-type,return-value]
        sub = hub.subscribe(uuid.uuid4(), "owner", None, 0)
        assert hub._deliver(set(), {}, set(), set()) is True  # not asked about yet: the next poll will
        assert not sub.items and not sub.done

    asyncio.run(scenario())
