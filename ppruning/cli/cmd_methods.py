"""``ppruning methods``: the registered pruning methods and their parameters (``--json``: with JSON schemas).

Read from the method registry, the same source the API's ``GET /methods`` uses, so the
two never disagree.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the pruning methods and their parameters", description=__doc__)
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=run)


_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def run(args: argparse.Namespace) -> int:
    from ppruning.discovery import describe_methods

    methods = describe_methods()
    if args.json:
        print(json.dumps(methods, indent=2))
        return 0
    for m in methods:
        print(f"{m['name']}  ({m['kind']}, data: {m['data']})\n  {m['summary']}")
        print(f"  model types: {', '.join(m['model_types'])}")
        for p in m["parameters"]:
            bounds = " ".join(f"{op}{p[k]}" for k, op in _BOUNDS.items() if k in p)
            extra = f" one of {p['choices']}" if "choices" in p else (f" ({bounds})" if bounds else "")
            print(f"    {p['name']}: {p['type']} = {p.get('default')!r}{extra}  {p.get('description', '')}".rstrip())
        print()
    print("The parameters' JSON schemas: ppruning methods --json")
    return 0
