"""Load benchmark of the REST service: POST /jobs and GET /jobs/{id} against real PostgreSQL and Redis.

Starts ``uvicorn`` (2 workers by default) on 127.0.0.1 with a fresh PostgreSQL database
(migrated, dropped afterwards) and a Redis database index of its own as the broker
(flushed afterwards), then drives it from a bounded closed-loop load generator on
loopback (asyncio + httpx: ``--concurrency`` clients, at most ``--requests`` requests or
``--duration`` seconds per phase). Every POST is fully validated as in production:
pydantic, the task registry and the library's ``validate_prune_config`` on a local
model config inside the allow-list, then a real Celery message to Redis.

    .venv/bin/python bench/api_load.py [--workers 2] [--concurrency 8] [--duration 10] [--requests 5000]

Prints a table (requests/s, p50/p90/p99/max latency, errors) and the command line.
Target from the issue: >= 300 req/s and p99 < 50 ms for both phases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class PhaseResult:
    name: str
    latencies_ms: list[float]
    errors: int
    wall_s: float
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def row(self) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

        rps = len(self.latencies_ms) / self.wall_s if self.wall_s else 0.0
        return (
            f"| {self.name:<16} | {len(self.latencies_ms):>8} | {self.errors:>6} | {rps:>8.1f} | {pct(50):>7.2f} "
            f"| {pct(90):>7.2f} | {pct(99):>7.2f} | {max(lat):>8.2f} | {statistics.fmean(lat):>7.2f} "
            f"| {self._per_request(self.server_cpu_s):>10.2f} | {self._per_request(self.client_cpu_s):>10.2f} |"
        )

    def _per_request(self, seconds: float) -> float:
        return seconds * 1000 / max(1, len(self.latencies_ms) + self.errors)


HEADER = (
    "| phase            | requests | errors |    req/s | p50 ms  | p90 ms  | p99 ms  |  max ms  | mean ms "
    "| server CPU | client CPU |\n"
    "|------------------|----------|--------|----------|---------|---------|---------|----------|---------"
    "|------------|------------|"
)
CPU_NOTE = "server CPU / client CPU: CPU ms per request of the uvicorn processes / of this load generator"


def server_cpu_s(pid: int) -> float:
    """User+system CPU seconds of the uvicorn master and its workers so far."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from jobs.store.migrate import upgrade

    name = f"ppruning_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return name, url


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def claim_redis_db(host: str) -> tuple[int, str]:
    """A Redis database index nobody else holds (the same lock keys as the test fixtures)."""
    import redis

    admin = redis.Redis(host=host, port=6379, db=0)
    token = uuid.uuid4().hex
    for index in range(15, 0, -1):
        if admin.set(f"ppruning-test-lock:{index}", token, nx=True, ex=3600):
            redis.Redis(host=host, port=6379, db=index).flushdb()
            return index, token
    raise SystemExit("every Redis database index 1..15 is claimed")


def release_redis_db(host: str, index: int, token: str) -> None:
    import redis

    redis.Redis(host=host, port=6379, db=index).flushdb()
    admin = redis.Redis(host=host, port=6379, db=0)
    if admin.get(f"ppruning-test-lock:{index}") == token.encode():
        admin.delete(f"ppruning-test-lock:{index}")


def write_model_config(folder: Path) -> Path:
    """A BERT-base-shaped config (config.json only): all that submission-time validation reads."""
    from transformers import BertConfig

    model = folder / "bert-base"
    BertConfig().save_pretrained(model)
    return model


def create_key(db_url: str) -> str:
    from api.auth import new_secret
    from jobs.store import keys
    from jobs.store.session import session_scope

    secret = new_secret()
    with session_scope(db_url) as session:
        keys.create_api_key(session, "bench", "bench", secret)
    return secret


