"""Making a folder read-only for real, and writable again: what a failing artifact store looks like.

As root, permission bits stop nothing, so the folder is bind-mounted onto itself read-only
(writes fail with EROFS, "Read-only file system", as on a store remounted read-only); as
another user, its write bits are cleared (EACCES). :meth:`ReadOnly.release` undoes either
and is safe to call twice: a test must never leave a mount behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


class ReadOnly:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.mounted = False
        self.modes: dict[Path, int] = {}
        if os.geteuid() == 0:
            subprocess.run(["mount", "--bind", str(self.folder), str(self.folder)], check=True)
            self.mounted = True
            subprocess.run(["mount", "-o", "remount,bind,ro", str(self.folder)], check=True)
        else:
            for path in [self.folder, *self.folder.rglob("*")]:
                if path.is_dir() and not path.is_symlink():
                    self.modes[path] = path.stat().st_mode
                    path.chmod(stat.S_IMODE(self.modes[path]) & ~0o222)

    def release(self) -> None:
        if self.mounted:
            done = subprocess.run(["umount", str(self.folder)], check=False, capture_output=True)
            if done.returncode != 0:  # busy: detach it now, the kernel finishes when it can
                subprocess.run(["umount", "-l", str(self.folder)], check=True)
            self.mounted = False
        for path, mode in self.modes.items():
            path.chmod(stat.S_IMODE(mode))
        self.modes = {}

    def __enter__(self) -> ReadOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """Every one of ``folders`` read-only inside the block; each released after, also on failure."""
    with ExitStack() as stack:
        for folder in folders:
            stack.enter_context(ReadOnly(folder))
        yield
