"""The Celery application of the worker, configured from :mod:`jobs.settings` only.

Reliability comes from the combination, not from one flag:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only
  after the task returns, so a worker killed mid-job leaves it unacknowledged and the
  broker hands it out again (Redis: after the visibility timeout; a child process that
  dies under a live worker: at once).
- ``worker_prefetch_multiplier = 1``: a busy worker does not hoard messages another
  worker could run.
- Redis ``visibility_timeout`` longer than the hard time limit: a slow but alive job is
  never redelivered to a second worker while it runs. Jobs whose worker really died are
  picked up sooner by the reaper (:mod:`worker.reaper`), which reads the heartbeat in the
  database, the source of truth.
- Results are ignored: state, progress and metrics live in the job row.

The embedded mode uses kombu's SQLAlchemy transport over a SQLite file. That transport
hands its transport options to ``create_engine`` and never redelivers a message whose
consumer was SIGKILLed (it marks it invisible and only a clean shutdown restores it), so
no visibility timeout is passed there and the reaper covers recovery. (It also keeps
acknowledged messages as invisible rows: the broker file grows by one small row per job.)
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from functools import partial
from typing import Any

from celery import Celery, signals

from jobs.queue import (
    CALLBACK_QUEUE,
    CALLBACK_TASK_NAME,
    CPU_QUEUE,
    EXCHANGE,
    GPU_QUEUE,
    QUEUES,
    TASK_NAME,
    WORKER_QUEUES,
    declared_queues,
    pending_job_ids,
    send_job,
)
from jobs.settings import Settings, get_settings

__all__ = [
    "CALLBACK_QUEUE", "CALLBACK_TASK_NAME", "CPU_QUEUE", "GPU_QUEUE", "QUEUES", "TASK_NAME", "WORKER_QUEUES", "app",
    "make_celery",
]  # fmt: skip

#: Extra time after the hard limit before Redis hands an unacknowledged message out again.
VISIBILITY_MARGIN_S = 600


def broker_transport_options(settings: Settings) -> dict[str, object]:
    """Options for the broker transport; which ones depend on the transport."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": settings.job_hard_time_limit_s + VISIBILITY_MARGIN_S}
    if settings.broker_url.startswith(("sqla+", "sqlalchemy+")):
        # Passed to create_engine: let SQLite wait for the writer lock instead of failing.
        return {"connect_args": {"timeout": 30}}
    return {}


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    app = Celery("ppruning", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        # A broker restart must not stop the worker: see worker.broker_consumer.
        worker_consumer="worker.broker_consumer:BrokerLossTolerantConsumer",
        task_queues=declared_queues(),
        task_default_queue=GPU_QUEUE,
        task_default_exchange=EXCHANGE.name,
        task_default_routing_key=GPU_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=False,
        # A job is one long task: recycle the child after it so torch/CUDA memory is returned.
        worker_max_tasks_per_child=1,
    )
    return app


app = make_celery()
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- one GPU per child


def visible_gpus() -> list[str]:
    """GPUs this worker may use, found without initialising CUDA in the parent process.

    A CUDA context must not exist before the pool forks; so no torch.cuda call here.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


_GPUS: list[str] = []


@signals.worker_init.connect
def _find_gpus(**_: Any) -> None:
    _GPUS[:] = visible_gpus()
    if _GPUS:
        log.info("worker GPUs: %s (one per pool process)", ",".join(_GPUS))
    from worker.preload import preload

    preload()  # imported once here, shared by every forked child (importing torch starts no CUDA context)


@signals.worker_process_init.connect
def _pin_child_to_one_gpu(**_: Any) -> None:
    """Child ``i`` of the prefork pool sees only GPU ``i mod n``: one job per GPU.

    Also: connections pooled by the parent (the reaper's) must not be shared with a child.
    """
    from jobs.store.session import get_engine

    get_engine(get_settings().database_url).dispose(close=False)
    if not _GPUS:
        return
    from billiard.process import current_process

    index = getattr(current_process(), "index", 0) or 0
    os.environ["CUDA_VISIBLE_DEVICES"] = _GPUS[index % len(_GPUS)]


# --------------------------------------------------------------------------- the reaper


_REAPER: list[Any] = []


@signals.worker_ready.connect
def _start_reaper(**_: Any) -> None:
    from jobs.store.session import get_sessionmaker
    from worker.reaper import Reaper, reap_once, retry_store_removals

    settings = get_settings()
    sessions = get_sessionmaker(settings.database_url)
    interval = max(1.0, min(settings.heartbeat_timeout_s, settings.queued_timeout_s) / 4)

    pending = None
    if settings.broker_url.startswith(("redis://", "rediss://", "sqla+", "sqlalchemy+")):
        pending = partial(pending_job_ids, settings.broker_url)

    def sweep() -> object:
        from jobs.artifacts import open_store
        from worker.ended import ended_without_attempt
        from worker.sweep_runs import finalise_ready
        from worker.workdirs import remove_abandoned

        resent = reap_once(
            sessions,
            partial(send_job, settings.broker_url),
            pending=pending,
            finished=partial(ended_without_attempt, sessions, settings),
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            queued_timeout_s=settings.queued_timeout_s,
        )
        remove_abandoned(settings.data_dir.resolve() / "work", sessions)
        store = open_store(settings.artifact_root)
        if settings.artifact_retention_days > 0:
            from worker.retention import expire_old_artifacts

            expire_old_artifacts(
                sessions, store, settings.artifact_retention_days, retry_s=settings.removal_retry_s
            )
        finalise_ready(sessions, settings)  # sweeps whose last child ended without a worker (cancelled queued)
        retry_store_removals(sessions, store, settings.removal_retry_s)
        return resent

    reaper = Reaper(interval, sweep)
    reaper.start()
    _REAPER.append(reaper)


@signals.worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    while _REAPER:
        _REAPER.pop().stop()
