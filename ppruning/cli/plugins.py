"""Commands other distributions (or extras) add to ``ppruning``, through the ``ppruning.cli`` entry points.

An entry point is named after the command it adds and may name the extra it needs
(``serve = "api.cli:register_serve [service]"``). A command whose extra is not installed
(one of the extra's requirements has no installed distribution) or whose module fails to
import is not registered: it is listed with the ``pip install`` line that brings it, and
running it prints that line and exits 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, PackageNotFoundError, distribution, entry_points

GROUP = "ppruning.cli"
EXIT_MISSING = 2

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def missing_requirements(dist: Distribution, extra: str) -> list[str]:
    """Names of ``extra``'s requirements of ``dist`` that have no installed distribution."""
    own = _normalise(dist.metadata["Name"] or "")
    missing = []
    for requirement in dist.requires or []:
        name, _, marker = requirement.partition(";")
        if extra not in _EXTRA.findall(marker):
            continue
        match = _NAME.match(name)
        if match and _normalise(match.group(1)) != own and not _installed(match.group(1)):
            missing.append(match.group(1))
    return missing


def install_line(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "ppruning-service"
    extras = f"[{','.join(ep.extras)}]" if ep.extras else ""
    return f"pip install '{dist}{extras}'"


@dataclass
class Plugins:
    """Which plugin commands loaded, and which are missing (command -> the install line)."""

    missing: dict[str, str] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """One line per install line: ``serve, worker, db, apikey: pip install '...[service]'``."""
        by_line: dict[str, list[str]] = {}
        for command, line in self.missing.items():
            by_line.setdefault(line, []).append(command)
        return [f"{', '.join(commands)}: {line}" for line, commands in by_line.items()]


def _unavailable(ep: EntryPoint) -> bool:
    if ep.dist is None:
        return False
    return any(_missing_by_name(ep.dist, extra) for extra in ep.extras)


_MISSING: dict[tuple[str, str], list[str]] = {}


def _missing_by_name(dist: Distribution, extra: str) -> list[str]:
    """:func:`missing_requirements` once per distribution and extra: every entry point of a
    distribution shares them, and reading a distribution's metadata is the slow part of
    starting the CLI (seconds for a dozen commands on a small machine)."""
    key = (_normalise(dist.name or ""), extra)
    if key not in _MISSING:
        _MISSING[key] = missing_requirements(dist, extra)
    return _MISSING[key]


def _load(ep: EntryPoint) -> Callable[[argparse._SubParsersAction], None] | None:
    if _unavailable(ep):
        return None
    try:
        return ep.load()
    except ImportError:
        return None


def register_plugins(sub: argparse._SubParsersAction, eps: Iterable[EntryPoint] | None = None) -> Plugins:
    """Register every loadable plugin command on ``sub``; list the others with their install line."""
    plugins = Plugins()
    seen: set[str] = set()
    for ep in sorted(eps if eps is not None else entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in seen:  # the same distribution seen twice on sys.path
            continue
        seen.add(ep.name)
        register = _load(ep)
        if register is not None:
            register(sub)
            continue
        line = install_line(ep)
        plugins.missing[ep.name] = line
        placeholder = sub.add_parser(ep.name, help=f"not installed: {line}", add_help=False)
        placeholder.set_defaults(func=_refuse(ep.name, line))
    return plugins


def _refuse(command: str, line: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(refusal(command, line), file=sys.stderr)
        return EXIT_MISSING

    return run


def refusal(command: str, line: str) -> str:
    return f"ppruning: '{command}' is not installed; it comes with: {line}"
