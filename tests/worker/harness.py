"""A real Celery worker process and the real API, wired to one test's databases.

The worker is ``celery -A worker.celery_app worker`` in its own process group, with the
test's database URL, broker URL and artifact root in its environment and short
heartbeats/timeouts so recovery happens within seconds. Every process started is
killed by the owner's ``finally`` (see the fixtures), also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.settings import Settings
from tests.support.reviews import reviews_task

REPO = Path(__file__).resolve().parents[2]
API_KEY = "worker-tests-key"
CALLBACK_SECRET = "worker-tests-callback-key"

#: Seconds: heartbeats every 0.5 s, a worker silent for 4 s is dead, a message unpicked for 6 s lost,
#: a store removal that failed is tried again after 0.5 s (doubling).
FAST = {
    "PPRUNING_HEARTBEAT_INTERVAL_S": "0.5",
    "PPRUNING_HEARTBEAT_TIMEOUT_S": "4",
    "PPRUNING_QUEUED_TIMEOUT_S": "6",
    "PPRUNING_PROGRESS_MIN_INTERVAL_S": "0.2",
    "PPRUNING_REMOVAL_RETRY_S": "0.5",
}


@dataclass
class Backend:
    """Where one test's jobs live: database, broker, artifacts, data dir."""

    name: str
    database_url: str
    broker_url: str
    data_dir: Path
    allowed_roots: list[Path] = field(default_factory=list)

    @property
    def artifact_root(self) -> str:
        return (self.data_dir / "artifacts").as_uri()

    def env(self) -> dict[str, str]:
        return {
            "PPRUNING_DATA_DIR": str(self.data_dir),
            "PPRUNING_DATABASE_URL": self.database_url,
            "PPRUNING_BROKER_URL": self.broker_url,
            "PPRUNING_ARTIFACT_ROOT": self.artifact_root,
            "PPRUNING_DEVICE": "cpu",
            "PPRUNING_ALLOWED_MODEL_ROOTS": json.dumps([str(root) for root in self.allowed_roots]),
            "PPRUNING_CALLBACK_SECRET": CALLBACK_SECRET,
            **FAST,
        }

    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            database_url=self.database_url,
            broker_url=self.broker_url,
            artifact_root=self.artifact_root,
            api_keys=[f"tester:{API_KEY}"],
            allowed_model_roots=self.allowed_roots,
            callback_secret=CALLBACK_SECRET,
            heartbeat_interval_s=float(FAST["PPRUNING_HEARTBEAT_INTERVAL_S"]),
            heartbeat_timeout_s=float(FAST["PPRUNING_HEARTBEAT_TIMEOUT_S"]),
            queued_timeout_s=float(FAST["PPRUNING_QUEUED_TIMEOUT_S"]),
            removal_retry_s=float(FAST["PPRUNING_REMOVAL_RETRY_S"]),
        )


class WorkerProcess:
    """One ``celery worker`` process group; ``stop()`` is safe to call twice."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.log_path = backend.data_dir / f"{name}.log"
        env = {**os.environ, **backend.env(), "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "gpu,cpu,callbacks"]
        argv += ["--concurrency", "1", "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-mingle"]
        argv += ["--without-gossip", "--without-heartbeat"]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children): a crash."""
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=20)
        self._log.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


#: A real measurement, bounded: a busy test machine would otherwise repeat for 20 s per batch size.
BOUNDED_MEASURE = {"seconds_per_batch": 2.0, "max_seconds": 5.0}


def prune_spec(model: Path, fixtures: Path, **overrides: Any) -> dict[str, Any]:
    """A small prune job on the custom reviews data shipped in tests/fixtures/custom."""
    spec: dict[str, Any] = {
        "kind": "prune",
        "model": {"id": str(model)},
        "task": reviews_task(),
        "method": "ppruning",
        "target": {"flops_reduction": 0.2},
        "params": {"max_instances": 32, "sampling_tokens": 40},
        "device": "cpu",
        # no speed measurement unless a test is about it (then BOUNDED_MEASURE): it is seconds of a
        # small job's time, and a busy test machine makes it noisy
        "measure": False,
    }
    spec.update(overrides)
    return spec


def smp_spec(model: Path, fixtures: Path, steps: int = 12, **overrides: Any) -> dict[str, Any]:
    """A small SMP job (MLM head, label words of the reviews data) that saves its state after every step."""
    params = {"steps": steps, "train_batch_size": 8, "label_words": ["bad", "good"], "resume_every_s": 1e-6,
              "max_instances": 32}  # fmt: skip
    return {**prune_spec(model, fixtures, method="smp", target={"params_reduction": 0.5}, params=params), **overrides}


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def prune_config(model: Path, fixtures: Path, **overrides: Any) -> Any:
    """The same small job as a library ``PruneConfig`` (no ``kind``), for tests that call ``prune()``."""
    from ppruning.run.config import PruneConfig

    spec = prune_spec(model, fixtures, **overrides)
    spec.pop("kind")
    return PruneConfig.model_validate(spec)
