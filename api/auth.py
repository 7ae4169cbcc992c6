"""Bearer API keys: who is calling, i.e. which owner's jobs they see.

Keys are stored as sha256 hashes (``api_keys``); a key is shown once, at creation
(``ppruning apikey create``). ``settings.api_keys`` adds bootstrap ``owner:secret``
pairs, held in memory as hashes too. No key, an unknown key or a revoked key is 401;
a job of another owner is 404 (the routes filter by owner), never 403, so ids leak nothing.
"""

from __future__ import annotations

import hmac
import secrets

from sqlalchemy.orm import Session

from api.errors import Unauthorized
from jobs.store import keys

KEY_PREFIX = "pp_"


def new_secret() -> str:
    """A fresh key: prefix (recognisable in logs and secret scanners) + 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def bootstrap_hashes(pairs: list[str]) -> dict[str, str]:
    """``["owner:secret", ...]`` -> ``{sha256(secret): owner}``; malformed entries are refused loudly."""
    out: dict[str, str] = {}
    for pair in pairs:
        owner, sep, secret = pair.partition(":")
        if not sep or not owner or not secret:
            raise ValueError("PPRUNING_API_KEYS entries must look like 'owner:secret'")
        out[keys.hash_key(secret)] = owner
    return out


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing 'Authorization: Bearer <key>' header")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return secret.strip()


def revocable_key_hash(authorization: str | None, bootstrap: dict[str, str]) -> str | None:
    """The sha256 a stored key is found by, for re-checking it later (a live stream);
    None for a bootstrap key, which lives in the settings and cannot be revoked."""
    return revocable_digest(keys.hash_key(bearer_secret(authorization)), bootstrap)


def revocable_digest(digest: str, bootstrap: dict[str, str]) -> str | None:
    """``digest`` itself, or None when it is a bootstrap key's."""
    return None if any(hmac.compare_digest(known, digest) for known in bootstrap) else digest


def authenticate(session: Session, authorization: str | None, bootstrap: dict[str, str]) -> str:
    """The owner the key belongs to, or :class:`Unauthorized`."""
    return owner_of_key_hash(session, keys.hash_key(bearer_secret(authorization)), bootstrap)


def owner_of_key_hash(session: Session, digest: str, bootstrap: dict[str, str]) -> str:
    """The owner of the key whose sha256 is ``digest``, or :class:`Unauthorized`: the one resolution
    behind a bearer key and a dashboard session (which holds the digest, never the key)."""
    for known, owner in bootstrap.items():
        if hmac.compare_digest(known, digest):
            return owner
    key = keys.find_api_key_by_hash(session, digest)
    if key is None:
        raise Unauthorized("unknown API key")
    if key.revoked_at is not None:
        raise Unauthorized(f"API key {key.name!r} was revoked")
    return key.owner
