"""Per-request plumbing: the X-Request-ID header on every response."""

from __future__ import annotations

from typing import Any

from sanic import Request
from sanic.response import BaseHTTPResponse


async def request_id_header(request: Request, response: BaseHTTPResponse) -> None:
    # request.id echoes the client's X-Request-ID, else Sanic makes a UUID.
    response.headers["X-Request-ID"] = str(request.id)


def register(app: Any) -> None:
    app.register_middleware(request_id_header, "response")
