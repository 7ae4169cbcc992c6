"""The reaper re-sends only what is really lost, cancels with a callback, and clears dead work folders."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

import pytest

from jobs.queue import CeleryDispatcher, pending_job_ids
from jobs.store.models import utcnow
from worker.reaper import reap_once
from worker.workdirs import remove_abandoned

from .conftest import load

TIMEOUTS = {"heartbeat_timeout_s": 60.0, "queued_timeout_s": 300.0}


@pytest.fixture(params=["redis", "embedded"])
def broker_url(request, redis_url, tmp_path) -> str:
    if request.param == "redis":
        return redis_url
    return f"sqla+sqlite:///{tmp_path / 'broker.db'}"


def test_a_job_waiting_in_a_backlog_is_not_resent_but_one_whose_message_is_gone_is(sessions, make_job, broker_url):
    long_ago = utcnow() - timedelta(hours=1)
    waiting = make_job(state="queued", updated_at=long_ago, spec={"kind": "prune", "device": "cpu"})
    lost = make_job(state="queued", updated_at=long_ago, spec={"kind": "prune", "device": "cpu"})
    dispatcher = CeleryDispatcher(broker_url)
    try:
        dispatcher.send(waiting, "cpu")  # its message waits behind a backlog; lost's never arrived
    finally:
        dispatcher.close()
    assert waiting in pending_job_ids(broker_url) and lost not in pending_job_ids(broker_url)
    sent: list[uuid.UUID] = []
    reap_once(sessions, lambda job_id, spec: sent.append(job_id), pending=partial(pending_job_ids, broker_url),
              **TIMEOUTS)  # fmt: skip
    assert lost in sent and waiting not in sent
    assert load(sessions, waiting).updated_at > utcnow() - timedelta(minutes=1)  # looked at again later


def test_a_job_the_reaper_cancels_gets_its_callback(sessions, make_job):
    job_id = make_job(state="running", attempts=1, heartbeat_at=utcnow() - timedelta(hours=1), cancel_requested=True)
    finished: list[uuid.UUID] = []
    reap_once(sessions, lambda j, s: None, finished=finished.append, **TIMEOUTS)
    assert finished == [job_id] and load(sessions, job_id).state == "cancelled"


def test_work_folders_of_attempts_that_no_longer_run_are_removed(sessions, make_job, tmp_path):
    running = make_job(state="running", attempts=2, heartbeat_at=utcnow())
    killed = make_job(state="failed", attempts=1)
    work = tmp_path / "work"
    keep = work / f"{running}-2-abc"
    stale = [work / f"{running}-1-def", work / f"{killed}-1-ghi", work / f"{uuid.uuid4()}-1-jkl"]
    for folder in (keep, *stale):
        (folder / "model").mkdir(parents=True)
    (work / "not-a-work-folder").mkdir()
    assert sorted(remove_abandoned(work, sessions)) == sorted(stale)
    assert keep.is_dir() and (work / "not-a-work-folder").is_dir() and not any(p.exists() for p in stale)
