"""Soak benchmark: hundreds of live event streams plus polling clients against the real service.

Starts the API under ``uvicorn`` and a Celery worker that runs real (tiny) prune jobs, on
PostgreSQL + Redis (a fresh database and a Redis index of its own, dropped afterwards) or on
the embedded default (SQLite and the SQLite broker, in a temporary folder). Then, on loopback
and for ``--seconds``: ``--streams`` SSE streams, spread over several owners, each following
an unfinished job and, when it ends, the next one; ``--pollers`` clients reading
``GET /jobs/{id}`` in a loop; one client reading ``/healthz`` every 50 ms. New jobs are
submitted as the worker finishes them, so events keep flowing.

    .venv/bin/python bench/soak.py [--backend postgres|sqlite] [--streams 200] [--pollers 20] [--seconds 60]

Prints, over the steady state (every stream open): ``/healthz`` and ``GET /jobs/{id}``
latency (p50/p99/max), dropped streams (closed before their job's ``end`` or failed), 5xx
answers, pool timeouts (503 ``database_busy`` and the server log's), and the jobs run.
Targets: with 200 streams, /healthz p99 < 50 ms, GET p99 < 200 ms, no dropped stream, no 5xx.

The worker runs at ``nice 10`` with one torch thread: on a real deployment it has a machine of
its own, here it shares the API's cores. The pollers run in a process of their own, so the
streams' client loop does not inflate what they measure. ``tests/service/test_soak.py`` runs
a short form of this file (fewer seconds) in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shlex
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak_service import spec, start_service  # noqa: E402

#: Unfinished jobs the feeder keeps in the service (streams follow them).
UNFINISHED = 8


@dataclass
class SoakResult:
    backend: str
    streams: int
    seconds: float
    healthz_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    streams_opened: int = 0
    streams_ended: int = 0
    streams_dropped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    pool_timeouts: int = 0
    jobs_finished: int = 0
    steady_s: float = 0.0
    #: CPU seconds the API process used over the run, and the 1-minute load average before it.
    server_cpu_s: float = 0.0
    load_before: float = 0.0
    #: The API's own view (its request-duration histogram): the bucket bound under which 99% of
    #: each route's 200s fell, in ms; apart from what the clients add (their own scheduling, the network).
    server_p99_ms: dict[str, float] = field(default_factory=dict)

    @property
    def errors_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    @property
    def unanswered(self) -> int:
        """Requests that got no HTTP answer (a transport error, counted under its name)."""
        return sum(n for status, n in self.statuses.items() if not status.isdigit())


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- the load


class Load:
    """The streams and the job feeder, on one event loop."""

    def __init__(self, base: str, secrets: list[str], model: Path, result: SoakResult) -> None:
        self.base, self.secrets, self.model, self.result = base, secrets, model, result
        self.unfinished: dict[int, list[str]] = {i: [] for i in range(len(secrets))}
        self.open_now = 0
        self.all_open = asyncio.Event()
        self.seed = 0

    def _status(self, status: int) -> None:
        key = str(status)
        self.result.statuses[key] = self.result.statuses.get(key, 0) + 1

    async def submit(self, client: httpx.AsyncClient, owner: int) -> None:
        self.seed += 1
        r = await client.post("/jobs", json=spec(self.model, self.seed), headers=self._auth(owner))
        self._status(r.status_code)
        if r.status_code == 202:
            self.unfinished[owner].append(r.json()["id"])

    def _auth(self, owner: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[owner]}"}

    async def feed(self, client: httpx.AsyncClient, stop: float) -> None:
        """Keep ``UNFINISHED`` jobs in the service; note the ones that ended."""
        while time.monotonic() < stop:
            for owner, ids in self.unfinished.items():
                for job_id in list(ids):
                    r = await client.get(f"/jobs/{job_id}", headers=self._auth(owner))
                    self._status(r.status_code)
                    if r.status_code == 200 and r.json()["state"] in ("succeeded", "failed", "cancelled"):
                        ids.remove(job_id)
                        self.result.jobs_finished += 1
            while sum(len(ids) for ids in self.unfinished.values()) < UNFINISHED:
                await self.submit(client, min(self.unfinished, key=lambda o: len(self.unfinished[o])))
            await asyncio.sleep(1.0)

    def pick(self, owner: int) -> tuple[str, int] | None:
        """An unfinished job of ``owner`` (else of anyone), with the owner whose key may follow it."""
        if self.unfinished[owner]:
            return random.choice(self.unfinished[owner]), owner
        pairs = [(job_id, o) for o, ids in self.unfinished.items() for job_id in ids]
        return random.choice(pairs) if pairs else None

    async def stream(self, client: httpx.AsyncClient, index: int, total: int) -> None:
        """Follow one unfinished job after another until cancelled; count ends and drops."""
        counted = False
        while True:
            picked = self.pick(index % len(self.secrets))
            if picked is None:
                await asyncio.sleep(0.2)
                continue
            job_id, owner = picked
            headers = {**self._auth(owner), "Accept": "text/event-stream"}
            ended = False
            try:
                async with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
                    self._status(response.status_code)
                    if response.status_code != 200:
                        self.result.streams_dropped += 1
                        await asyncio.sleep(1.0)
                        continue
                    self.result.streams_opened += 1
                    if not counted:
                        counted = True
                        self.open_now += 1
                        if self.open_now == total:
                            self.all_open.set()
                    async for line in response.aiter_lines():
                        ended = ended or line in ("event: end", "event: error")
            except httpx.HTTPError:
                pass
            if ended:
                self.result.streams_ended += 1
            else:  # closed before its job's end, or failed
                self.result.streams_dropped += 1


def poll(base: str, secret: str, job_ids: list[str], pollers: int, seconds: float, out: Any) -> None:
    """Process of its own: ``pollers`` GET clients and one /healthz client; (t, kind, ms, status) rows to ``out``."""

    async def main() -> list[tuple[float, str, float, int | str]]:
        rows: list[tuple[float, str, float, int | str]] = []
        stop = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=pollers + 2)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

            async def one(kind: str, path: str, headers: dict[str, str], pause: float) -> None:
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    try:
                        status: int | str = (await client.get(path(), headers=headers)).status_code
                    except httpx.HTTPError as exc:  # no answer at all: named by the client's error
                        status = type(exc).__name__
                    rows.append((time.time(), kind, (time.perf_counter() - started) * 1000, status))
                    await asyncio.sleep(pause)

            auth = {"Authorization": f"Bearer {secret}"}
            tasks = [one("get", lambda: f"/jobs/{random.choice(job_ids)}", auth, 0.1) for _ in range(pollers)]
            await asyncio.gather(one("healthz", lambda: "/healthz", {}, 0.05), *tasks)
        return rows

    out.put(asyncio.run(main()))


ROUTES = {"healthz": "/healthz", "get": "/jobs/{job_id}"}


def histogram(base: str) -> dict[str, dict[float, float]]:
    """Per route of :data:`ROUTES`: cumulative counts of GET 200s by bucket bound (seconds), from /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    out: dict[str, dict[float, float]] = {name: {} for name in ROUTES}
    for line in text.splitlines():
        if not line.startswith("ppruning_http_request_duration_seconds_bucket{") or 'method="GET"' not in line:
            continue
        if 'status="200"' not in line:
            continue
        labels, value = line.rsplit(" ", 1)
        for name, route in ROUTES.items():
            if f'route="{route}"' in labels:
                bound = labels.split('le="', 1)[1].split('"', 1)[0]
                out[name][float("inf") if bound == "+Inf" else float(bound)] = float(value)
    return out


