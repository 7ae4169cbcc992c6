"""Data access for API keys: stored as sha256 hashes, found by hash, revoked by name.

Like every data-access function, these take a ``Session`` and never commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from jobs.store.models import ApiKey, utcnow


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(session: Session, name: str, owner: str, secret: str) -> ApiKey:
    key = ApiKey(name=name, owner=owner, key_hash=hash_key(secret), created_at=utcnow())
    session.add(key)
    session.flush()
    return key


def find_api_key(session: Session, secret: str) -> Row[tuple[str, str, datetime | None]] | None:
    """``(name, owner, revoked_at)`` of the key, read as plain columns: it runs on every request."""
    return find_api_key_by_hash(session, hash_key(secret))


def find_api_key_by_hash(session: Session, key_hash: str) -> Row[tuple[str, str, datetime | None]] | None:
    """The same, by the key's sha256 (what a dashboard session holds instead of the key)."""
    query = select(ApiKey.name, ApiKey.owner, ApiKey.revoked_at).where(ApiKey.key_hash == key_hash)
    return session.execute(query).first()


def valid_key_hashes(session: Session, key_hashes: Iterable[str]) -> set[str]:
    """Those of ``key_hashes`` that belong to a stored key that is not revoked."""
    query = select(ApiKey.key_hash).where(ApiKey.key_hash.in_(list(key_hashes)), ApiKey.revoked_at.is_(None))
    return set(session.scalars(query))


def find_api_key_by_name(session: Session, name: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.name == name))


def revoke_api_key(session: Session, name: str) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key
