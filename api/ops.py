"""Operations routes: liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from api import schemas as oas
from api.errors import allow_header
from api.openapi import describe
from api.responses import json
from db import health as db_health


@describe(
    "healthz",
    "Liveness",
    description="200 while the process serves.",
    tag="operations",
    responses={
        "200": oas.response("The process serves.", oas.ref("schemas", "Status")),
        **oas.errors(),
    },
)
async def healthz(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


@describe(
    "readyz",
    "Readiness",
    description="200 only when the database answers, else 503.",
    tag="operations",
    responses={
        "200": oas.response("The database answers.", oas.ref("schemas", "Status")),
        "503": oas.response("The database does not answer.", oas.ref("schemas", "Status")),
        **oas.errors(),
    },
)
async def readyz(request: Request) -> HTTPResponse:
    # Can it take a write: the file still there, writable, space left, not corrupt
    # (db.health; checked at most once a second).
    fault = db_health.problem()
    if fault is not None:
        body = {"status": "unavailable", "database": fault.reason, "detail": str(fault)}
        return json(body, status=503)
    try:
        await asyncio.wait_for(request.app.ctx.db.ping(), timeout=2.0)
    except Exception as exc:  # any failure to answer means "not ready", never a 500
        db_health.unreachable(exc)
        return json({"status": "unavailable", "database": type(exc).__name__}, status=503)
    db_health.reachable()
    return json({"status": "ok", "database": "ok"})


@describe(
    "metrics",
    "Prometheus metrics",
    tag="operations",
    responses={
        "200": oas.response(
            "Prometheus text exposition format: requests by route template, method and "
            "status, and a latency histogram, summed over all workers.",
            {"type": "string"},
            media="text/plain",
        ),
        **oas.errors(),
    },
)
async def metrics(request: Request) -> HTTPResponse:
    # Reading every worker's metrics file is file I/O: keep it off the event loop.
    body, content_type = await asyncio.to_thread(request.app.ctx.metrics.exposition)
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


def share_faults(app: Any) -> None:
    """One integer for the instance's workers (``db.health.share``), made by the main
    process before they start (Sanic's ``shared_ctx``); a test app run without a main
    process keeps its faults to itself."""

    @app.main_process_start
    async def _make(app: Any) -> None:
        app.shared_ctx.db_stopped = multiprocessing.get_context("spawn").RawValue("i", 0)

    @app.before_server_start
    async def _share(app: Any) -> None:
        db_health.share(getattr(app.shared_ctx, "db_stopped", None))


def register(app: Any) -> None:
    share_faults(app)
    bp = Blueprint("ops")
    bp.add_route(healthz, "/healthz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(readyz, "/readyz", methods=["GET", "HEAD"], strict_slashes=False)
    bp.add_route(metrics, "/metrics", methods=["GET", "HEAD"], strict_slashes=False)
    app.blueprint(bp)
