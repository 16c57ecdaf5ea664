"""API tokens: create (the key is shown once), list, revoke, and the per-write lookup.

Only the SHA-256 digest of a key is stored. A key is 40 random bytes from ``secrets``
(URL-safe text), so a fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from tortoise.exceptions import IntegrityError

from db import sql
from db.errors import DatabaseError, NotFoundError
from db.models import ApiToken

# last_used_at is refreshed at most this often, so a busy client costs one indexed
# lookup per write and an UPDATE only once a minute.
LAST_USED_RESOLUTION: Final = dt.timedelta(seconds=60)


MAX_NAME_LENGTH: Final = 100  # ApiToken.name's column


class TokenExistsError(DatabaseError):
    """A token with that name exists already."""


class TokenNameError(DatabaseError, ValueError):
    """A name no token can have; the message says what is allowed."""


def check_name(name: str) -> str:
    """``name`` if a token may have it: 1-100 printable characters, not only blanks."""
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise TokenNameError(
            f"bad token name {shown!r}: use 1 to {MAX_NAME_LENGTH} printable characters, "
            "not only spaces"
        )
    return name


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def create_token(*, name: str) -> str:
    """Store a new token and return its key, which is never stored nor shown again."""
    check_name(name)
    key = secrets.token_urlsafe(40)
    try:
        await ApiToken.create(name=name, key_hash=hash_key(key))
    except IntegrityError:
        raise TokenExistsError(name) from None
    return key


async def list_tokens() -> list[TokenInfo]:
    tokens = await ApiToken.all().order_by("created_at", "id")
    return [TokenInfo(t.name, t.created_at, t.last_used_at, t.revoked_at) for t in tokens]


async def revoke_token(*, name: str) -> None:
    updated = await ApiToken.filter(name=name, revoked_at=None).update(revoked_at=_now())
    if not updated:
        if not await ApiToken.exists(name=name):
            raise NotFoundError(name)


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def authenticate(key: str) -> bool:
    """True when ``key`` belongs to a token that is not revoked. No cache: a revocation
    is seen by the very next request of every worker and instance."""
    digest = hash_key(key)
    rows = await sql.fetch(
        "SELECT id, last_used_at FROM api_token WHERE key_hash = ? AND revoked_at IS NULL",
        [digest],
    )
    if not rows:
        return False
    last_used = _as_datetime(rows[0]["last_used_at"])
    now = _now()
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        await ApiToken.filter(id=rows[0]["id"]).update(last_used_at=now)
    return True


async def is_active(key: str) -> bool:
    """True when ``key`` belongs to an unrevoked token (no last-use bookkeeping)."""
    rows = await sql.fetch(
        "SELECT 1 AS ok FROM api_token WHERE key_hash = ? AND revoked_at IS NULL",
        [hash_key(key)],
    )
    return bool(rows)
