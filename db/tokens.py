"""API tokens: create (the key is shown once), list, revoke; what a write's statement checks.

The per-request look-ups (``token_is_active``, ``touch_token``) are the backend's
(``db.backend``).

Only the SHA-256 digest of a key is stored. A key is 40 random bytes from ``secrets``
(URL-safe text), so a fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from tortoise.exceptions import IntegrityError

from db.errors import DatabaseError, NotFoundError
from db.models import ApiToken

# last_used_at is refreshed at most this often (by each worker process), so a busy
# client's writes cost no statement of their own for it but one UPDATE a minute.
LAST_USED_RESOLUTION: Final = dt.timedelta(seconds=60)
# A write checks its token inside its own statement: ``… WHERE <row condition> AND
# {ACTIVE_TOKEN}`` with the key's digest as the last parameter. The write and the check
# are then one statement (one round trip), and a revoked token writes nothing, from the
# very next request of every worker and instance.
ACTIVE_TOKEN: Final = "EXISTS (SELECT 1 FROM api_token WHERE key_hash = ? AND revoked_at IS NULL)"


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


@functools.lru_cache(maxsize=1024)
def hash_key(key: str) -> str:
    """The stored form of a key. Remembered for the last 1,024 keys: every write hashes
    its key, and a client sends the same one request after request."""
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
