"""DRF's IsAuthenticatedOrReadOnly with TokenAuthentication (``Token`` or ``Bearer``)."""

from __future__ import annotations

from sanic import Request

from api.errors import AuthenticationFailed, NotAuthenticated
from db import tokens

_SCHEMES = ("token", "bearer")


async def authenticate_write(request: Request) -> None:
    """Raise 401 unless the request carries a valid, unrevoked token."""
    header = request.headers.get("authorization")
    if not header:
        raise NotAuthenticated()
    parts = header.split()
    if not parts or parts[0].lower() not in _SCHEMES:
        # DRF ignores other schemes (Basic, ...): the write is then unauthenticated.
        raise NotAuthenticated()
    if len(parts) != 2 or len(parts[1]) > 256:
        raise AuthenticationFailed()
    if not await tokens.authenticate(parts[1]):
        raise AuthenticationFailed()
