"""A broker lost while the worker polls it: the consumer reconnects instead of shutting the worker down.

The state is the one the chaos run hit (:mod:`tests.worker.test_chaos`): a real Redis, a
channel holding an unacknowledged delivery with its next BRPOP in flight, the server gone,
and the BRPOP read timing out while ``Connection.collect()`` closes the channel (the one
injected fault: which of timeout or reset a dead socket gives depends on timing). Celery's
own consumer then raises from its connection-error handler; ours must not.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.utils.imports import symbol_by_name
from celery.worker.consumer import Consumer
from kombu import Connection, Exchange, Queue
from kombu.asynchronous.timer import Timer

from jobs.settings import Settings
from tests.support.private_services import PrivateRedis
from worker.broker_consumer import BrokerLossTolerantConsumer
from worker.celery_app import make_celery


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


def _lost_mid_poll(redis: PrivateRedis) -> Connection:
    """A connection whose channel holds one unacked message and an in-flight BRPOP when Redis dies."""
    connection = Connection(redis.url)
    queue = Queue("q", Exchange("q"), "q")
    channel = connection.default_channel
    with connection.Producer() as producer:
        producer.publish({"job": 1}, exchange=queue.exchange, routing_key="q", declare=[queue])
    received: list = []
    connection.Consumer([queue], callbacks=[lambda body, message: received.append(message)], channel=channel).consume()
    connection.drain_events(timeout=5)
    with pytest.raises(TimeoutError):
        connection.drain_events(timeout=0.3)  # leaves the next BRPOP in flight
    assert len(received) == 1 and channel._in_poll
    redis.stop()
    read = channel._brpop_read

    def times_out(**options: object) -> None:
        channel._brpop_read = read
        raise TimeoutError("timed out")

    channel._brpop_read = times_out
    return connection


def _consumer(cls: type[Consumer], redis: PrivateRedis, connection: Connection, data_dir: Path) -> Consumer:
    app = make_celery(Settings(data_dir=data_dir, broker_url=redis.url))
    consumer = cls(
        lambda *args: None, init_callback=lambda c: None, hostname="t@test", app=app, timer=Timer(), hub=None,
        pool=types.SimpleNamespace(num_processes=1, is_green=False),
        controller=types.SimpleNamespace(use_eventloop=False),
    )  # fmt: skip
    consumer.connection = connection
    return consumer


def test_celerys_consumer_stops_on_the_failed_close_that_ours_survives(redis, tmp_path):
    stock = _consumer(Consumer, redis, _lost_mid_poll(redis), tmp_path)
    with pytest.raises(AttributeError):
        stock.on_connection_error_after_connected(ConnectionError("lost"))

    redis.start()
    ours = _consumer(BrokerLossTolerantConsumer, redis, _lost_mid_poll(redis), tmp_path)
    ours.on_connection_error_after_connected(ConnectionError("lost"))
    assert ours.connection is None  # detached: the start loop's restart opens a new one


def test_the_worker_app_uses_the_tolerant_consumer(tmp_path):
    conf = make_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/9")).conf
    assert symbol_by_name(conf.worker_consumer) is BrokerLossTolerantConsumer
