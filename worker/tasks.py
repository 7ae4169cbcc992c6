"""The one Celery task, ``worker.run_job(job_id)``: claim, run, record, notify.

The message carries the job id only; everything else is read from the job row, so a
duplicate or late message is harmless: the claim decides (:mod:`jobs.store.claims`).
"""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

from celery import Task
from celery.exceptions import Ignore, TaskRevokedError
from celery.worker.request import Request
from celery.worker.state import task_ready
from sqlalchemy import select

from jobs.settings import get_settings
from jobs.store.claims import claim_or_settle
from jobs.store.models import Job
from jobs.store.owner_slots import park_if_capped
from jobs.store.session import get_sessionmaker
from jobs.store.states import TERMINAL, JobState
from worker.attempt import Outcome, run_attempt
from worker.callbacks import ATTEMPTS, FIRST_DELAY_S, CallbackRetry, notify, send_once
from worker.celery_app import CALLBACK_TASK_NAME, TASK_NAME, app
from worker.ended import ended_without_attempt
from worker.errors import BACKOFF_BASE_S, BACKOFF_CAP_S, MAX_RETRIES, TransientJobError, classify
from worker.owner_slots import park, wake_parked
from worker.runners import check_runners
from worker.sweep_runs import after_child

log = logging.getLogger(__name__)

check_runners()  # a declared job kind without a runner stops the worker here, not at its first job


def _worker_name(task: Task) -> str:
    return task.request.hostname or socket.gethostname()


def job_has_ended(job_id: str) -> bool:
    """True when the job is gone or finished: its message has nothing left to do."""
    sessions = get_sessionmaker(get_settings().database_url)
    with sessions() as session:
        state = session.scalar(select(Job.state).where(Job.id == uuid.UUID(job_id)))
    return state is None or JobState(state) in TERMINAL


def _nothing_to_run(job_id: str) -> str | None:
    """Why the message of ``job_id`` has nothing to run now (it ended, or its owner is at the running cap)."""
    if job_has_ended(job_id):
        return "has already ended"
    settings = get_settings()
    if park(get_sessionmaker(settings.database_url), settings, uuid.UUID(job_id)):
        return "waits for a free running slot of its owner"
    return None


class SkipEndedJobs(Request):
    """Drops the message of a job that has already ended, or must wait for its owner, before it reaches the pool.

    Each pool child runs one job and is then replaced (``worker_max_tasks_per_child=1``),
    so a message of a job cancelled while queued, or a late duplicate, would cost a child
    restart just to find nothing to claim. The consumer reads the job's state (one indexed
    SELECT) and acknowledges such a message itself; the claim still decides everything else.
    A job whose owner has ``max_running_jobs_per_owner`` jobs running is parked (:mod:`worker.owner_slots`).
    """

    def execute_using_pool(self, pool: Any, **kwargs: Any) -> Any:
        try:
            why = bool(self.args) and _nothing_to_run(str(self.args[0]))
        except Exception:  # cannot tell: let the task's claim decide
            log.debug("could not read the state of job %s before running it", self.args, exc_info=True)
            why = None
        if not why:
            return super().execute_using_pool(pool, **kwargs)
        log.info("job %s %s; its message is dropped without starting a task", self.args[0], why)
        task_ready(self)
        self.acknowledge()
        raise TaskRevokedError(self.id)  # the worker's way to release the pool slot it reserved


@app.task(
    name=CALLBACK_TASK_NAME, ignore_result=True,
    # a receiver that is down or answers 5xx/429 is tried again later: 1 s, 2 s, 4 s, without a job waiting on it
    autoretry_for=(CallbackRetry,), max_retries=ATTEMPTS - 1,
    retry_backoff=FIRST_DELAY_S, retry_backoff_max=60, retry_jitter=False,
)  # fmt: skip
def send_callback(url: str, payload: dict[str, Any]) -> bool:
    """POST a finished job's state to its callback URL, signed (:func:`worker.callbacks.send_once`)."""
    settings = get_settings()
    return send_once(url, payload, settings.callback_secret, allow_private=settings.callback_allow_private)


def _notify_quietly(sessions: Any, settings: Any, job_id: uuid.UUID) -> None:
    try:
        notify(sessions, settings, job_id)
    except Exception:  # the job is done; a broken callback must not fail it
        log.warning("callback of job %s failed", job_id, exc_info=True)


@app.task(
    name=TASK_NAME, bind=True, ignore_result=True, Request=f"{__name__}:SkipEndedJobs",
    # a transient error is retried by Celery: exponential backoff from 5 s, capped, full jitter
    autoretry_for=(TransientJobError,), max_retries=MAX_RETRIES,
    retry_backoff=BACKOFF_BASE_S, retry_backoff_max=BACKOFF_CAP_S, retry_jitter=True,
)  # fmt: skip
def run_job(self: Task, job_id: str) -> str:
    settings = get_settings()
    sessions = get_sessionmaker(settings.database_url)
    try:
        with sessions.begin() as session:
            cap = settings.max_running_jobs_per_owner
            claim, ended = claim_or_settle(
                session, uuid.UUID(job_id), _worker_name(self), settings.heartbeat_timeout_s,
                max_running_per_owner=cap,
            )  # fmt: skip
            parked = claim is None and not ended and park_if_capped(session, uuid.UUID(job_id), cap)
    except Exception as exc:
        failure = classify(exc)
        if failure.transient:
            raise TransientJobError(f"job {job_id} could not be claimed: {failure.message}") from exc
        raise
    if claim is None:
        if ended:  # cancelled while its worker was dead, or out of attempts: it ends here, so it reports here
            ended_without_attempt(sessions, settings, uuid.UUID(job_id))
        if parked:
            log.info("job %s waits for a free running slot of its owner; message dropped", job_id)
        else:
            log.info("job %s is not claimable (finished, cancelled or running elsewhere); message dropped", job_id)
        raise Ignore()
    log.info("job %s attempt %d (%s) started", job_id, claim.attempt, claim.kind)
    result = run_attempt(claim, settings, sessions, may_retry=self.request.retries < MAX_RETRIES)
    log.info("job %s attempt %d: %s", job_id, claim.attempt, result.outcome)
    if result.outcome is not Outcome.LOST:  # it no longer runs here: a running slot of its owner is free
        wake_parked(sessions, settings, claim.job_id)
    if result.outcome is Outcome.RETRY:
        reason = result.failure.message if result.failure is not None else repr(result.error)
        raise TransientJobError(f"job {job_id}: {reason}") from result.error
    if result.outcome in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED):
        _notify_quietly(sessions, settings, claim.job_id)
        after_child(sessions, settings, claim.job_id)
    return result.outcome.value
