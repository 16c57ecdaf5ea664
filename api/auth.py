"""DRF's IsAuthenticatedOrReadOnly with TokenAuthentication (``Token`` or ``Bearer``)."""

from __future__ import annotations

from sanic import Request

from api.errors import AuthenticationFailed, NotAuthenticated
from db import tokens

_SCHEMES = ("token", "bearer")
MAX_KEY_LENGTH = 256


def token_from_header(header: str | None) -> str | None:
    """The key of a well-formed ``Token <key>`` / ``Bearer <key>`` header, else None."""
    parts = header.split() if header else []
    if len(parts) == 2 and parts[0].lower() in _SCHEMES and len(parts[1]) <= MAX_KEY_LENGTH:
        return parts[1]
    return None


async def authenticate_write(request: Request) -> None:
    """Raise 401 unless the request carries a valid, unrevoked token."""
    header = request.headers.get("authorization")
    key = token_from_header(header)
    if key is None:
        parts = header.split() if header else []
        if not parts or parts[0].lower() not in _SCHEMES:
            # DRF ignores other schemes (Basic, ...): the write is then unauthenticated.
            raise NotAuthenticated()
        raise AuthenticationFailed()  # our scheme, but no single key of a sane length
    if not await tokens.authenticate(key):
        raise AuthenticationFailed()
