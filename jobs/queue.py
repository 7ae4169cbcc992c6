"""The queue contract between the API and the workers, declared once, and the sender of job messages.

The message is the job id only, to the task ``worker.run_job`` on the queue the job's
device asks for (``cpu`` for ``device: "cpu"``, else ``gpu``). The route commits the
row first and calls :meth:`Dispatcher.send` after; a send that fails marks the job
failed (see :mod:`api.routes.jobs`). Queues and exchange are declared the way the worker
declares them (direct exchange ``ppruning``, routing key = queue name).

Tests that need no worker replace the dispatcher through FastAPI's dependency
overrides (:func:`api.deps.get_dispatcher`) and capture what would be sent.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from celery import Celery
from kombu import Exchange, Queue

TASK_NAME = "worker.run_job"
GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
#: Queues a job can be routed to, by the device its spec asks for (:func:`queue_for`).
QUEUES = (GPU_QUEUE, CPU_QUEUE)
#: The task that POSTs a finished job's callback, and its queue: retried by Celery with backoff,
#: so no job worker sleeps between attempts. Every worker consumes it besides the job queues.
CALLBACK_TASK_NAME = "worker.send_callback"
CALLBACK_QUEUE = "callbacks"
WORKER_QUEUES = (*QUEUES, CALLBACK_QUEUE)
EXCHANGE = Exchange("ppruning", type="direct")


def declared_queues() -> list[Queue]:
    """The queues as both sides declare them: direct exchange ``ppruning``, routing key = queue name."""
    return [Queue(name, EXCHANGE, routing_key=name) for name in WORKER_QUEUES]


def queue_for(spec: dict[str, Any]) -> str:
    """``cpu`` when the spec asks for the CPU; any other device (auto, cuda, mps) goes to ``gpu``."""
    return CPU_QUEUE if spec.get("device") == "cpu" else GPU_QUEUE


def queued_message(queue: str, spec: dict[str, Any], deployment_device: str) -> str:
    """The job's first event: the device it will run on, then the broker queue that carries it.

    The ``gpu`` queue carries every job that does not ask for the CPU, also on a deployment
    whose workers have none (``PPRUNING_DEVICE=cpu``): saying "queued on 'gpu'" there would
    promise a GPU that does not exist.
    """
    asked = str(spec.get("device") or "auto")
    if asked != "auto":
        device = asked
    elif deployment_device != "auto":
        device = f"{deployment_device} (this deployment's device)"
    else:
        device = "the worker's GPU, else its CPU"
    return f"queued to run on {device}; broker queue '{queue}'"


class Dispatcher(Protocol):
    def send(self, job_id: uuid.UUID, queue: str) -> None:
        """Publish the job's message; raise on failure."""

    def ping(self) -> None:
        """Raise when the broker is unreachable."""


class CeleryDispatcher:
    """A Celery client (no tasks of its own) on ``broker_url``."""

    def __init__(self, broker_url: str, publish_retries: int = 2) -> None:
        self.broker_url = broker_url
        self.publish_retries = publish_retries
        self._lock = threading.Lock()
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        with self._lock:
            if self._app is None:
                if self.broker_url.startswith("sqla+sqlite"):  # the embedded broker's file may be its folder's first
                    path = self.broker_url.split("///", 1)[-1]
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                app = Celery("ppruning-api", broker=self.broker_url, set_as_current=False)
                app.conf.update(
                    task_queues=declared_queues(),
                    task_default_exchange=EXCHANGE.name,
                    task_serializer="json",
                    accept_content=["json"],
                    broker_connection_timeout=2.0,
                    broker_connection_retry_on_startup=False,
                    task_ignore_result=True,
                    result_backend=None,
                )
                self._app = app
            return self._app

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        self.app.send_task(
            TASK_NAME,
            args=[str(job_id)],
            # No exchange or routing key: Celery then publishes to the queue by name through the
            # default exchange, which on Redis spares a lookup of the exchange's bindings per message.
            queue=queue,
            retry=True,
            retry_policy={"max_retries": self.publish_retries, "interval_start": 0.1, "interval_step": 0.2},
            ignore_result=True,
        )

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2.0)

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


@lru_cache(maxsize=4)
def dispatcher_for(broker_url: str) -> CeleryDispatcher:
    """One sender per broker for a process (the worker re-sends lost jobs and sends a sweep's children)."""
    return CeleryDispatcher(broker_url)


def send_job(broker_url: str, job_id: uuid.UUID | str, spec: dict[str, Any]) -> None:
    """Send a job's message to the queue its spec is routed to (:func:`queue_for`)."""
    dispatcher_for(broker_url).send(uuid.UUID(str(job_id)), queue_for(spec))


# --------------------------------------------------------------------------- what waits in the broker

#: kombu's Redis transport keeps a message of priority p > 0 in ``<queue>\x06\x16<p>``.
_REDIS_PRIORITY_SEP = "\x06\x16"


def _job_id_of(raw: str | bytes) -> uuid.UUID | None:
    """The job id a kombu message carries (``args[0]`` of its JSON body), or None."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # Redis 'unacked' entries: [message, exchange, routing_key]
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return uuid.UUID(str(args[0]))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _redis_payloads(broker_url: str, queues: Iterable[str]) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        payloads: list[bytes] = []
        for queue in queues:
            for name in (queue, *(f"{queue}{_REDIS_PRIORITY_SEP}{p}" for p in range(1, 10))):
                payloads += client.lrange(name, 0, -1)
        payloads += client.hvals("unacked")  # taken by a worker, not yet acknowledged
        return payloads
    finally:
        client.close()


def _sqla_payloads(broker_url: str, queues: Iterable[str]) -> list[str]:
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(broker_url.split("+", 1)[1])
    query = text(
        "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
        "WHERE m.visible AND q.name IN :names"
    ).bindparams(bindparam("names", expanding=True))
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(query, {"names": list(queues)})]
    except Exception as exc:  # a fresh broker has no tables yet: nothing waits
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return []
        raise
    finally:
        engine.dispose()


def pending_job_ids(broker_url: str, queues: Iterable[str] = QUEUES) -> set[uuid.UUID]:
    """Ids of the jobs whose messages still wait in the broker (or are held, unacknowledged).

    Read from the list behind each queue on Redis, and from the message table of kombu's
    SQLAlchemy transport (the embedded broker). Raises when the broker cannot be read, and
    ``NotImplementedError`` for another transport: then the caller cannot tell.
    """
    if broker_url.startswith(("redis://", "rediss://")):
        payloads: list[str] | list[bytes] = _redis_payloads(broker_url, queues)
    elif broker_url.startswith(("sqla+", "sqlalchemy+")):
        payloads = _sqla_payloads(broker_url, queues)
    else:
        raise NotImplementedError(f"cannot list the messages of broker {broker_url.split(':', 1)[0]!r}")
    return {job_id for raw in payloads if (job_id := _job_id_of(raw)) is not None}
