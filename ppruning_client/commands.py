"""The CI client's commands: ``submit``, ``status``, ``wait``, ``download`` (and, from
:mod:`ppruning_client.job_commands`, ``cancel``, ``list``, ``events``, ``artifacts``, ``delete``).

They talk HTTP only: ``--url`` (default ``$PPRUNING_URL``, else http://127.0.0.1:8000) and
``--api-key`` (default ``$PPRUNING_API_KEY``). The same parsers serve ``ppruning-client``
(the standalone distribution, no torch) and ``ppruning`` (added through the
``ppruning.cli`` entry point). Exit codes: 0 done, 1 the job failed or was cancelled
(``wait``), 2 a usage or service error, 3 ``wait --timeout`` ran out, 4 the job succeeded
but its quality gate rejected the model (``result.verdict == "rejected"``, ``wait``), 5 the
service could not be reached (see :mod:`ppruning_client.cli_common`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ppruning_client import job_commands
from ppruning_client.cli_common import (
    EXIT_ERROR,
    EXIT_JOB_FAILED,
    EXIT_REJECTED,
    EXIT_TIMEOUT,
    client_for,
    connection_options,
    fail,
    one_line_errors,
    print_json,
    summary_line,
)
from ppruning_client.http_client import ClientError, WaitTimeout, describe
from ppruning_client.live import LivePrinter

__all__ = ["EXIT_ERROR", "EXIT_JOB_FAILED", "EXIT_REJECTED", "EXIT_TIMEOUT", "main", "register", "spec_from_document"]


def spec_from_document(document: dict[str, Any]) -> dict[str, Any]:
    """The job spec that reruns a reproducibility record, a report or ``record.json`` holding one, or a job.

    A record names its ``kind`` and the ``rerun_spec`` to submit (hub models pinned to the
    resolved commit); a job (``GET /jobs/{id}``) carries its record under ``result``.
    """
    if isinstance(document.get("result"), dict):
        document = document["result"]
    if isinstance(document.get("record"), dict):
        document = document["record"]
    if not isinstance(document.get("rerun_spec"), dict) or "kind" not in document:
        raise ClientError("not a reproducibility record (no 'kind' and 'rerun_spec')")
    return {"kind": document["kind"], **document["rerun_spec"]}


@one_line_errors
def submit(args: argparse.Namespace) -> int:
    source = "standard input" if args.spec == "-" else args.spec
    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        return fail(args, f"{source} is not JSON: {exc}")
    if not isinstance(spec, dict):
        return fail(args, f"{source} must hold a JSON object (a job spec or a record)")
    if args.from_record:
        spec = spec_from_document(spec)
    with client_for(args) as client:
        job = client.submit(spec, idempotency_key=args.idempotency_key)
    print(job["id"] if args.quiet else json.dumps(job, indent=2, sort_keys=True))
    return 0


@one_line_errors
def status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        print_json(client.job(args.job_id))
    return 0


@one_line_errors
def wait(args: argparse.Namespace) -> int:
    def show(job: dict[str, Any]) -> None:
        if not args.quiet:
            print(describe(job), file=sys.stderr, flush=True)

    live = None if args.quiet else LivePrinter(sys.stderr)
    with client_for(args) as client:
        client.job(args.job_id)  # an unknown job or an unreachable service fails at once, not after reconnects
        try:
            options: dict[str, Any] = {"timeout_s": args.timeout, "poll_s": args.poll, "on_update": show}
            if args.no_stream:
                job = client.wait(args.job_id, **options)
            else:
                job = client.follow(args.job_id, on_event=live, **options)
        except WaitTimeout as exc:
            return fail(args, str(exc), EXIT_TIMEOUT)
    if args.json:
        print_json(job)
    else:
        print(summary_line(job), flush=True)
    if job["state"] != "succeeded":
        error = job.get("error") or {}
        if live is not None and error.get("message") and any(error["message"] in m for m in live.errors_shown):
            return EXIT_JOB_FAILED  # the live log showed the error already: once is enough
        return fail(args, f"job {job['state']}: {error.get('type')}: {error.get('message')}", EXIT_JOB_FAILED)
    if (job.get("result") or {}).get("verdict") == "rejected":
        reasons = "; ".join((job["result"].get("gate") or {}).get("reasons") or [])
        return fail(args, f"job {job['id']} rejected by its quality gate: {reasons}", EXIT_REJECTED)
    return 0


@one_line_errors
def download(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        path = client.download(args.job_id, args.name, Path(args.output or args.name))
    print(path)
    return 0


def register(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    """Add every client command to a CLI's subparsers (``prog`` prefixes their error lines)."""
    for add in (register_submit, register_status, register_wait, register_download, *job_commands.REGISTER):
        add(sub, prog)


def register_submit(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    s = sub.add_parser("submit", help="Submit a job spec (a JSON file, or - for stdin); prints the job.")
    s.add_argument("spec")
    s.add_argument("--idempotency-key", help="Resubmitting with the same key returns the same job.")
    s.add_argument("-q", "--quiet", action="store_true", help="Print only the job id.")
    s.add_argument(
        "--from-record",
        action="store_true",
        help="SPEC is a reproducibility record (record.json, report.json or a job's JSON): run it again.",
    )
    connection_options(s, prog)
    s.set_defaults(func=submit)


def register_status(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    st = sub.add_parser("status", help="Print a job as JSON.")
    st.add_argument("job_id")
    connection_options(st, prog)
    st.set_defaults(func=status)


def register_wait(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    wt = sub.add_parser(
        "wait",
        help="Follow a job live until it finishes (a bar on a terminal, plain lines in CI logs), then print "
        "one summary line (or the job with --json); exit 1 if it failed or was cancelled, 4 if its quality "
        "gate rejected it.",
    )
    wt.add_argument("job_id")
    wt.add_argument("--timeout", type=float, help="Give up after this many seconds (exit 3).")
    wt.add_argument("--poll", type=float, default=2.0, help="Seconds between polls (when not streaming).")
    wt.add_argument("--no-stream", action="store_true", help="Poll the job instead of following its live event stream.")
    wt.add_argument("-q", "--quiet", action="store_true", help="No progress lines on stderr.")
    wt.add_argument("--json", action="store_true", help="Print the finished job as JSON instead of one summary line.")
    connection_options(wt, prog)
    wt.set_defaults(func=wait)


def register_download(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    d = sub.add_parser("download", help="Download an artifact of a job (sha256 checked).")
    d.add_argument("job_id")
    d.add_argument("name", help="Artifact name, e.g. model.tar.gz, head_mask.pt, report.json.")
    d.add_argument("-o", "--output", help="Destination file (default: the artifact name).")
    connection_options(d, prog)
    d.set_defaults(func=download)


def main(argv: list[str] | None = None) -> int:
    """``ppruning-client``: the same commands for a CI runner that installs only this client."""
    parser = argparse.ArgumentParser(
        prog="ppruning-client",
        description="Submit pruning jobs to a P-pruning service, follow them, download results.",
        epilog="exit codes: 0 done, 1 the job failed or was cancelled, 2 a usage or service error, "
        "3 wait --timeout ran out, 4 the quality gate rejected the model, 5 the service could not be reached",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub, prog="ppruning-client")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("ppruning-client: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("ppruning-client", "ppruning-service"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
