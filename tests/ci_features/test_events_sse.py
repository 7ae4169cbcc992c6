"""Live progress: progress events carry what a client draws, ``GET /jobs/{id}/events`` streams
them as Server-Sent Events from a real worker's running job, in order, and a client that
reconnects with ``Last-Event-ID`` continues without gaps or repeats."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobs.kinds.plans import FINETUNE_STAGES
from jobs.store.claims import claim_job
from ppruning.cli.main import main
from ppruning_client.http_client import Client, SseEvent, parse_sse
from ppruning_client.live import LivePrinter
from tests.worker.conftest import FIXTURES, served_api
from tests.worker.harness import API_KEY, BOUNDED_MEASURE, prune_spec
from worker.progress import JobProgress, Plan

#: What P-pruning declares for a run with measuring on (``ppruning.prune_stages``).
PRUNE_STAGES = ("load_model", "load_data", "collect", "cluster", "select", "materialise", "measure", "write")

pytestmark = [pytest.mark.service, pytest.mark.slow]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_progress_events_carry_stage_step_fraction_eta_and_finetune_loss_and_metric(sessions, make_job):
    job_id = make_job(kind="pipeline")
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    plan = Plan([("prune", PRUNE_STAGES), ("finetune", FINETUNE_STAGES)])
    progress = JobProgress(sessions, claim, plan, min_interval_s=0.0)
    progress.set_phase("finetune")
    progress.start_stage("finetune", total=10)
    progress.update(4, 10, loss=0.75, accuracy=0.5)
    progress.update(10, 10, loss=0.25, accuracy=0.875)
    with sessions() as session:
        from sqlalchemy import select

        from jobs.store.models import JobEvent

        rows = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))
    stage, first, last = (r.data for r in rows)
    assert stage["type"] == "stage" and stage["stage"] == "finetune" and stage["total"] == 10
    assert first["type"] == "progress" and (first["step"], first["total"]) == (4, 10)
    assert first["stage_fraction"] == 0.4 and stage["fraction"] < first["fraction"] < last["fraction"] <= 1.0
    assert first["fraction"] == pytest.approx(plan.fraction("finetune", "finetune", 0.4), abs=1e-6)
    assert first["loss"] == 0.75 and first["metric"] == {"name": "accuracy", "value": 0.5}
    assert last["loss"] == 0.25 and last["metric"]["value"] == 0.875 and last["stage_eta_s"] == 0.0
    assert first["eta_s"] is not None and first["eta_s"] > 0 and first["rate"] > 0


def _read(response: httpx.Response, stop_after: int | None = None) -> list[SseEvent]:
    events = []
    for event in parse_sse(response.iter_lines()):
        events.append(event)
        if event.event == "end" or (stop_after is not None and len(events) >= stop_after):
            break
    return events


class CutOnce(httpx.HTTPTransport):
    """A real HTTP transport whose first event stream breaks after ``cut_after`` bytes (a dropped connection)."""

    def __init__(self, cut_after: int) -> None:
        super().__init__()
        self.cut_after = cut_after
        self.streams = 0
        self.resumed_from: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.headers.get("accept") != "text/event-stream":
            return response
        self.streams += 1
        self.resumed_from.append(request.headers.get("last-event-id"))
        if self.streams > 1:
            return response
        inner, limit = response.stream, self.cut_after

        class Cut(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                sent = 0
                for chunk in inner:
                    if sent + len(chunk) >= limit:
                        yield chunk[: limit - sent]
                        raise httpx.RemoteProtocolError("connection dropped (test)")
                    sent += len(chunk)
                    yield chunk

            def close(self) -> None:
                inner.close()

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Cut(), extensions=response.extensions
        )


def _ids(events: list[SseEvent]) -> list[int]:
    return [e.id for e in events if e.id is not None]


def test_sse_follows_a_running_job_in_order_and_resumes_without_gaps_or_repeats(
    service_backend, spawn, tiny_model, capsys
):
    spawn(service_backend)
    with served_api(service_backend) as url, httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
        # a bounded speed measurement keeps the job running a few seconds after its first events: without it a
        # preloaded worker finished the tiny job before the test read the state (the check below of "mid-job")
        job = http.post("/jobs", json=prune_spec(tiny_model, FIXTURES, measure=BOUNDED_MEASURE)).json()
        path = f"/jobs/{job['id']}/events"
        stream = {"Accept": "text/event-stream"}
        with http.stream("GET", path, headers=stream) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            first = _read(response, stop_after=3)  # then the connection is dropped mid-job
        running = http.get(f"/jobs/{job['id']}").json()["state"]
        with http.stream("GET", path, headers={**stream, "Last-Event-ID": str(first[-1].id)}) as response:
            rest = _read(response)

        listing = http.get(path, params={"limit": 1000}).json()["items"]
        assert _ids(first) + _ids(rest) == [e["id"] for e in listing]  # in order, no gap, no repeat
        assert [e.data for e in first + rest if e.id is not None] == listing
        assert rest[-1].event == "end" and rest[-1].data["state"] == "succeeded" and rest[-1].id is None
        assert running in ("queued", "running") and not any(e.event == "end" for e in first)
        kinds = [e.event for e in first + rest]
        assert kinds.count("stage") >= 5 and "progress" in kinds
        progress = [e.data["data"] for e in first + rest if e.event in ("stage", "progress")]
        assert [p["fraction"] for p in progress] == sorted(p["fraction"] for p in progress)
        for p in progress:
            assert {"stage", "step", "total", "fraction", "eta_s", "stage_eta_s", "rate"} <= set(p)

        # ?after= on a finished job: the rest at once, then the end.
        after = _read(http.get(path, params={"after": listing[1]["id"]}, headers=stream))
        assert _ids(after) == [e["id"] for e in listing[2:]] and after[-1].event == "end"

        # The CI client resumes a dropped stream by itself, with Last-Event-ID.
        cutting = CutOnce(cut_after=700)
        with httpx.Client(base_url=url, transport=cutting, timeout=30) as raw:
            events = list(Client(url, API_KEY, http=raw).events(job["id"]))
        assert cutting.streams == 2 and cutting.resumed_from[0] == "0" and cutting.resumed_from[1] != "0"
        assert _ids(events) == [e["id"] for e in listing] and events[-1].event == "end"

        # `ppruning wait` in a CI log: plain lines (stderr is not a terminal), exit 0.
        capsys.readouterr()
        assert main(["wait", job["id"], "--timeout", "30", "--url", url, "--api-key", API_KEY]) == 0
        err = capsys.readouterr().err
        assert "[collect]" in err and "job succeeded" in err and "\r" not in err


def test_live_printer_draws_a_bar_on_a_terminal_and_lines_in_a_log():
    def progress(step: int, fraction: float, **extra: Any) -> SseEvent:
        data = {"type": "progress", "stage": "finetune", "step": step, "total": 100, "fraction": fraction}
        return SseEvent(step, "progress", {"message": "", "data": data | extra})

    events = [
        SseEvent(1, "stage", {"message": "finetune started", "data": {"stage": "finetune", "fraction": 0.3}}),
        progress(10, 0.35, eta_s=125.0, loss=0.5, metric={"name": "accuracy", "value": 0.75}),
        progress(11, 0.36),
        progress(60, 0.7),
        SseEvent(None, "end", {"state": "succeeded"}),
    ]
    tty, log = io.StringIO(), io.StringIO()
    bar, plain = LivePrinter(tty, tty=True), LivePrinter(log, tty=False, plain_interval_s=3600)
    for event in events:
        bar(event)
        plain(event)
    assert "\r[########" in tty.getvalue() and "eta 2m05s" in tty.getvalue() and "accuracy=0.75" in tty.getvalue()
    lines = log.getvalue().splitlines()
    assert lines[0] == "[finetune] finetune started" and lines[-1] == "job succeeded" and "\r" not in log.getvalue()
    assert len(lines) == 3 and "finetune 60/100" in lines[1]  # one progress line per 10% of the job
