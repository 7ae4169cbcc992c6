"""The client's job-management commands: ``cancel``, ``list``, ``events``, ``artifacts``, ``delete``.

Each is one call of :class:`client.http_client.Client`; output is JSON with ``--json``,
else short lines a CI log or a terminal reads at a glance.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ppruning_client.cli_common import client_for, connection_options, one_line_errors, print_json
from ppruning_client.http_client import ClientError, SseEvent, StreamUnavailable
from ppruning_client.live import LivePrinter

STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def _job_line(job: dict[str, Any]) -> str:
    percent = 100 * float(job.get("progress") or 0.0)
    return (
        f"{job['id']}  {job['kind']:<9} {job['state']:<9} {percent:5.1f}%  {job.get('created_at', '')}  "
        f"{job.get('message') or ''}"
    ).rstrip()


@one_line_errors
def cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        job = client.cancel(args.job_id)
    if args.json:
        print_json(job)
    else:
        flagged = job["state"] == "running"
        print(f"job {job['id']} {'cancel requested (stops at its next checkpoint)' if flagged else job['state']}")
    return 0


@one_line_errors
def list_jobs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.all:
            jobs, cursor = list(client.iter_jobs(state=args.state, kind=args.kind, parent=args.parent)), None
        else:
            page = client.jobs(state=args.state, kind=args.kind, parent=args.parent, limit=args.limit,
                               cursor=args.cursor)  # fmt: skip
            jobs, cursor = page["items"], page.get("next_cursor")
    if args.json:
        print_json({"items": jobs, "next_cursor": cursor})
        return 0
    for job in jobs:
        print(_job_line(job))
    if cursor:
        print(f"more: --cursor {cursor}", file=sys.stderr)
    return 0


def _event_line(item: dict[str, Any]) -> str:
    level = item.get("level") or "info"
    stage = f"[{item['stage']}] " if item.get("stage") else ""
    prefix = "" if level == "info" else f"{level}: "
    return f"{item.get('id')}  {item.get('created_at', '')}  {stage}{prefix}{item.get('message') or ''}".rstrip()


@one_line_errors
def events(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.follow:
            client.job(args.job_id)  # an unknown job fails at once, not after reconnects
            live = LivePrinter(sys.stdout)

            def show(event: SseEvent) -> None:
                if args.json:
                    print_json({"id": event.id, "event": event.event, "data": event.data})
                else:
                    live(event)

            try:
                for event in client.events(args.job_id, after=args.after):
                    show(event)
            except StreamUnavailable as exc:
                raise ClientError(f"cannot follow job {args.job_id}'s events: {exc}") from None
            return 0
        after = args.after
        while True:
            page = client.event_page(args.job_id, after=after, limit=1000)
            for item in page["items"]:
                print_json(item) if args.json else print(_event_line(item))
            if page.get("next_after") is None or len(page["items"]) < 1000:
                return 0
            after = page["next_after"]


@one_line_errors
def artifacts(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        items = client.artifacts(args.job_id)
    if args.json:
        print_json(items)
    for item in [] if args.json else items:
        print(f"{item['name']:<32} {item['kind']:<12} {item['size']:>12}  sha256:{item['sha256']}")
    return 0


@one_line_errors
def delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        client.delete(args.job_id)
    print(f"job {args.job_id} deleted")
    return 0


def _command(
    sub: argparse._SubParsersAction,
    prog: str,
    name: str,
    summary: str,
    func: Callable[[argparse.Namespace], int],
    *,
    job_id: bool = True,
    json: bool = True,
) -> argparse.ArgumentParser:
    """One job command: its parser with the job id, --json, the connection options; the caller adds its own."""
    p = sub.add_parser(name, help=summary)
    if job_id:
        p.add_argument("job_id")
    if json:
        p.add_argument("--json", action="store_true", help="Print JSON instead of short lines.")
    connection_options(p, prog)
    p.set_defaults(func=func)
    return p


def register_cancel(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    _command(sub, prog, "cancel", "Cancel a job: a queued one at once, a running one at its next checkpoint.", cancel)


def register_list(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    summary = "List your jobs, newest first (one page; --all for every page)."
    p = _command(sub, prog, "list", summary, list_jobs, job_id=False)
    p.add_argument("--state", action="append", default=[], choices=STATES, help="Only this state (repeatable).")
    p.add_argument("--kind", action="append", default=[], help="Only this job kind, e.g. prune, sweep (repeatable).")
    p.add_argument("--parent", help="Only the children of this sweep job.")
    p.add_argument("--limit", type=int, default=20, help="Jobs per page, 1 to 100 (default: 20).")
    p.add_argument("--cursor", help="The next page: the cursor a previous `list` printed.")
    p.add_argument("--all", action="store_true", help="Follow the pages to the end.")


def register_events(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    p = _command(sub, prog, "events", "Print a job's log; --follow streams it live until the job ends.", events)
    p.add_argument("--after", type=int, default=0, help="Only events with a larger id (default: 0, all).")
    p.add_argument("-f", "--follow", action="store_true", help="Stream the events live until the job ends.")


def register_artifacts(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    _command(sub, prog, "artifacts", "List a job's artifacts: name, kind, size, sha256.", artifacts)


def register_delete(sub: argparse._SubParsersAction, prog: str = "ppruning") -> None:
    summary = "Delete a finished job and its artifacts (cancel a running one first)."
    _command(sub, prog, "delete", summary, delete, json=False)


REGISTER = (register_cancel, register_list, register_events, register_artifacts, register_delete)
