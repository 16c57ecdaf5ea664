"""The app factory: settings in, a wired Sanic app out. Nothing stateful at import."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

import orjson
from sanic import Sanic
from sanic_ext import Extend
from sanic_ext.extensions.http.extension import HTTPExtension
from sanic_ext.extensions.openapi.extension import OpenAPIExtension

from api import books, logs, memory, observability, openapi, ops, ratelimit, workers
from api.errors import APIErrorHandler, BodyOutOfMemory, OutOfMemory
from api.settings import Settings
from db import close_db, open_db

APP_NAME = "bookshelf"


async def freeze_startup_objects(app: Sanic) -> None:
    """Move every object alive once the worker serves into the collector's permanent
    generation.

    Requests leave reference cycles (tasks, futures, requests and their connections) that
    only the cycle collector frees, so it runs many times a second; every tenth of its
    runs promotes survivors, and every so often a full collection walked all ~68,000
    objects of Sanic, sanic-ext, Tortoise and the OpenAPI document: a 30-60 ms pause that
    every in-flight request waited out. With them frozen a full collection walks the few
    thousand objects made since: a detail read's p99 fell from 33-64 ms to 12-14 ms
    (issue 9). They are long-lived anyway; garbage is collected first, so none is kept.
    """
    gc.collect()
    gc.freeze()


def _room_for_request(request: Any) -> None:
    """Out of memory, the request is refused before anything is done for it (a worker
    whose orjson ran out would crash with every request it holds)."""
    if not memory.room(memory.REQUEST_ROOM):
        # Its body took the room (at least a megabyte of it): a smaller one may fit.
        raise BodyOutOfMemory() if len(request.body) >= 1 << 20 else OutOfMemory()


def create_app(
    settings: Settings | None = None,
    *,
    name: str = APP_NAME,
    freeze_gc: bool = False,
    capture_logs: bool = False,
) -> Sanic:
    """The app for ``settings`` (from the environment when None).

    ``capture_logs``: this process's root logger, warnings and uncaught exceptions go to
    the JSON log too (``api.logs.capture_process``), as in ``main.py serve``'s workers.

    ``freeze_gc``: once the server has started, freeze the objects of start-up out of the
    cycle collector's reach (``freeze_startup_objects``), as ``main.py serve`` does in each
    worker. Not for a process that builds many apps, such as the test suite.
    """
    settings = settings or Settings.from_env()
    if capture_logs:
        logs.capture_process(settings.log_level)
    app: Sanic = Sanic(
        name,
        ctx=SimpleNamespace(settings=settings),
        error_handler=APIErrorHandler(),
        request_class=observability.TimedRequest,
        dumps=orjson.dumps,
        log_config=logs.log_config(settings.log_level),
    )
    app.config.update(
        {
            "REQUEST_MAX_SIZE": settings.max_body_bytes,
            "ACCESS_LOG": settings.access_log,
            "FALLBACK_ERROR_FORMAT": "json",
            "REQUEST_TIMEOUT": settings.request_timeout,
            "RESPONSE_TIMEOUT": settings.response_timeout,
            "KEEP_ALIVE_TIMEOUT": settings.keep_alive_timeout,
            "REQUEST_ID_HEADER": "X-Request-ID",
            "GRACEFUL_SHUTDOWN_TIMEOUT": settings.graceful_shutdown_timeout,
            # 4xx exceptions are answered, not logged (the error handler logs 500s once).
            "NOISY_EXCEPTIONS": False,
        }
    )
    app.config.update(
        {
            # sanic-ext adds HEAD to GET routes that lack it (/docs); every route gets
            # our own OPTIONS (200, JSON, exact Allow: ops.add_options_routes), so
            # sanic-ext's automatic OPTIONS, which CORS requires, finds none to add.
            "HTTP_AUTO_HEAD": True,
            "HTTP_AUTO_OPTIONS": True,
            "CORS": bool(settings.cors_origins),
            "CORS_ORIGINS": ",".join(settings.cors_origins),
            # Preflight headers are added to our own OPTIONS answers.
            "CORS_AUTOMATIC_OPTIONS": True,
            "CORS_EXPOSE_HEADERS": (
                "ETag, Location, X-Request-ID, Retry-After, X-Count-Kind, Preference-Applied"
            ),
            "OAS_UI_DEFAULT": "swagger",
            "OAS_UI_REDOC": False,
            # sanic-ext's Swagger UI loads from a CDN: api/swagger_ui.py serves it locally.
            "OAS_UI_SWAGGER": False,
        }
    )
    # Only the extensions bookshelf uses. The built-in set adds dependency injection,
    # which answers a signal on every request (http.routing.after) that no route needs.
    Extend(app, extensions=[OpenAPIExtension, HTTPExtension], built_in_extensions=False)
    observability.register(app)
    if memory.limited():  # allocations can fail here: none is started without room
        memory.contain()
        app.register_middleware(_room_for_request, "request", priority=1000)
    ratelimit.register(app)
    books.register(app)
    openapi.register(app)
    ops.register(app)
    ops.add_options_routes(app)
    workers.register(app)

    @app.before_server_start
    async def _open_db(app: Sanic) -> None:
        app.ctx.db = await open_db(
            settings.database_url,
            run_migrations=settings.migrate_on_start,
            statement_timeout=settings.statement_timeout,
            synchronous=settings.sqlite_synchronous,
            connect_timeout=settings.db_connect_timeout,
            pool_min=settings.db_pool_min,
            pool_max=settings.db_pool_max,
        )

    @app.after_server_stop
    async def _close_db(app: Sanic) -> None:
        await close_db()

    if freeze_gc:
        app.after_server_start(freeze_startup_objects)

    return app
