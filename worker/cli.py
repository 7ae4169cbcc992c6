"""``ppruning worker``: run a Celery worker that executes jobs (registered through the ``ppruning.cli`` entry point)."""

from __future__ import annotations

import argparse


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
