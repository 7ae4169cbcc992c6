"""``ppruning methods``: the registered pruning methods with their parameters' JSON schemas.

Read from the method registry, the same source the API's ``GET /methods`` uses, so the
two never disagree.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the pruning methods and their parameters")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=run)


def describe() -> list[dict]:
    from ppruning.methods.registry import all_methods

    return [
        {
            "name": info.name,
            "summary": info.summary,
            "kind": info.kind,
            "data": info.data,
            "model_types": sorted(info.model_types),
            "params_schema": info.json_schema(),
        }
        for info in all_methods().values()
    ]


def run(args: argparse.Namespace) -> int:
    methods = describe()
    if args.json:
        print(json.dumps(methods, indent=2))
        return 0
    for m in methods:
        print(f"{m['name']}  ({m['kind']}, data: {m['data']})\n  {m['summary']}")
        for name, prop in m["params_schema"].get("properties", {}).items():
            choices = prop.get("enum") or [o.get("const") for o in prop.get("anyOf", []) if "const" in o]
            extra = f" one of {choices}" if choices else ""
            print(f"    {name} = {prop.get('default')!r}{extra}  {prop.get('description', '')}".rstrip())
        print(f"  schema: {json.dumps(m['params_schema'], separators=(',', ':'))}\n")
    return 0
