"""The ``ppruning`` command line.

Library commands are the modules ``ppruning/cli/cmd_*.py``, each with a
``register(subparsers)``. The service and the worker add theirs through the
``ppruning.cli`` entry-point group (see pyproject.toml), so this package never
imports them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from ppruning.errors import PruningError


def _register_library_commands(sub: argparse._SubParsersAction) -> None:
    import ppruning.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"ppruning.cli.{info.name}").register(sub)


def _register_plugin_commands(sub: argparse._SubParsersAction) -> None:
    for ep in sorted(entry_points(group="ppruning.cli"), key=lambda e: e.name):
        ep.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppruning", description="Prune, fine-tune and serve compressed transformer models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_library_commands(sub)
    _register_plugin_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PruningError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"ppruning: error{where}: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppruning: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
