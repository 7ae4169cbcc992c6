"""A transient error is retried by Celery itself (``autoretry_for`` with ``retry_backoff`` and full jitter).

The task runs eagerly (``apply``) against a database nothing listens on: claiming the job
fails with a lost connection, which is transient, so Celery retries the message up to
``MAX_RETRIES`` times, each after its own backoff, and then lets the error through.
"""

from __future__ import annotations

import uuid

import pytest
from celery.signals import task_retry

from jobs.settings import get_settings
from worker.errors import BACKOFF_BASE_S, BACKOFF_CAP_S, MAX_RETRIES, TransientJobError


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PPRUNING_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    monkeypatch.setenv("PPRUNING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_job_that_cannot_be_claimed_is_retried_by_celery_with_capped_jittered_backoff(unreachable_database) -> None:
    from worker.tasks import run_job

    waits: list[float] = []

    def record(sender=None, reason=None, **_: object) -> None:  # type: ignore[no-untyped-def]
        waits.append(float(reason.when))

    task_retry.connect(record, sender=run_job, weak=False)
    try:
        outcome = run_job.apply(args=[str(uuid.uuid4())])
    finally:
        task_retry.disconnect(record, sender=run_job)
    assert outcome.failed() and isinstance(outcome.result, TransientJobError)
    assert "could not be claimed" in str(outcome.result) and "unreachable" in str(outcome.result)
    assert len(waits) == MAX_RETRIES
    for retries, wait in enumerate(waits):  # full jitter: anywhere from 0 to the doubled, capped step
        assert 0 <= wait <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retries)
    assert run_job.retry_jitter is True and run_job.retry_backoff == BACKOFF_BASE_S
