"""Where a job's inputs are resolved from: never the worker's working directory.

``from_pretrained("org/name")`` (transformers) and ``load_dataset("name")`` (datasets) look
for a folder of that name under the working directory before they ask the hub. A worker
started from a folder that holds ``org/name`` would then load it for a job that named the
hub repository ``org/name``: a folder outside every allowed root. So an attempt runs with
an empty, read-only folder as its working directory (:func:`empty_working_dir`): a hub id
can only resolve on the hub or in its cache, and local inputs are absolute paths checked
against the roots (:func:`jobs.spec_checks.recheck_local_inputs`, and
:func:`jobs.spec_checks.recheck_model_id` again right before a teacher is loaded).

The working directory is the process's: one attempt runs per pool process (Celery's
prefork children run one task at a time), and the previous one is restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CWD_FOLDER = "cwd"
#: Folders the library reads from the environment at call time: made absolute before the move.
PATH_VARIABLES = ("PPRUNING_DATASETS_DIR",)


@contextmanager
def empty_working_dir(parent: Path) -> Iterator[Path]:
    """Run the block in ``parent/cwd``, empty and read-only; the previous working directory comes back after."""
    folder = Path(parent).resolve() / CWD_FOLDER
    folder.mkdir(parents=True, exist_ok=False)
    folder.chmod(0o555)
    try:
        previous = os.getcwd()
    except FileNotFoundError:  # the old one was deleted: come back to the root
        previous = "/"
    for name in PATH_VARIABLES:
        if os.environ.get(name):
            os.environ[name] = os.path.abspath(os.environ[name])
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)
        folder.chmod(0o755)
