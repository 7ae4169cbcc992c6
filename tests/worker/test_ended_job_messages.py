"""A message of a job that already ended is dropped by the consumer, without a pool child."""

from __future__ import annotations

from unittest import mock

import pytest
from celery.contrib.testing.mocks import TaskMessage
from celery.exceptions import TaskRevokedError
from celery.utils.imports import symbol_by_name


@pytest.fixture
def process_settings(pg_url, tmp_path, monkeypatch):
    from jobs.settings import get_settings

    monkeypatch.setenv("PPRUNING_DATABASE_URL", pg_url)
    monkeypatch.setenv("PPRUNING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _request(job_id):  # type: ignore[no-untyped-def]
    """The request the worker's consumer builds for a message of ``job_id`` (the task's Request class)."""
    from worker.celery_app import app
    from worker.tasks import run_job

    acked = mock.Mock()
    cls = symbol_by_name(run_job.Request)
    return cls(TaskMessage(run_job.name, args=[str(job_id)]), app=app, task=run_job, on_ack=acked), acked


def test_a_cancelled_jobs_message_is_acknowledged_without_reaching_the_pool(process_settings, make_job):
    cancelled = make_job(state="cancelled", cancel_requested=True)
    request, acked = _request(cancelled)
    pool = mock.Mock()
    with pytest.raises(TaskRevokedError):
        request.execute_using_pool(pool)
    pool.apply_async.assert_not_called()
    acked.assert_called_once()


def test_a_queued_jobs_message_goes_to_the_pool(process_settings, make_job):
    queued = make_job(state="queued")
    request, acked = _request(queued)
    pool = mock.Mock()
    request.execute_using_pool(pool)
    pool.apply_async.assert_called_once()
    acked.assert_not_called()
