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
import os
import pkgutil
import sys
from collections.abc import Sequence

from ppruning.cli.helptext import tidy
from ppruning.cli.plugins import EXIT_MISSING, Plugins, refusal, register_plugins
from ppruning.errors import PruningError
from ppruning.version import __version__


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
    parser.add_argument("--version", action="version", version=f"ppruning {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_library_commands(sub)
    found = register_plugins(sub)
    if found.missing:
        parser.epilog = "not installed:\n" + "\n".join(f"  {line}" for line in found.summary())
    tidy(parser)
    return parser, found


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


_LIBRARY_COMMANDS = "ppruning.cli.cmd_"
#: The exit status of a command whose reader closed the pipe: what a shell reports for a tool killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush at exit does not fail (and print) again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _flag_for(field: str, command: argparse.ArgumentParser | None) -> str | None:
    """The option of ``command`` that set config field ``field`` (``task.text_column`` -> ``--text-column``).

    The commands build their configs from flags named after the fields, so the field's
    last part, its whole path or its first part is the flag's dest (``model.id`` -> ``--model``).
    """
    func = command.get_default("func") if command is not None else None
    if func is None or not func.__module__.startswith(_LIBRARY_COMMANDS) or field.startswith("-"):
        return None  # a plugin's command may take its config from a file: its fields are the right names
    parts = field.split(".")
    options = {a.dest: a.option_strings[-1] for a in command._actions if a.option_strings}
    for dest in (parts[-1], "_".join(parts), parts[0]):
        if dest in options:
            return options[dest]
    return None


def _error_line(exc: PruningError, command: argparse.ArgumentParser | None) -> str:
    """One line naming what the user typed: the flag when the CLI made the config, else the field."""
    message, field = exc.message, exc.field
    flag = _flag_for(field, command) if field else None
    if flag and field:
        if "." in field:  # a bare word such as 'model' also occurs in ordinary prose
            message = message.replace(field, flag)
        field = flag
    where = f" ({field})" if field else ""
    return f"ppruning: error{where}: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    parser, plugins = _build()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in plugins.missing:  # before parsing: its options are unknown here
        print(refusal(words[0], plugins.missing[words[0]]), file=sys.stderr)
        return EXIT_MISSING
    args = parser.parse_args(words)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away (`ppruning methods | head`) is noticed here
        return code
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except PruningError as exc:
        print(_error_line(exc, commands.get(args.command)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppruning: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
