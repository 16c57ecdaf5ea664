"""Operations routes: liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw

from db import sql


async def healthz(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


async def readyz(request: Request) -> HTTPResponse:
    try:
        await asyncio.wait_for(sql.ping(), timeout=2.0)
    except Exception as exc:  # any failure to answer means "not ready", never a 500
        return json({"status": "unavailable", "database": type(exc).__name__}, status=503)
    return json({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> HTTPResponse:
    body, content_type = request.app.ctx.metrics.exposition()
    return raw(body, content_type=content_type)


def register(app: Any) -> None:
    bp = Blueprint("ops")
    bp.add_route(healthz, "/healthz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(readyz, "/readyz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(metrics, "/metrics", methods=["GET", "HEAD"], strict_slashes=False)
    app.blueprint(bp)
