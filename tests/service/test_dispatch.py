"""The message to the workers: a real Celery message on real Redis, sent only after the commit."""

from __future__ import annotations

import base64
import json
import uuid

import redis
from fastapi.testclient import TestClient

from api.main import create_app
from jobs.queue import CeleryDispatcher, queue_for


def _messages(redis_url: str, queue: str) -> list[dict]:
    client = redis.Redis.from_url(redis_url)
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_a_message_names_the_task_and_carries_only_the_job_id(redis_url):
    dispatcher = CeleryDispatcher(redis_url)
    job_id = uuid.uuid4()
    try:
        dispatcher.send(job_id, "cpu")
    finally:
        dispatcher.close()
    [message] = [
        m for m in _messages(redis_url, "cpu") if m["headers"]["id"] and str(job_id) in m["headers"]["argsrepr"]
    ]
    assert message["headers"]["task"] == "worker.run_job"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [str(job_id)] and kwargs == {}
    assert message["properties"]["delivery_info"]["routing_key"] == "cpu"


def test_submitting_through_the_api_publishes_to_the_queue_of_the_device(service_settings, redis_url, auth, prune_spec):
    redis.Redis.from_url(redis_url).delete("gpu", "cpu")
    app = create_app(service_settings, dispatcher=CeleryDispatcher(redis_url))
    with TestClient(app) as c:
        job_id = c.post("/jobs", json={**prune_spec, "device": "cpu"}, headers=auth).json()["id"]
    [message] = _messages(redis_url, "cpu")
    assert json.loads(base64.b64decode(message["body"]))[0] == [job_id]
    assert _messages(redis_url, "gpu") == []


def test_an_unreachable_broker_leaves_the_job_failed_with_the_reason(service_settings, auth, prune_spec):
    app = create_app(service_settings, dispatcher=CeleryDispatcher("redis://127.0.0.1:1/0", publish_retries=0))
    with TestClient(app) as c:
        r = c.post("/jobs", json=prune_spec, headers=auth)
        assert r.status_code == 503
        job = c.get(r.headers["Location"], headers=auth).json()
    assert job["state"] == "failed" and job["error"]["type"] == "dispatch_failed"
    assert "broker" in job["error"]["message"] and "127.0.0.1" not in job["error"]["message"]


def test_queue_follows_the_requested_device():
    assert queue_for({"device": "cpu"}) == "cpu"
    assert [queue_for({"device": d}) for d in ("auto", "cuda", "cuda:1", "mps")] == ["gpu"] * 4
    assert queue_for({}) == "gpu"
