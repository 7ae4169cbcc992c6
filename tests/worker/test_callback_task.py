"""A finished job's callback goes through its own Celery task, on the ``callbacks`` queue, in a real worker.

The job's worker only queues the callback; the same worker process consumes the
``callbacks`` queue and POSTs it, and a receiver that first answers 503 is tried again by
Celery (backoff from 1 s) without any job worker waiting on it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.worker.conftest import FIXTURES, api_client
from tests.worker.harness import CALLBACK_SECRET, Backend, prune_spec
from worker.callbacks import SIGNATURE_HEADER, verify

pytestmark = [pytest.mark.slow, pytest.mark.service]


@dataclass
class PrivateHooks(Backend):
    """The service backend, with callbacks allowed to reach this machine's test receiver."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "PPRUNING_CALLBACK_ALLOW_PRIVATE": "true"}

    def settings(self):  # type: ignore[no-untyped-def]
        return super().settings().model_copy(update={"callback_allow_private": True})


def test_a_job_callback_is_sent_by_the_callback_task_and_retried_after_a_503(service_backend, spawn, tiny_model):
    got: list[tuple[float, bytes, str | None]] = []
    codes = [503]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((time.monotonic(), body, self.headers.get(SIGNATURE_HEADER)))
            self.send_response(codes.pop(0) if codes else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend = PrivateHooks(**vars(service_backend))
    try:
        spawn(backend)
        url = f"http://127.0.0.1:{server.server_port}/hook"
        with api_client(backend) as client:
            job = client.submit(prune_spec(tiny_model, FIXTURES, measure=False, callback_url=url))
            done = client.wait(job["id"], timeout_s=180, poll_s=0.3)
        assert done["state"] == "succeeded", done.get("error")
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    assert len(got) == 2, got  # the 503, then the retry
    (first, _, _), (second, body, signature) = got
    assert second - first >= 0.9  # Celery's countdown, not an immediate resend
    assert verify(body, signature or "", CALLBACK_SECRET)
    payload = json.loads(body)
    assert payload["id"] == job["id"] and payload["state"] == "succeeded" and "report.json" in payload["artifacts"]
