"""A folder made read-only for real, so a file store under it really fails to remove what is in it.

As root (containers, CI images) permission bits do not stop a removal, so the folder is made
immutable (``chattr +i``, which binds root too); as anyone else its write bits are taken away.
A test that cannot do either here is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """Nothing can be added to or removed from ``folders`` inside the block; restored after, also on failure."""
    done: list[Path] = []
    try:
        for folder in folders:
            _freeze(folder)
            done.append(folder)
        yield
    finally:
        for folder in reversed(done):
            _thaw(folder)


def _freeze(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(folder.stat().st_mode & ~0o222)
    elif shutil.which("chattr") is None or not _run("chattr", "+i", str(folder)):
        pytest.skip("running as root without 'chattr +i' on this file system: a folder cannot be made read-only")


def _thaw(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(folder.stat().st_mode | 0o200)
    else:
        _run("chattr", "-i", str(folder))
