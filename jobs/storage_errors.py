"""What went wrong with the artifact store, in two kinds, and the retry of the transient kind.

Every failure of the store reaches the code above it as a :class:`StorageError` whose message
names the object's key (``jobs/<id>/...``), never the store's root or a server path: it may end
up in a job's error, which its owner reads. Two subclasses say what to do about it:

- :class:`StorageUnavailable`, transient: a dropped or refused connection, a timeout, S3
  throttling or a 5xx, an I/O error of a network file system. :func:`retrying` tries such an
  operation again with exponential backoff, a few times, before it gives up.
- :class:`StorageRefused`: the store answered and said no: read-only, permission denied,
  out of space, access denied. Retrying at once will not help; whether to wait longer is
  the caller's call (a worker whose computation finished keeps its results and retries the
  upload for a while: :mod:`worker.uploads`).
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of a transient failure in :func:`retrying`, and the first delay (doubled each time).
RETRIES = 4
FIRST_DELAY_S = 0.5

_TRANSIENT_ERRNOS = {
    errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
    errno.ECONNABORTED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.ESTALE, errno.EPIPE,
}  # fmt: skip
_REFUSED_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}
#: S3 error codes that mean "try again" (others, like AccessDenied, mean "no").
_TRANSIENT_S3_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                       "InternalError", "ServiceUnavailable", "503", "500"}  # fmt: skip


class StorageError(Exception):
    """An object is missing, a key or URI does not belong to this store, or the store failed."""


class StorageUnavailable(StorageError):
    """The store could not be reached or was overloaded: worth trying again soon."""


class StorageRefused(StorageError):
    """The store refused the operation (read-only, no permission, full)."""


def _s3_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "") or None
    return None


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    code = _s3_code(exc)
    if code is not None:
        return code in _TRANSIENT_S3_CODES
    name = type(exc).__name__  # botocore and aiohttp connection errors, without importing either
    return name.endswith(("ConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
                          "ServerDisconnectedError", "EndpointConnectionError"))  # fmt: skip


def _reason(exc: BaseException) -> str:
    """What happened, without the path or URL the exception may carry."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    code = _s3_code(exc)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def classify(exc: BaseException, doing: str) -> StorageError:
    """``exc`` (raised by the file system or S3 client while ``doing``) as one of the two kinds."""
    if isinstance(exc, StorageError):
        return exc
    what = f"the artifact store failed {doing}: {_reason(exc)}"
    if _is_transient(exc):
        return StorageUnavailable(what)
    if isinstance(exc, OSError) and exc.errno in _REFUSED_ERRNOS or _s3_code(exc) in ("AccessDenied", "403"):
        return StorageRefused(what)
    return StorageError(what)


@contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Raise whatever the block raises (but a missing file) as a classified :class:`StorageError`."""
    try:
        yield
    except (StorageError, FileNotFoundError):
        raise
    except Exception as exc:
        raise classify(exc, doing) from exc


def retrying(operation: Callable[[], T], *, retries: int = RETRIES, first_delay_s: float = FIRST_DELAY_S) -> T:
    """``operation()``, tried again with backoff (and jitter) while it fails with :class:`StorageUnavailable`."""
    delay = first_delay_s
    for attempt in range(1, retries + 1):
        try:
            return operation()
        except StorageUnavailable as exc:
            if attempt == retries:
                raise
            log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt, retries, delay)
            time.sleep(delay * random.uniform(0.75, 1.25))
            delay *= 2
    raise AssertionError("unreachable")
