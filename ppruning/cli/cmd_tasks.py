"""``ppruning tasks``: the registered tasks, their data, metrics and what a custom task needs."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the registered tasks", description=__doc__)
    p.add_argument("--json", action="store_true", help="every field of every task, as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ppruning.discovery import describe_tasks
    from ppruning.tasks import all_tasks

    tasks = all_tasks()
    if args.json:  # what GET /tasks lists, keyed by name
        print(json.dumps({t["name"]: t for t in describe_tasks()}, indent=2))
        return 0
    width = max(len(n) for n in tasks)
    for name, info in tasks.items():
        source = (
            "local files"
            if info.custom
            else f"{info.dataset}" + (f" ({info.dataset_config})" if info.dataset_config else "")
        )
        needs = (
            f"; needs {', '.join('--' + f.replace('_', '-') for f in info.required_fields)}"
            if info.required_fields
            else ""
        )
        print(f"{name:<{width}}  {info.kind:<18}  {info.main_metric:<22}  {source}{needs}")
        print(f"{'':<{width}}  {info.summary}")
    return 0