def server_p99(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict[str, float]:
    p99 = {}
    for name, buckets in after.items():
        counts = {b: n - before.get(name, {}).get(b, 0.0) for b, n in buckets.items()}
        total = counts.get(float("inf"), 0.0)
        if total:
            p99[name] = 1000 * min(b for b, n in counts.items() if n >= 0.99 * total)
    return p99


async def drive(base: str, secrets: list[str], model: Path, streams: int, pollers: int, seconds: float,
                result: SoakResult) -> None:  # fmt: skip
    load = Load(base, secrets, model, result)
    limits = httpx.Limits(max_connections=streams + 20, max_keepalive_connections=20)
    timeout = httpx.Timeout(30.0, read=60.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        for i in range(UNFINISHED):
            await load.submit(client, i % len(secrets))
        stop = time.monotonic() + seconds
        queue: Any = multiprocessing.get_context("spawn").Queue()
        owner0_jobs = list(load.unfinished[0])
        poller = multiprocessing.get_context("spawn").Process(
            target=poll, args=(base, secrets[0], owner0_jobs, pollers, seconds, queue)
        )
        poller.start()
        tasks = [asyncio.create_task(load.stream(client, i, streams)) for i in range(streams)]
        feeder = asyncio.create_task(load.feed(client, stop))
        try:
            await asyncio.wait_for(load.all_open.wait(), timeout=seconds)
            steady_from = time.time()
        except TimeoutError:
            steady_from = float("inf")
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        for task in tasks:  # the end of the run, not a drop
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await feeder
        rows = await asyncio.to_thread(queue.get, True, seconds + 60)
        poller.join(timeout=30)
    result.steady_s = max(0.0, time.time() - steady_from) if steady_from != float("inf") else 0.0
    for t, kind, ms, status in rows:
        result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
        if t >= steady_from and status == 200:
            (result.healthz_ms if kind == "healthz" else result.get_ms).append(ms)


def run_soak(
    backend: str = "postgres",
    *,
    streams: int = 200,
    pollers: int = 20,
    seconds: float = 60.0,
    uvicorn_workers: int = 1,
    pg_admin_url: str | None = None,
    redis_host: str = "127.0.0.1",
) -> SoakResult:
    """One soak run; see the module docstring."""
    pg_admin_url = pg_admin_url or os.environ.get(
        "PPRUNING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    result = SoakResult(backend, streams, seconds)
    with tempfile.TemporaryDirectory(prefix="ppruning-soak-") as tmp, ExitStack() as stack:
        base, secrets, model, log, pid = start_service(
            stack, backend, Path(tmp), streams, pg_admin_url, redis_host, uvicorn_workers
        )
        from bench.api_load import server_cpu_s

        result.load_before = os.getloadavg()[0]
        cpu, buckets = server_cpu_s(pid), histogram(base)
        asyncio.run(drive(base, secrets, model, streams, pollers, seconds, result))
        result.server_cpu_s = server_cpu_s(pid) - cpu
        result.server_p99_ms = server_p99(buckets, histogram(base))
        text = log.read_text(errors="replace")
        result.pool_timeouts = text.count("database_busy")
    return result


def _le(result: SoakResult, name: str) -> str:
    value = result.server_p99_ms.get(name)
    return "n/a" if value is None else f"<= {value:g}"


def report(result: SoakResult) -> str:
    h, g = result.healthz_ms, result.get_ms
    lines = [
        f"backend={result.backend}  streams={result.streams}  {result.seconds:g} s, steady state (all streams open) "
        f"{result.steady_s:.0f} s; {os.cpu_count()} CPUs, 1-min load average {result.load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; API process CPU {100 * result.server_cpu_s / result.seconds:.0f}%",
        "| measure            | n      | p50 ms  | p99 ms  | max ms  | server p99 ms |",
        "|--------------------|--------|---------|---------|---------|---------------|",
        f"| GET /healthz       | {len(h):>6} | {percentile(h, 50):>7.1f} | {percentile(h, 99):>7.1f} | "
        f"{max(h, default=float('nan')):>7.1f} | {_le(result, 'healthz'):>13} |",
        f"| GET /jobs/{{id}}     | {len(g):>6} | {percentile(g, 50):>7.1f} | {percentile(g, 99):>7.1f} | "
        f"{max(g, default=float('nan')):>7.1f} | {_le(result, 'get'):>13} |",
        f"streams opened {result.streams_opened}, ended with their job {result.streams_ended}, "
        f"dropped {result.streams_dropped}; 5xx {result.errors_5xx}; unanswered {result.unanswered}; "
        f"pool timeouts {result.pool_timeouts}; "
        f"jobs finished {result.jobs_finished}; statuses {dict(sorted(result.statuses.items()))}",
        "server p99: the bucket bound of the API's own request-duration histogram (all of the run, not only the "
        "pollers'); the other columns are what the polling clients measured over the steady state",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--uvicorn-workers", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run_soak(args.backend, streams=args.streams, pollers=args.pollers, seconds=args.seconds,
                      uvicorn_workers=args.uvicorn_workers)  # fmt: skip
    print(report(result))
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    if args.json:
        figures = {k: v for k, v in asdict(result).items() if not k.endswith("_ms")}
        figures |= {"healthz_p99_ms": percentile(result.healthz_ms, 99), "get_p99_ms": percentile(result.get_ms, 99)}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
