"""The worker's Celery consumer, which survives the broker going away mid-poll.

Celery 5.7 closes the lost broker connection in ``on_connection_error_after_connected``
after ``Connection.collect()``. With the Redis transport, a channel whose BRPOP read timed
out during ``collect()`` is left open while ``collect()`` drops the transport; the second
close then re-queues the unacknowledged messages through a transport that is gone, and
kombu raises ``AttributeError`` (``conninfo.hostname`` on ``None``), which
``ignore_errors`` does not ignore. The consumer's start loop takes it for an unrecoverable
error and the worker shuts down with its jobs left running and queued: the chaos run
(:mod:`tests.worker.test_chaos`) saw exactly that after a Redis restart.

Nothing is lost by carrying on: the messages the close could not re-queue died with the
broker anyway (a Redis without persistence), and the reaper (:mod:`worker.reaper`) re-sends
jobs from PostgreSQL, the source of truth. So this consumer tolerates exactly that close:
the lost connection's ``close`` is wrapped for the one call Celery makes, and the rest of
Celery's handler (detaching the connection, its policy for running tasks) runs as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


def _close_tolerating_a_dropped_transport(close: Callable[[], Any]) -> Callable[[], None]:
    """``close``, except that kombu's AttributeError from a transport ``collect()`` already dropped is logged."""

    def tolerant_close() -> None:
        try:
            close()
        except AttributeError as error:
            log.warning(
                "closing the lost broker connection failed (%r); reconnecting anyway, "
                "the reaper re-sends jobs whose messages were lost",
                error,
            )

    return tolerant_close


class BrokerLossTolerantConsumer(Consumer):
    """Celery's consumer, except that a failed close of a lost connection does not stop the worker."""

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        if self.connection is not None:  # an instance attribute: Celery's ignore_errors(connection, connection.close)
            self.connection.close = _close_tolerating_a_dropped_transport(self.connection.close)
        super().on_connection_error_after_connected(exc)