def start_server(args: argparse.Namespace, env: dict[str, str], port: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "uvicorn", "api.main:app_factory", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(args.workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("uvicorn did not become ready within 120 s")


async def run_phase(
    name: str,
    client: httpx.AsyncClient,
    make_request,  # type: ignore[no-untyped-def]
    args: argparse.Namespace,
    server_pid: int,
) -> PhaseResult:
    latencies: list[float] = []
    errors = 0
    issued = 0
    concurrency, max_requests = args.concurrency, args.requests
    deadline = time.perf_counter() + args.duration

    async def worker() -> None:
        nonlocal issued, errors
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            method, url, kwargs, expect = make_request(issued)
            t0 = time.perf_counter()
            try:
                r = await client.request(method, url, **kwargs)
                ok = r.status_code == expect
            except httpx.HTTPError:
                ok = False
            dt = (time.perf_counter() - t0) * 1000
            if ok:
                latencies.append(dt)
            else:
                errors += 1

    server0, client0, started = server_cpu_s(server_pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return PhaseResult(name, latencies, errors, wall, server_cpu_s(server_pid) - server0, time.process_time() - client0)


async def drive(args: argparse.Namespace, base: str, key: str, model_dir: Path, server_pid: int) -> list[PhaseResult]:
    headers = {"Authorization": f"Bearer {key}"}
    spec = {
        "kind": "prune",
        "model": {"id": str(model_dir)},
        "task": {"name": "sst2"},
        "method": "ppruning",
        "target": {"flops_reduction": 0.3},
    }
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        # warm-up: imports, pools and the config cache of both workers
        for _ in range(20):
            await client.post("/jobs", json=spec)
        job_ids: list[str] = []

        def post(i: int):  # type: ignore[no-untyped-def]
            return "POST", "/jobs", {"json": {**spec, "seed": i}}, 202

        post_result = await run_phase("POST /jobs", client, post, args, server_pid)
        listing = await client.get("/jobs", params={"limit": 100})
        job_ids = [item["id"] for item in listing.json()["items"]]

        def get(i: int):  # type: ignore[no-untyped-def]
            return "GET", f"/jobs/{job_ids[i % len(job_ids)]}", {}, 200

        get_result = await run_phase("GET /jobs/{id}", client, get, args, server_pid)
    return [post_result, get_result]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients of the load generator")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase at most")
    parser.add_argument("--requests", type=int, default=5000, help="requests per phase at most")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PPRUNING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--redis-host", default="127.0.0.1")
    args = parser.parse_args()

    db_name, db_url = make_database(args.pg_admin_url)
    redis_index, token = claim_redis_db(args.redis_host)
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="ppruning-bench-") as tmp:
            tmp_path = Path(tmp)
            model_dir = write_model_config(tmp_path / "models")
            key = create_key(db_url)
            env = {
                **os.environ,
                "PPRUNING_DATABASE_URL": db_url,
                "PPRUNING_BROKER_URL": f"redis://{args.redis_host}:6379/{redis_index}",
                "PPRUNING_ARTIFACT_ROOT": (tmp_path / "artifacts").as_uri(),
                "PPRUNING_ALLOWED_MODEL_ROOTS": f'["{tmp_path / "models"}"]',
                "PPRUNING_DATA_DIR": str(tmp_path / "data"),
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PPRUNING_MAX_QUEUED_JOBS_PER_OWNER": "0",  # thousands of POSTs from one owner: no 429 past 100
            }
            port = free_port()
            proc = start_server(args, env, port)
            load_before = os.getloadavg()[0]
            results = asyncio.run(drive(args, f"http://127.0.0.1:{port}", key, model_dir, proc.pid))
            load_after = os.getloadavg()[0]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        release_redis_db(args.redis_host, redis_index, token)
        drop_database(args.pg_admin_url, db_name)

    print()
    print(f"uvicorn workers={args.workers}, clients={args.concurrency}, <= {args.requests} requests or "
          f"{args.duration:g} s per phase, PostgreSQL + Redis on this machine ({os.cpu_count()} CPUs, "
          f"1-min load average {load_before:.1f} before, {load_after:.1f} after)")  # fmt: skip
    print(HEADER)
    for result in results:
        print(result.row())
    print(CPU_NOTE)
    print()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
