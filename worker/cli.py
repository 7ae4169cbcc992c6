"""``ppruning worker`` (a Celery worker that executes jobs) and ``ppruning run`` (one job spec on this machine),
registered through the ``ppruning.cli`` entry points."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _worker(args: argparse.Namespace) -> int:
    from jobs.settings import settings_or_exit
    from jobs.store.migrate import prepare_embedded

    prepare_embedded(settings_or_exit())  # before Celery starts: a bad setting must not fail every job instead
    from worker.celery_app import WORKER_QUEUES, app, visible_gpus

    concurrency = args.concurrency or max(1, len(visible_gpus()))
    argv = ["worker", "--queues", args.queues or ",".join(WORKER_QUEUES), "--concurrency", str(concurrency)]
    argv += ["--loglevel", args.loglevel, "--pool", "prefork"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="Run a Celery worker that executes jobs (one job per GPU).")
    w.add_argument("--queues", help="Comma-separated queues to consume (default: gpu,cpu,callbacks; "
                   "callbacks carries the POSTs of job callbacks).")
    w.add_argument("--concurrency", type=int, help="Jobs at once (default: number of GPUs, or 1).")
    w.add_argument("--hostname", help="Celery node name (default: celery@<host>).")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=_worker)


def _run(args: argparse.Namespace) -> int:
    from worker.local_run import SpecRefused, run_spec

    try:
        job = run_spec(args.spec, args.output, device=args.device)
    except SpecRefused as exc:
        print(f"ppruning: error: {exc}", file=sys.stderr)
        return 2
    error = job["error"]
    if job["state"] != "succeeded":
        print(f"ppruning: job {job['state']}: {error['type']}: {error['message']}" if error else job["state"],
              file=sys.stderr)  # fmt: skip
        return 1
    verdict = (job["result"] or {}).get("verdict")
    print(f"{job['kind']} job succeeded" + (f", verdict {verdict}" if verdict else "") + f"; {len(job['files'])} "
          f"artifacts and job.json in {args.output}")  # fmt: skip
    return 0


def register_run(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "run",
        help="Run a job spec (JSON, as for POST /jobs) on this machine, with the service's checks and artifacts.",
        description="Run one job spec here: validated as the service validates a submission, run by the worker's "
        "own runners, its artifacts and job.json (state, result, error) written into --output. Exit 0 when the job "
        "succeeds, 1 when it fails, 2 when the spec is refused.",
    )
    r.add_argument("spec", type=Path, help="the job spec, a JSON file (any kind: prune, finetune, pipeline, sweep)")
    r.add_argument("--output", type=Path, required=True, help="folder for the job's artifacts and job.json")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: PPRUNING_DEVICE, else auto)")
    r.set_defaults(func=_run)
