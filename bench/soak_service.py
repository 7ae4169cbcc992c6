"""The service a soak runs against (:mod:`bench.soak`): uvicorn and a Celery worker on PostgreSQL + Redis
or on the embedded default, owners with stored API keys, a tiny model and the job spec it prunes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.api_load import claim_redis_db, drop_database, free_port, make_database, release_redis_db

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "custom"
#: Owners the streams are spread over (each with a stored key, re-checked by every stream).
OWNERS = 4


def spec(model: Path, seed: int) -> dict[str, Any]:
    return {
        "kind": "prune", "model": {"id": str(model)}, "method": "ppruning", "target": {"flops_reduction": 0.2},
        "task": {"name": "text-classification", "data_files": {"train": str(FIXTURES / "reviews_train.csv")},
                 "text_column": "review", "label_column": "sentiment"},
        "params": {"max_instances": 16, "sampling_tokens": 40}, "device": "cpu", "measure": False, "seed": seed,
    }  # fmt: skip


def _keys(db_url: str) -> list[str]:
    from api.auth import new_secret
    from jobs.store import keys
    from jobs.store.session import session_scope

    secrets = [new_secret() for _ in range(OWNERS)]
    with session_scope(db_url) as session:
        for i, secret in enumerate(secrets):
            keys.create_api_key(session, f"soak-{i}-{uuid.uuid4().hex[:6]}", f"soak-owner-{i}", secret)
    return secrets


def _wait_ready(proc: subprocess.Popen, url: str, what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready within 120 s")


def start_service(stack: ExitStack, backend: str, tmp: Path, streams: int, pg_admin_url: str, redis_host: str,
                  uvicorn_workers: int) -> tuple[str, list[str], Path, Path, int]:  # fmt: skip
    """(base URL, owners' keys, the tiny model, the server's log, its pid); everything stops when ``stack`` closes."""
    from tests.support.tiny_models import save_tiny_bert

    model = save_tiny_bert(tmp / "models" / "tiny-bert")
    env = {**os.environ, "PPRUNING_DATA_DIR": str(tmp / "data"), "PPRUNING_ARTIFACT_ROOT": (tmp / "a").as_uri(),
           "PPRUNING_ALLOWED_MODEL_ROOTS": json.dumps([str(model.parent), str(FIXTURES)]),
           "PPRUNING_MAX_EVENT_STREAMS": str(streams * 2),
           "PPRUNING_MAX_EVENT_STREAMS_PER_OWNER": str(streams),
           "PPRUNING_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}  # fmt: skip
    if backend == "postgres":
        name, db_url = make_database(pg_admin_url)
        stack.callback(drop_database, pg_admin_url, name)
        index, token = claim_redis_db(redis_host)
        stack.callback(release_redis_db, redis_host, index, token)
        env |= {"PPRUNING_DATABASE_URL": db_url, "PPRUNING_BROKER_URL": f"redis://{redis_host}:6379/{index}"}
    else:
        from jobs.settings import Settings
        from jobs.store.migrate import prepare_embedded

        settings = Settings(data_dir=tmp / "data")
        prepare_embedded(settings)
        db_url = settings.database_url
    secrets = _keys(db_url)
    port = free_port()
    log = tmp / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app_factory", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(uvicorn_workers), "--no-access-log", "--log-level", "warning",
         "--backlog", "4096"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    stack.callback(_stop, server)
    worker_env = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        ["nice", "-n", "10", sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
         "--queues", "gpu,cpu", "--concurrency", "1", "--loglevel", "WARNING", "--hostname", "soak@%h",
         "--without-mingle", "--without-gossip", "--without-heartbeat"],
        cwd=ROOT, env=worker_env, stdout=(tmp / "worker.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stack.callback(_stop, worker)
    _wait_ready(server, f"http://127.0.0.1:{port}/readyz", "uvicorn")
    return f"http://127.0.0.1:{port}", secrets, model, log, server.pid


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
