"""The reaper finds jobs nobody works on and sends them again, one message each."""

from __future__ import annotations

from datetime import timedelta

from jobs.store.models import utcnow
from worker.reaper import reap_once

from .conftest import load

TIMEOUTS = {"heartbeat_timeout_s": 60.0, "queued_timeout_s": 300.0}


def test_a_running_job_with_a_stale_heartbeat_is_requeued_and_resent_once(sessions, make_job):
    dead = make_job(state="running", attempts=1, heartbeat_at=utcnow() - timedelta(minutes=5))
    alive = make_job(state="running", attempts=1, heartbeat_at=utcnow())
    sent: list[object] = []
    reap_once(sessions, lambda job_id, spec: sent.append(job_id), **TIMEOUTS)
    assert dead in sent and alive not in sent
    job = load(sessions, dead)
    assert (job.state, job.heartbeat_at) == ("queued", None)
    assert load(sessions, alive).state == "running"
    again: list[object] = []
    reap_once(sessions, lambda job_id, spec: again.append(job_id), **TIMEOUTS)
    assert dead not in again  # re-queued just now: not queued "too long"


def test_a_job_queued_too_long_is_resent_and_its_clock_restarts(sessions, make_job):
    old = make_job(state="queued", updated_at=utcnow() - timedelta(hours=1), spec={"kind": "prune", "device": "cpu"})
    fresh = make_job(state="queued")
    sent: list[tuple[object, dict]] = []
    reap_once(sessions, lambda job_id, spec: sent.append((job_id, spec)), **TIMEOUTS)
    assert (old, {"kind": "prune", "device": "cpu"}) in sent
    assert fresh not in [job_id for job_id, _ in sent]
    assert load(sessions, old).updated_at > utcnow() - timedelta(minutes=1)


def test_a_dead_workers_job_whose_cancel_was_requested_is_cancelled_not_resent(sessions, make_job):
    job_id = make_job(state="running", attempts=1, heartbeat_at=utcnow() - timedelta(hours=1), cancel_requested=True)
    sent: list[object] = []
    reap_once(sessions, lambda j, s: sent.append(j), **TIMEOUTS)
    assert job_id not in sent and load(sessions, job_id).state == "cancelled"
