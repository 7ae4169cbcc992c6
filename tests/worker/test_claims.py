"""Claims decide who runs a job: once, again after a worker died, never twice at a time."""

from __future__ import annotations

import threading
from datetime import timedelta

from jobs.store.claims import MAX_ATTEMPTS, claim_job, fenced_update, heartbeat
from jobs.store.models import utcnow

from .conftest import load


def _claim(sessions, job_id, worker="w1", timeout=60.0, now=None):
    with sessions.begin() as session:
        return claim_job(session, job_id, worker, timeout, now=now)


def test_a_queued_job_is_claimed_once_and_a_duplicate_delivery_gets_nothing(sessions, make_job):
    job_id = make_job()
    first = _claim(sessions, job_id, "w1")
    assert first is not None and first.attempt == 1 and first.kind == "prune"
    assert _claim(sessions, job_id, "w2") is None
    job = load(sessions, job_id)
    assert (job.state, job.attempts, job.worker) == ("running", 1, "w1")
    assert job.heartbeat_at is not None and job.started_at is not None


def test_concurrent_claims_of_one_job_have_exactly_one_winner(sessions, make_job):
    job_id = make_job()
    results: list[object] = []
    barrier = threading.Barrier(6)

    def race(name: str) -> None:
        barrier.wait()
        results.append(_claim(sessions, job_id, name))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert load(sessions, job_id).attempts == 1


def test_a_running_job_whose_heartbeat_went_stale_is_claimed_again_as_the_next_attempt(sessions, make_job):
    job_id = make_job()
    first = _claim(sessions, job_id, "w1", timeout=30)
    assert _claim(sessions, job_id, "w2", timeout=30) is None  # w1 is alive
    later = utcnow() + timedelta(seconds=31)
    second = _claim(sessions, job_id, "w2", timeout=30, now=later)
    assert second is not None and second.attempt == 2
    # The first attempt is fenced off: its writes no longer land.
    with sessions.begin() as session:
        assert fenced_update(session, first, message="zombie") is False
        assert heartbeat(session, first) is None
        assert heartbeat(session, second) is False
    assert load(sessions, job_id).worker == "w2"


def test_finished_jobs_are_never_claimed(sessions, make_job):
    for state in ("succeeded", "failed", "cancelled"):
        assert _claim(sessions, make_job(state=state)) is None


def test_a_dead_workers_job_with_a_cancel_request_is_cancelled_instead_of_rerun(sessions, make_job):
    job_id = make_job(state="running", attempts=1, heartbeat_at=utcnow() - timedelta(hours=1), cancel_requested=True)
    assert _claim(sessions, job_id) is None
    job = load(sessions, job_id)
    assert job.state == "cancelled" and job.finished_at is not None


def test_a_job_that_killed_its_worker_every_time_fails_as_worker_lost(sessions, make_job):
    job_id = make_job(state="running", attempts=MAX_ATTEMPTS, heartbeat_at=utcnow() - timedelta(hours=1))
    assert _claim(sessions, job_id) is None
    job = load(sessions, job_id)
    assert (job.state, job.error_type) == ("failed", "WorkerLost")
    assert "died" in job.error_message


def test_a_claim_that_ends_the_job_says_so_so_its_callback_is_sent(sessions, make_job):
    from jobs.store.claims import claim_or_settle

    stale = utcnow() - timedelta(hours=1)
    cancelled = make_job(state="running", attempts=1, heartbeat_at=stale, cancel_requested=True)
    worn_out = make_job(state="running", attempts=MAX_ATTEMPTS, heartbeat_at=stale)
    finished = make_job(state="succeeded", attempts=1)
    outcomes = {}
    for job_id in (cancelled, worn_out, finished):
        with sessions.begin() as session:
            outcomes[job_id] = claim_or_settle(session, job_id, "w1", 60.0)
    assert outcomes[cancelled] == (None, True) and load(sessions, cancelled).state == "cancelled"
    assert outcomes[worn_out] == (None, True) and load(sessions, worn_out).error_type == "WorkerLost"
    assert outcomes[finished] == (None, False)
