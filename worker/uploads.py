"""Storing a finished computation's results: an artifact store that fails does not throw the work away.

The runner's outputs are local files in the attempt's work folder. :func:`upload_outputs`
copies them under the attempt's prefix; when the store fails (a transient error that
:mod:`jobs.artifacts` already retried, or a refusal such as a read-only file system), the
results stay where they are and the upload is tried again with backoff, for up to
``PPRUNING_UPLOAD_RETRY_S``, while the attempt keeps its lease (the heartbeat thread runs on)
and still stops at a cancel. Files already stored are not sent again. Only past that time
does the job fail, with the store's error: its message names the object's key, never a
server path. The job's owner sees each wait as a warning event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from jobs.artifacts import ArtifactStore, StorageError, StoredObject
from worker.job_runners import Outputs
from worker.progress import JobProgress

log = logging.getLogger(__name__)

Stored = list[tuple[str, str, StoredObject]]
#: First wait after a failed upload, and the longest (doubled in between).
FIRST_WAIT_S = 2.0
MAX_WAIT_S = 60.0


def upload_outputs(
    store: ArtifactStore,
    prefix: str,
    outputs: Outputs,
    progress: JobProgress,
    *,
    retry_for_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Stored:
    """Every output under ``prefix``, in the runner's order; :class:`StorageError` once ``retry_for_s`` is spent."""
    stored: dict[str, tuple[str, str, StoredObject]] = {}
    started, wait = clock(), FIRST_WAIT_S
    while True:
        try:
            _send(store, prefix, outputs, progress, stored)
            return list(stored.values())
        except StorageError as exc:
            left = retry_for_s - (clock() - started)
            if left <= 0:
                raise
            pause = min(wait, left)
            log.warning("upload to %s failed (%s); retrying in %.0f s", prefix, exc, pause)
            _tell(progress, f"{exc}; the results are kept on the worker and the upload is tried again in {pause:.0f} s")
            _sleep(pause, progress)
            wait = min(MAX_WAIT_S, wait * 2)


def _send(
    store: ArtifactStore, prefix: str, outputs: Outputs, progress: JobProgress, stored: dict[str, Any]
) -> None:
    for name, kind, path in outputs.files:
        if name not in stored:
            progress.checkpoint()
            stored[name] = (name, kind, store.put_file(path, f"{prefix}/{name}"))
    for name, kind, folder in outputs.archives:
        if name not in stored:
            progress.checkpoint()
            stored[name] = (name, kind, store.put_archive(folder, f"{prefix}/{name}"))


def _tell(progress: JobProgress, message: str) -> None:
    """A warning event for the job's owner; the database may be away too, which must not end the wait."""
    try:
        progress.event(message, level="warning")
    except Exception:
        log.warning("could not record the upload's wait as an event", exc_info=True)


def _sleep(seconds: float, progress: JobProgress) -> None:
    """Wait, stopping at once for a cancel or a lost lease (:meth:`JobProgress.checkpoint`)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        progress.checkpoint()
        time.sleep(min(0.5, left))
