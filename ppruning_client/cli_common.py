"""What every client command shares: exit codes, the connection options, the one-line error guard.

Exit codes: 0 done, 1 the job failed or was cancelled (``wait``), 2 a usage or service
error, 3 ``wait --timeout`` ran out, 4 the job succeeded but its quality gate rejected the
model, 5 the service could not be reached at all (nothing listens at ``--url``, DNS, timeout):
a CI step can tell "the service is down" from "the service refused this".
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from ppruning_client.http_client import Client, ClientError, ServiceUnreachable
from ppruning_client.live import format_duration

EXIT_JOB_FAILED = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 3
EXIT_REJECTED = 4
EXIT_UNREACHABLE = 5

Command = Callable[[argparse.Namespace], int]


def client_for(args: argparse.Namespace) -> Client:
    if not args.api_key:
        raise SystemExit(f"{args.prog}: give --api-key or set PPRUNING_API_KEY")
    return Client(args.url, args.api_key)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))


def fail(args: argparse.Namespace, message: str, code: int = EXIT_ERROR) -> int:
    print(f"{args.prog}: {message}", file=sys.stderr)
    return code


def one_line_errors(fn: Command) -> Command:
    """Service, network and file errors become one line on stderr, never a traceback.

    Exit 5 when the service could not be reached (the line names the URL), 2 otherwise.
    """

    @functools.wraps(fn)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ServiceUnreachable as exc:
            return fail(args, str(exc), EXIT_UNREACHABLE)
        except httpx.TransportError as exc:
            return fail(args, f"cannot reach the service at {args.url}: {type(exc).__name__}: {exc}", EXIT_UNREACHABLE)
        except (ClientError, OSError) as exc:
            return fail(args, str(exc))

    return wrapped


def connection_options(parser: argparse.ArgumentParser, prog: str) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("PPRUNING_URL", "http://127.0.0.1:8000"),
        help="Service URL (default: $PPRUNING_URL or http://127.0.0.1:8000).",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("PPRUNING_API_KEY"), help="API key (default: $PPRUNING_API_KEY)."
    )
    parser.set_defaults(prog=prog)


def duration(job: dict[str, Any]) -> str:
    """Run time of a job (started to finished, else created to updated), as ``12s``, ``3m05s``, ``1h02m``."""
    try:
        start = datetime.fromisoformat(str(job.get("started_at") or job["created_at"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(job.get("finished_at") or job["updated_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return "?"
    return format_duration(max(0.0, (end - start).total_seconds()))


def summary_line(job: dict[str, Any]) -> str:
    """One line for a finished job: id, state, kind, verdict, duration, artifact count."""
    verdict = (job.get("result") or {}).get("verdict") or "-"
    artifacts = len(job.get("artifacts") or [])
    return (
        f"job {job['id']} {job['state']}  kind={job.get('kind', '?')}  verdict={verdict}  "
        f"duration={duration(job)}  artifacts={artifacts}"
    )
