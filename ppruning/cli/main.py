"""The ``ppruning`` command line.

Library commands are the modules ``ppruning/cli/cmd_*.py``, each with a
``register(subparsers)``. The service and the worker add theirs through the
``ppruning.cli`` entry-point group (see pyproject.toml and :mod:`ppruning.cli.plugins`),
so this package never imports them; one whose extra is not installed is listed with the
``pip install`` line that brings it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from ppruning.cli.plugins import EXIT_MISSING, Plugins, refusal, register_plugins
from ppruning.errors import PruningError


def _register_library_commands(sub: argparse._SubParsersAction) -> None:
    import ppruning.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"ppruning.cli.{info.name}").register(sub)


def _build() -> tuple[argparse.ArgumentParser, Plugins]:
    parser = argparse.ArgumentParser(
        prog="ppruning",
        description="Prune, fine-tune and serve compressed transformer models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_library_commands(sub)
    found = register_plugins(sub)
    if found.missing:
        parser.epilog = "not installed:\n" + "\n".join(f"  {line}" for line in found.summary())
    return parser, found


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser, plugins = _build()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in plugins.missing:  # before parsing: its options are unknown here
        print(refusal(words[0], plugins.missing[words[0]]), file=sys.stderr)
        return EXIT_MISSING
    args = parser.parse_args(words)
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
