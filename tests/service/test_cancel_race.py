"""A cancel that races the worker's claim is kept, not refused."""

from __future__ import annotations

from jobs.store import repository
from jobs.store.claims import claim_job
from jobs.store.models import Job
from jobs.store.session import get_sessionmaker, session_scope


def test_a_cancel_that_races_the_claim_flags_the_running_job(pg_url):
    with session_scope(pg_url) as session:
        job, _ = repository.create_job(session, owner="race-owner", kind="prune", spec={"kind": "prune"})
        job_id = job.id
    sessions = get_sessionmaker(pg_url)
    with sessions() as api_session:
        seen = api_session.get(Job, job_id)
        assert seen.state == "queued"  # the route has read the job ...
        with sessions.begin() as worker_session:  # ... and a worker claims it before the route writes
            assert claim_job(worker_session, job_id, "w1", 60.0) is not None
        repository.cancel_job(api_session, seen)
        api_session.commit()
        assert (seen.state, seen.cancel_requested) == ("running", True)
    with session_scope(pg_url) as session:
        stored = session.get(Job, job_id)
        assert (stored.state, stored.cancel_requested) == ("running", True)
        session.delete(stored)
