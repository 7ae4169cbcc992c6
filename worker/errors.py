"""What went wrong, in the words a user can act on, and whether to try again.

:func:`classify` turns any exception a job raised into a :class:`Failure`: the
``error_type`` and ``error_message`` stored on a failed job, and ``transient`` for the
few errors worth a retry (the database or broker connection dropped, the hub timed out).
Everything else fails the job at once: retrying a bad model id or a missing column only
delays the answer. The library's own errors (:class:`ppruning.errors.PruningError`) and
the worker's recheck of local inputs (:class:`jobs.errors.InvalidSpec`) already carry a
message and the field at fault, which the stored message starts with; hub and CUDA errors
are translated here, in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from jobs.errors import InvalidSpec
from jobs.settings import Settings
from jobs.storage_errors import StorageError, StorageUnavailable
from ppruning import PruningError

#: Retries of a transient error, and Celery's backoff between them (``retry_backoff``: seconds,
#: doubled each time, capped, with full jitter: :data:`worker.tasks.run_job`).
MAX_RETRIES = 5
BACKOFF_BASE_S = 5
BACKOFF_CAP_S = 300


class TransientJobError(Exception):
    """A job met a transient error (its attempt handed it back to the queue, or it could not be claimed):
    the task raises this and Celery retries the message with backoff (``autoretry_for``)."""


@dataclass(frozen=True)
class Failure:
    error_type: str
    message: str
    transient: bool = False


HUB_TIMEOUT = Failure("HubUnavailableError", "the Hugging Face hub did not answer in time; retried", transient=True)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from, innermost last, without loops."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _hub_failure(exc: BaseException) -> Failure | None:
    try:
        from huggingface_hub import errors as hub
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    if isinstance(exc, hub.GatedRepoError):
        return Failure(
            "GatedRepoError",
            "the model is gated on the Hugging Face hub: accept its licence on the model page with the account "
            "whose token the workers use (HF_TOKEN), or use another model",
        )
    if isinstance(exc, hub.RevisionNotFoundError):
        return Failure("RevisionNotFoundError", "model.revision does not exist on the hub: give a branch, tag, commit")
    if isinstance(exc, hub.RepositoryNotFoundError):
        return Failure(
            "RepositoryNotFoundError",
            "model.id is not a repository on the Hugging Face hub (or it is private and the workers' token cannot "
            "read it): check the spelling, e.g. 'bert-base-uncased' or 'org/name'",
        )
    if isinstance(exc, hub.OfflineModeIsEnabled | hub.LocalEntryNotFoundError):
        return Failure(
            "HubUnavailableError",
            "the model is not in the workers' Hugging Face cache and they run offline (HF_HUB_OFFLINE): check the "
            "id's spelling (e.g. 'bert-base-uncased' or 'org/name'), use a local model folder under the allowed "
            "roots, pre-fill the HF cache volume, or enable hub access",
        )
    if isinstance(exc, hub.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status is not None and (status >= 500 or status == 429):
            return Failure("HubUnavailableError", f"the Hugging Face hub answered {status}; retried", transient=True)
    return None


def _transient_connection(exc: BaseException) -> Failure | None:
    """Lost connections to the database, the broker or the hub: worth a retry."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError

    if isinstance(exc, DisconnectionError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return Failure("DatabaseUnavailable", "the job database connection failed; retried", transient=True)
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError) and "database is locked" not in str(exc):
        return Failure("DatabaseUnavailable", f"the job database is unreachable ({exc.orig}); retried", transient=True)
    try:
        import redis

        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return Failure("BrokerUnavailable", "the broker connection failed; retried", transient=True)
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException | httpx.ConnectError):
            return HUB_TIMEOUT
    except ImportError:  # pragma: no cover
        pass
    try:
        import requests

        if isinstance(exc, requests.Timeout | requests.ConnectionError):
            return HUB_TIMEOUT
    except ImportError:  # pragma: no cover
        pass
    return None


def _is_cuda_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def classify(exc: BaseException) -> Failure:
    """The failure to record for ``exc`` (see the module docstring)."""
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        return Failure(
            "TimeLimitExceeded",
            "the job ran past the workers' time limit (PPRUNING_JOB_SOFT_TIME_LIMIT_S): lower max_instances, "
            "epochs or max_train_samples, or raise the limit",
        )
    chain = list(_chain(exc))
    for link in chain:  # our own errors first: they name the field and the fix (a recheck's too)
        if isinstance(link, PruningError | InvalidSpec):
            where = f"{link.field}: " if link.field else ""
            return Failure(type(link).__name__, f"{where}{link.message}")
    for link in chain:  # the artifact store's: already classified, their messages name keys, not paths
        if isinstance(link, StorageError):
            return Failure(type(link).__name__, str(link), transient=isinstance(link, StorageUnavailable))
    for link in chain:
        if _is_cuda_oom(link):
            return Failure(
                "CudaOutOfMemory",
                "the GPU ran out of memory: lower batch_size or max_length (fine-tuning), max_instances (pruning), "
                "use precision 'bf16'/'fp16', or run on a larger GPU",
            )
        found = _hub_failure(link) or _transient_connection(link)
        if found is not None:
            return found
    text = str(exc) or repr(exc)
    if isinstance(exc, OSError) and ("not a valid model identifier" in text or "does not appear to have" in text):
        return Failure("ModelLoadError", f"model.id could not be loaded: {text}")
    if isinstance(exc, OSError) and exc.strerror:  # str() would add the file's path, a server path
        return Failure(type(exc).__name__, exc.strerror)
    return Failure(type(exc).__name__, text[:2000])


def server_paths(settings: Settings) -> list[str]:
    """The folders of this deployment a job's error must not show: its data dir and a file:// artifact root."""
    paths = [str(settings.data_dir)]
    if settings.artifact_root.startswith("file://"):
        paths.append(unquote(urlparse(settings.artifact_root).path))
    return paths


def redact(message: str, paths: list[str]) -> str:
    """``message`` with each of the server's own folders (``paths``: data dir, artifact root) replaced
    by a placeholder: a job's error is read by its owner, whose business those folders are not."""
    for path in sorted({p.rstrip("/") for p in paths if p and p.strip("/")}, key=len, reverse=True):
        message = message.replace(path, "<server>")
    return message
