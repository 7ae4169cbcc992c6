"""The artifact store's outbox: files that must go are written down first, removed after, retried until gone.

Deleting a job, cancelling one (its resume state) or ending one leaves files in the store
that nothing will read again. The row that says so (:class:`StoreRemoval`) is written in the
transaction that made them obsolete, so a store that fails (down, read-only, a network
error) or a process that dies right after the commit loses nothing: :func:`retry_due`, run
by every worker's reaper, tries again with a growing delay (:func:`backoff_s`) until the
store no longer holds the prefix, and only then deletes the row. The caller usually tries
at once (:func:`remove_now`) so that in the common case the files go with the request.

Removing a prefix twice is harmless, so two reapers racing, or a retry of a removal that
did succeed before its row was deleted, cost a listing and nothing else. On PostgreSQL the
rows being worked on are locked (``FOR UPDATE SKIP LOCKED``): reapers share the backlog.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs.artifacts import ArtifactStore, StorageError
from jobs.store.models import StoreRemoval, utcnow

log = logging.getLogger(__name__)

#: The longest wait between two tries of one removal, however often it failed.
MAX_BACKOFF_S = 3600.0
#: Removals tried per pass: a store that fails for all of them keeps one pass short.
BATCH = 100


@dataclass(frozen=True)
class RemovalPass:
    """What one pass did: prefixes now gone, and prefixes that failed again (retried later)."""

    removed: int = 0
    failed: int = 0


def backoff_s(attempts: int, first_s: float) -> float:
    """Delay before try ``attempts + 1``: ``first_s``, doubling with each failure, at most an hour."""
    return min(first_s * 2 ** max(0, attempts - 1), MAX_BACKOFF_S)


def schedule(session: Session, job_id: uuid.UUID, prefixes: Iterable[str], reason: str) -> list[StoreRemoval]:
    """Write down that ``prefixes`` (keys from :mod:`jobs.artifacts`) must go; the caller commits.

    Due at once: the first try is the caller's (:func:`remove_now`) or the next reaper pass.
    """
    now = utcnow()
    rows = [
        StoreRemoval(job_id=job_id, prefix=prefix, reason=reason, created_at=now, attempts=0, next_attempt_at=now)
        for prefix in prefixes
    ]
    session.add_all(rows)
    session.flush()
    return rows


def pending(session: Session, job_ids: Sequence[uuid.UUID] | None = None) -> list[StoreRemoval]:
    """The removals still to do (of ``job_ids`` only, when given), oldest first."""
    query = select(StoreRemoval).order_by(StoreRemoval.id)
    if job_ids is not None:
        query = query.where(StoreRemoval.job_id.in_(list(job_ids)))
    return list(session.scalars(query))


def _remove(store: ArtifactStore, prefix: str) -> None:
    store.delete_prefix(prefix)
    if store.holds(prefix):  # a store that reports success and keeps files is a failure too
        raise StorageError("the store still holds files under the prefix after removing it")


def _work_through(session: Session, store: ArtifactStore, rows: list[StoreRemoval], first_s: float) -> RemovalPass:
    """Try each row's removal; delete the rows that succeeded, push the others back. Commits."""
    removed = failed = 0
    now = utcnow()
    for row in rows:
        try:
            _remove(store, row.prefix)
        except Exception as exc:  # every failure is retried: a removal has no other way to finish
            failed += 1
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=backoff_s(row.attempts, first_s))
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning(
                "could not remove %s (job %s, try %d); next try in %.0fs: %s",
                row.prefix, row.job_id, row.attempts, backoff_s(row.attempts, first_s), row.last_error,
            )  # fmt: skip
        else:
            removed += 1
            session.delete(row)
    session.commit()
    return RemovalPass(removed, failed)


def _locked(query):  # type: ignore[no-untyped-def]
    return query.order_by(StoreRemoval.id).limit(BATCH).with_for_update(skip_locked=True)


def remove_now(session: Session, store: ArtifactStore, rows: Sequence[StoreRemoval], first_s: float) -> RemovalPass:
    """The caller's first try of the removals it has just committed; what fails is left to the reaper."""
    if not rows:
        return RemovalPass()
    ids = [row.id for row in rows]
    mine = list(session.scalars(_locked(select(StoreRemoval).where(StoreRemoval.id.in_(ids)))))
    return _work_through(session, store, mine, first_s)


def retry_due(
    sessions: sessionmaker[Session], store: ArtifactStore, first_s: float, now: datetime | None = None
) -> RemovalPass:
    """One pass of the reaper: every removal whose time has come (at most :data:`BATCH`)."""
    with sessions() as session:
        due = select(StoreRemoval).where(StoreRemoval.next_attempt_at <= (now or utcnow()))
        return _work_through(session, store, list(session.scalars(_locked(due))), first_s)


def remove_or_defer(
    sessions: sessionmaker[Session], store: ArtifactStore, job_id: uuid.UUID, prefix: str, reason: str
) -> bool:
    """Remove ``prefix`` now; when the store fails, write it down for the reaper. True when it is gone now.

    For files made obsolete by a step that has already committed without an outbox row (a
    worker ending a job): the store is tried first, so the common case costs no database
    write. Raises only when neither the store nor the database can be reached.
    """
    try:
        _remove(store, prefix)
        return True
    except Exception as exc:
        log.warning("could not remove %s of job %s now (%s: %s); the reaper retries", prefix, job_id,
                    type(exc).__name__, exc)  # fmt: skip
    with sessions.begin() as session:
        schedule(session, job_id, [prefix], reason)
    return False
