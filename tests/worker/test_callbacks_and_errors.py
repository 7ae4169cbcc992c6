"""Signed callbacks that survive a flaky receiver, and failures a user can act on."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
import torch
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from sqlalchemy.exc import OperationalError

from ppruning.errors import DataError, JobCancelled
from worker.callbacks import ATTEMPTS, SIGNATURE_HEADER, CallbackRetry, verify
from worker.errors import classify

from .conftest import FIXTURES, load
from .harness import prune_spec


@pytest.fixture
def receiver():
    """A real HTTP server answering the status codes queued in ``codes`` (then 200)."""
    got: list[tuple[bytes, str | None]] = []
    codes: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((body, self.headers.get(SIGNATURE_HEADER)))
            self.send_response(codes.pop(0) if codes else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", got, codes
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def callback_task(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    """The callback task as a worker runs it (its settings from the environment), applied eagerly:
    Celery retries it at once instead of after its backoff."""
    from jobs.settings import get_settings
    from worker.tasks import send_callback

    monkeypatch.setenv("PPRUNING_CALLBACK_SECRET", "s3cret")
    monkeypatch.setenv("PPRUNING_CALLBACK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("PPRUNING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield lambda url, payload: send_callback.apply(args=[url, payload])
    get_settings.cache_clear()


def test_callback_is_signed_with_hmac_of_the_body_and_retried_by_celery_after_a_server_error(receiver, callback_task):
    url, got, codes = receiver
    codes.extend([503, 500])
    assert callback_task(url, {"id": "j1", "state": "succeeded"}).get() is True
    assert len(got) == 3
    body, signature = got[-1]
    assert signature.startswith("t=") and ",sha256=" in signature and verify(body, signature, "s3cret")
    assert not verify(body, signature, "another-secret")
    assert b'"state":"succeeded"' in body


def test_callback_rejected_with_4xx_is_not_retried(receiver, callback_task):
    url, got, codes = receiver
    codes.append(404)
    assert callback_task(url, {"id": "j1"}).get() is False
    assert len(got) == 1


def test_unreachable_callback_gives_up_after_its_attempts(callback_task):
    from celery.signals import task_retry

    from worker.tasks import send_callback

    waits: list[float] = []

    def record(sender=None, reason=None, **_: object) -> None:  # type: ignore[no-untyped-def]
        waits.append(float(reason.when))

    task_retry.connect(record, sender=send_callback, weak=False)
    try:
        outcome = callback_task("http://127.0.0.1:9/hook", {"id": "j"})
    finally:
        task_retry.disconnect(record, sender=send_callback)
    assert outcome.failed() and isinstance(outcome.result, CallbackRetry)
    assert waits == [1.0, 2.0, 4.0][: ATTEMPTS - 1]  # Celery's backoff, nobody sleeping in a job worker


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))


def test_library_errors_keep_their_type_and_name_the_field():
    try:
        try:
            raise KeyError("sentence")
        except KeyError as inner:
            message = "column 'sentence' is not in the data; columns: text, label"
            raise DataError(message, field="task.text_column") from inner
    except DataError as exc:
        failure = classify(exc)
    assert failure.error_type == "DataError" and not failure.transient
    assert failure.message.startswith("task.text_column: column 'sentence'")


def test_hub_errors_become_actionable_failures_even_when_wrapped():
    gated = GatedRepoError("401 gated", response=_response(401))
    missing = RepositoryNotFoundError("404", response=_response(404))
    try:
        raise OSError("could not load model") from missing
    except OSError as wrapped:
        assert classify(wrapped).error_type == "RepositoryNotFoundError"
    assert classify(gated).error_type == "GatedRepoError" and "licence" in classify(gated).message


def test_cuda_out_of_memory_says_what_to_lower():
    failure = classify(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert failure.error_type == "CudaOutOfMemory" and "batch_size" in failure.message


def test_only_connection_errors_are_transient():
    lost = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert classify(lost).transient
    assert classify(httpx.ConnectTimeout("hub timed out")).transient
    assert not classify(ValueError("bad")).transient
    assert not classify(JobCancelled("stop")).transient


def test_a_finished_job_with_a_callback_url_is_reported_signed(
    receiver, callback_task, sessions, make_job, pg_url, tmp_path
):
    from jobs.settings import Settings
    from worker.callbacks import notify

    url, got, _ = receiver
    job_id = make_job({"kind": "prune", "callback_url": url}, state="failed", error_type="DataError")
    settings = Settings(data_dir=tmp_path, database_url=pg_url, callback_secret="s3cret", callback_allow_private=True)
    queued: list[tuple[str, dict]] = []
    notify(sessions, settings, job_id, send=lambda u, p: queued.append((u, p)))  # what goes on the queue
    assert got == [] and [u for u, _ in queued] == [url]
    assert callback_task(*queued[0]).get() is True  # the callback task sends it
    ((body, signature),) = got
    assert verify(body, signature, "s3cret")
    payload = json.loads(body)
    assert (payload["id"], payload["state"], payload["error_type"]) == (str(job_id), "failed", "DataError")
    assert payload["url"].endswith(f"/jobs/{job_id}")


def test_a_transient_error_hands_the_job_back_to_the_queue(sessions, make_job, pg_url, tmp_path, monkeypatch):
    from jobs.settings import Settings
    from jobs.store.claims import claim_job
    from worker import attempt, runners

    def database_went_away(*args, **kwargs):
        raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setitem(runners.RUNNERS, "prune", runners.Runner(stages=database_went_away))
    (tmp_path / "model").mkdir()
    job_id = make_job(prune_spec(tmp_path / "model", FIXTURES))
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        artifact_root=(tmp_path / "a").as_uri(),
        allowed_model_roots=[tmp_path / "model", FIXTURES],
    )
    result = attempt.run_attempt(claim, settings, sessions, may_retry=True)
    assert result.outcome is attempt.Outcome.RETRY and result.failure.transient
    job = load(sessions, job_id)
    assert (job.state, job.heartbeat_at, job.attempts) == ("queued", None, 1)
    with sessions.begin() as session:  # the retry's claim takes it as attempt 2
        assert claim_job(session, job_id, "w1", 60.0).attempt == 2
