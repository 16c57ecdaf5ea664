"""Operations routes: liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from api.errors import allow_header
from api.responses import json
from db import health as db_health
from db import sql


async def healthz(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


async def readyz(request: Request) -> HTTPResponse:
    # Can it take a write: the file still there, writable, space left, not corrupt
    # (db.health; checked at most once a second).
    fault = db_health.problem()
    if fault is not None:
        body = {"status": "unavailable", "database": fault.reason, "detail": str(fault)}
        return json(body, status=503)
    try:
        await asyncio.wait_for(sql.ping(), timeout=2.0)
    except Exception as exc:  # any failure to answer means "not ready", never a 500
        db_health.unreachable(exc)
        return json({"status": "unavailable", "database": type(exc).__name__}, status=503)
    db_health.reachable()
    return json({"status": "ok", "database": "ok"})


async def metrics(request: Request) -> HTTPResponse:
    metrics = request.app.ctx.metrics
    metrics.flush()  # this worker's latest requests, on the loop's own thread
    # Reading every worker's metrics file is file I/O: keep it off the event loop.
    body, content_type = await asyncio.to_thread(metrics.exposition)
    return raw(body, content_type=content_type)


def add_options_routes(app: Any) -> None:
    """OPTIONS on every route that has no handler of its own: 200, JSON, and an ``Allow``
    listing exactly that route's methods (sanic-ext's automatic one answers 204).

    Call it once every other route is registered.
    """
    methods_by_path: dict[str, set[str]] = {}
    for route in app.router.routes:
        methods_by_path.setdefault(route.path, set()).update(route.methods)
    for index, (path, methods) in enumerate(sorted(methods_by_path.items())):
        if "OPTIONS" in methods:
            continue
        allow = allow_header(methods | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set()))

        async def options(request: Request, _allow: str = allow, **_: Any) -> HTTPResponse:
            return json({}, headers={"Allow": _allow})

        app.add_route(options, f"/{path}", methods=["OPTIONS"], name=f"options_{index}")


def register(app: Any) -> None:
    bp = Blueprint("ops")
    bp.add_route(healthz, "/healthz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(readyz, "/readyz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(metrics, "/metrics", methods=["GET", "HEAD"], strict_slashes=False)
    app.blueprint(bp)
