"""``ppruning worker`` and the CI client commands ``submit``, ``status``, ``wait``, ``download``.

Registered through the ``ppruning.cli`` entry point. The client commands talk HTTP only:
``--url`` (default ``$PPRUNING_URL``, else http://127.0.0.1:8000) and ``--api-key``
(default ``$PPRUNING_API_KEY``). Exit codes: 0 done, 1 the job failed or was cancelled
(``wait``), 2 a usage or service error, 3 ``wait --timeout`` ran out, 4 the job succeeded
but its quality gate rejected the model (``result.verdict == "rejected"``, ``wait``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_JOB_FAILED = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 3
EXIT_REJECTED = 4


def _worker(args: argparse.Namespace) -> int:
    from worker.celery_app import QUEUES, app, visible_gpus

    concurrency = args.concurrency or max(1, len(visible_gpus()))
    argv = ["worker", "--queues", args.queues or ",".join(QUEUES), "--concurrency", str(concurrency)]
    argv += ["--loglevel", args.loglevel, "--pool", "prefork"]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from worker.client import Client

    if not args.api_key:
        raise SystemExit("ppruning: give --api-key or set PPRUNING_API_KEY")
    return Client(args.url, args.api_key)


def _print(job: dict) -> None:
    print(json.dumps(job, indent=2, sort_keys=True))


def _run(fn):  # type: ignore[no-untyped-def]
    """Service errors become one line on stderr and exit code 2."""

    def wrapped(args: argparse.Namespace) -> int:
        from worker.client import ClientError

        try:
            return fn(args)
        except ClientError as exc:
            print(f"ppruning: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:
            print(f"ppruning: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return wrapped


@_run
def _submit(args: argparse.Namespace) -> int:
    source = "standard input" if args.spec == "-" else args.spec
    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"ppruning: {source} is not JSON: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not isinstance(spec, dict):
        print(f"ppruning: {source} must hold a JSON object (a job spec or a record)", file=sys.stderr)
        return EXIT_ERROR
    if args.from_record:  # a record, a report or record.json holding one, or a job (GET /jobs/{id})
        from ppruning.provenance import spec_from_record

        document = spec.get("result") if isinstance(spec.get("result"), dict) else spec
        kind, body = spec_from_record(document)
        spec = {"kind": kind, **body}
    with _client(args) as client:
        job = client.submit(spec, idempotency_key=args.idempotency_key)
    print(job["id"] if args.quiet else json.dumps(job, indent=2, sort_keys=True))
    return 0


@_run
def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.job(args.job_id))
    return 0


@_run
def _wait(args: argparse.Namespace) -> int:
    from worker.client import WaitTimeout, describe
    from worker.live import LivePrinter

    def show(job: dict) -> None:
        if not args.quiet:
            print(describe(job), file=sys.stderr, flush=True)

    live = None if args.quiet else LivePrinter(sys.stderr)
    with _client(args) as client:
        try:
            options = {"timeout_s": args.timeout, "poll_s": args.poll, "on_update": show}
            if args.no_stream:
                job = client.wait(args.job_id, **options)
            else:
                job = client.follow(args.job_id, on_event=live, **options)
        except WaitTimeout as exc:
            print(f"ppruning: {exc}", file=sys.stderr)
            return EXIT_TIMEOUT
    _print(job)
    if job["state"] != "succeeded":
        error = job.get("error") or {}
        print(f"ppruning: job {job['state']}: {error.get('type')}: {error.get('message')}", file=sys.stderr)
        return EXIT_JOB_FAILED
    if (job.get("result") or {}).get("verdict") == "rejected":
        reasons = "; ".join((job["result"].get("gate") or {}).get("reasons") or [])
        print(f"ppruning: job {job['id']} rejected by its quality gate: {reasons}", file=sys.stderr)
        return EXIT_REJECTED
    return 0


@_run
def _download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        path = client.download(args.job_id, args.name, Path(args.output or args.name))
    print(path)
    return 0


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("PPRUNING_URL", "http://127.0.0.1:8000"),
        help="Service URL (default: $PPRUNING_URL or http://127.0.0.1:8000).",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("PPRUNING_API_KEY"), help="API key (default: $PPRUNING_API_KEY)."
    )


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="Run a Celery worker that executes jobs (one job per GPU).")
    w.add_argument("--queues", help="Comma-separated queues to consume (default: gpu,cpu).")
    w.add_argument("--concurrency", type=int, help="Jobs at once (default: number of GPUs, or 1).")
    w.add_argument("--hostname", help="Celery node name (default: celery@<host>).")
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=_worker)

    s = sub.add_parser("submit", help="Submit a job spec (a JSON file, or - for stdin); prints the job.")
    s.add_argument("spec")
    s.add_argument("--idempotency-key", help="Resubmitting with the same key returns the same job.")
    s.add_argument("-q", "--quiet", action="store_true", help="Print only the job id.")
    s.add_argument(
        "--from-record",
        action="store_true",
        help="SPEC is a reproducibility record (record.json, report.json or a job's JSON): run it again.",
    )
    _client_options(s)
    s.set_defaults(func=_submit)

    st = sub.add_parser("status", help="Print a job as JSON.")
    st.add_argument("job_id")
    _client_options(st)
    st.set_defaults(func=_status)

    wt = sub.add_parser(
        "wait",
        help="Follow a job live until it finishes (a bar on a terminal, plain lines in CI logs); "
        "exit 1 if it failed or was cancelled, 4 if its quality gate rejected it.",
    )
    wt.add_argument("job_id")
    wt.add_argument("--timeout", type=float, help="Give up after this many seconds (exit 3).")
    wt.add_argument("--poll", type=float, default=2.0, help="Seconds between polls (when not streaming).")
    wt.add_argument("--no-stream", action="store_true", help="Poll the job instead of following its live event stream.")
    wt.add_argument("-q", "--quiet", action="store_true", help="No progress lines on stderr.")
    _client_options(wt)
    wt.set_defaults(func=_wait)

    d = sub.add_parser("download", help="Download an artifact of a job (sha256 checked).")
    d.add_argument("job_id")
    d.add_argument("name", help="Artifact name, e.g. model.tar.gz, head_mask.pt, report.json.")
    d.add_argument("-o", "--output", help="Destination file (default: the artifact name).")
    _client_options(d)
    d.set_defaults(func=_download)
