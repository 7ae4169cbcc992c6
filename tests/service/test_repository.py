"""Data access on PostgreSQL: the one transition(), idempotent create, metrics, cancel; never committing."""

from __future__ import annotations

import pytest

from jobs.store import repository
from jobs.store.models import Job
from jobs.store.states import IllegalTransition, JobState


def _job(db_session, **kw) -> Job:  # type: ignore[no-untyped-def]
    job, created = repository.create_job(db_session, owner="repo-owner", kind="prune", spec={"kind": "prune"}, **kw)
    assert created
    return job


def test_transition_enforces_the_state_machine_and_stamps_times(db_session):
    job = _job(db_session)
    with pytest.raises(IllegalTransition):
        repository.transition(db_session, job, JobState.SUCCEEDED)
    repository.transition(db_session, job, JobState.RUNNING, worker="w1", attempts=Job.attempts + 1)
    assert (job.state, job.worker, job.attempts) == ("running", "w1", 1) and job.started_at is not None
    repository.transition(db_session, job, JobState.QUEUED)  # a retried attempt
    repository.transition(db_session, job, JobState.RUNNING)
    repository.transition(db_session, job, JobState.SUCCEEDED, progress=1.0)
    assert job.finished_at is not None and job.finished_at >= job.started_at
    with pytest.raises(IllegalTransition):
        repository.transition(db_session, job, JobState.RUNNING)


def test_transition_from_a_stale_read_names_the_real_state(db_session):
    job = _job(db_session)
    db_session.execute(Job.__table__.update().where(Job.id == job.id).values(state="cancelled"))
    with pytest.raises(IllegalTransition) as info:
        repository.transition(db_session, job, JobState.RUNNING)  # the object still says queued
    assert info.value.current is JobState.CANCELLED and job.state == "cancelled"


def test_create_job_with_a_key_is_idempotent_by_body_hash(db_session):
    first, _ = repository.create_job(db_session, owner="o", kind="prune", spec={"a": 1}, idempotency_key="k")
    again, created = repository.create_job(db_session, owner="o", kind="prune", spec={"a": 1}, idempotency_key="k")
    assert not created and again.id == first.id
    with pytest.raises(repository.IdempotencyConflict):
        repository.create_job(db_session, owner="o", kind="prune", spec={"a": 2}, idempotency_key="k")


def test_request_hash_is_canonical():
    assert repository.request_hash({"b": 1, "a": "é"}) == repository.request_hash({"a": "é", "b": 1})
    assert repository.request_hash({"a": 1}) != repository.request_hash({"a": 1.5})


def test_record_metrics_replaces_a_value_of_the_same_name_and_split(db_session):
    job = _job(db_session)
    repository.record_metrics(db_session, job.id, {"validation": {"accuracy": 0.5}})
    repository.record_metrics(db_session, job.id, {"validation": {"accuracy": 0.9, "f1": 0.8}})
    db_session.refresh(job)
    assert repository.metrics_by_split(job.metrics) == {"validation": {"accuracy": 0.9, "f1": 0.8}}


def test_cancel_depends_on_the_state(db_session):
    queued = _job(db_session)
    repository.cancel_job(db_session, queued)
    assert queued.state == "cancelled"
    running = _job(db_session)
    repository.transition(db_session, running, JobState.RUNNING)
    repository.cancel_job(db_session, running)
    assert running.state == "running" and running.cancel_requested
    with pytest.raises(repository.NotCancellable):
        repository.cancel_job(db_session, queued)


def test_repository_functions_do_not_commit(pg_url):
    from sqlalchemy import func, select

    from jobs.store.session import get_sessionmaker

    owner = "no-commit-owner"
    writer, reader = get_sessionmaker(pg_url)(), get_sessionmaker(pg_url)()
    try:
        job, _ = repository.create_job(writer, owner=owner, kind="prune", spec={}, idempotency_key="k")
        repository.add_event(writer, job.id, "hello")
        repository.record_metrics(writer, job.id, {"": {"m": 1.0}})
        repository.transition(writer, job, JobState.RUNNING)
        writer.flush()
        assert reader.scalar(select(func.count()).select_from(Job).where(Job.owner == owner)) == 0
    finally:
        writer.rollback()
        writer.close()
        reader.close()
