"""DRF's IsAuthenticatedOrReadOnly with TokenAuthentication (``Token`` or ``Bearer``).

A write's token is checked by the write's own statement (``db.tokens.ACTIVE_TOKEN``), so
an authenticated write costs one statement, not two. DRF answers 401 before it looks at
the body, so when the body is refused (400, 415) the token is looked up first: a client
without a valid token gets 401 whatever it sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sanic import Request

from api.errors import APIError, AuthenticationFailed, BodyOutOfMemory, NotAuthenticated
from db import health as db_health
from db import tokens

_SCHEMES = ("token", "bearer")
MAX_KEY_LENGTH = 256
T = TypeVar("T")


def token_from_header(header: str | None) -> str | None:
    """The key of a well-formed ``Token <key>`` / ``Bearer <key>`` header, else None."""
    parts = header.split() if header else []
    if len(parts) == 2 and parts[0].lower() in _SCHEMES and len(parts[1]) <= MAX_KEY_LENGTH:
        return parts[1]
    return None


def write_key(request: Request) -> str:
    """The key a write presents; 401 when it presents none (or no single sane one)."""
    header = request.headers.get("authorization")
    key = token_from_header(header)
    if key is None:
        parts = header.split() if header else []
        if not parts or parts[0].lower() not in _SCHEMES:
            # DRF ignores other schemes (Basic, ...): the write is then unauthenticated.
            raise NotAuthenticated()
        raise AuthenticationFailed()  # our scheme, but no single key of a sane length
    return key


async def write_input(request: Request, parse: Callable[[], T]) -> tuple[str, T]:
    """The digest of the write's token and its parsed input, in DRF's order of errors.

    The token is not looked up here: the caller hands the digest to the write, which
    checks it in its own statement. Only a refused input costs a lookup, so that an
    invalid token still gets 401 rather than the input's 400.
    """
    fault = db_health.stopped()
    if fault is not None:
        # A corrupt page, an I/O error or the file gone stopped writes (in this worker or
        # another of the instance): 503 before anything is read or written.
        raise fault
    key = write_key(request)
    try:
        value = parse()
    except MemoryError:
        raise BodyOutOfMemory() from None  # nothing was sent to the database
    except APIError:
        if not await request.app.ctx.db.token_is_active(key):
            raise AuthenticationFailed() from None
        raise
    return tokens.hash_key(key), value
