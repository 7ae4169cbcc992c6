"""The per-owner running cap is a real cap: claims skip an owner at it, the skipped job waits
parked, and the end of one of the owner's jobs sends the oldest parked one again."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete

from jobs.settings import Settings
from jobs.store import repository
from jobs.store.claims import claim_job
from jobs.store.models import Job
from jobs.store.owner_slots import PARKED, park_if_capped
from jobs.store.states import JobState
from worker import owner_slots

from .conftest import load


@pytest.fixture
def owner_jobs(sessions) -> Iterator[Callable[..., uuid.UUID]]:
    """Jobs of owners unique to the test (other worker tests share the database), deleted afterwards."""
    made: list[uuid.UUID] = []

    def make(owner: str, **fields) -> uuid.UUID:
        fields = {"kind": "prune", "spec": {"kind": "prune"}, "progress": 0.0, "attempts": 0,
                  "cancel_requested": False, **fields}  # fmt: skip
        job = Job(owner=owner, **fields)
        with sessions.begin() as session:
            session.add(job)
        made.append(job.id)
        return job.id

    yield make
    with sessions.begin() as session:
        session.execute(delete(Job).where(Job.id.in_(made)))


def _claim(sessions, job_id, cap):
    with sessions.begin() as session:
        return claim_job(session, job_id, "w1", 60.0, max_running_per_owner=cap)


def test_a_claim_skips_an_owner_at_its_running_cap_and_the_job_waits_parked(sessions, owner_jobs):
    owner, other = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    first, second, third = (owner_jobs(owner) for _ in range(3))
    assert _claim(sessions, first, 2) is not None and _claim(sessions, second, 2) is not None
    assert _claim(sessions, third, 2) is None
    with sessions.begin() as session:
        assert park_if_capped(session, third, 2)
    job = load(sessions, third)
    assert job.state == "queued" and job.message.startswith(PARKED) and "=2" in job.message
    assert _claim(sessions, owner_jobs(other), 2) is not None  # another owner is not held back
    assert _claim(sessions, third, 0) is not None  # no cap: no wait


def test_a_sweep_parent_waiting_for_its_children_holds_no_slot(sessions, owner_jobs):
    owner = f"s-{uuid.uuid4().hex[:6]}"
    owner_jobs(owner, kind="sweep", spec={"kind": "sweep"}, state="running", stage="waiting")
    assert _claim(sessions, owner_jobs(owner), 1) is not None


def test_when_one_of_its_jobs_ends_the_owners_oldest_parked_job_is_sent_again(
    sessions, owner_jobs, pg_url, tmp_path, monkeypatch
):
    owner = f"w-{uuid.uuid4().hex[:6]}"
    running, older, newer = (owner_jobs(owner) for _ in range(3))
    assert _claim(sessions, running, 1) is not None
    for job_id in (older, newer):
        assert _claim(sessions, job_id, 1) is None
        with sessions.begin() as session:
            assert park_if_capped(session, job_id, 1)
    sent: list[uuid.UUID] = []
    monkeypatch.setattr(owner_slots, "send_job", lambda broker, job_id, spec: sent.append(job_id))
    settings = Settings(data_dir=tmp_path, database_url=pg_url, max_running_jobs_per_owner=1)
    assert owner_slots.wake_parked(sessions, settings, running) == []  # still running: no slot is free
    with sessions.begin() as session:
        repository.transition(session, session.get(Job, running), JobState.SUCCEEDED)
    assert owner_slots.wake_parked(sessions, settings, running) == [older] and sent == [older]
    assert not load(sessions, older).message.startswith(PARKED)
    assert load(sessions, newer).message.startswith(PARKED)
    assert _claim(sessions, older, 1) is not None


def test_concurrent_claims_of_one_owners_jobs_never_pass_the_cap(sessions, owner_jobs):
    owner = f"c-{uuid.uuid4().hex[:6]}"
    jobs = [owner_jobs(owner) for _ in range(8)]
    barrier = threading.Barrier(len(jobs))
    claims: list[object] = []

    def race(job_id: uuid.UUID) -> None:
        barrier.wait()
        claims.append(_claim(sessions, job_id, 2))

    threads = [threading.Thread(target=race, args=(job_id,)) for job_id in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c is not None for c in claims) == 2
