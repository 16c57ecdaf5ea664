"""Connection set-up: Tortoise configuration built from a database URL, migrations, teardown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final
from urllib.parse import urlsplit

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connections
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

from db import health
from db.backend import DEFAULT_CONNECT_TIMEOUT, Backend
from db.errors import DatabaseUnavailableError
from db.postgres import MIGRATION_LOCK_KEY, PostgresBackend
from db.sqlite import SqliteBackend, sqlite_path

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "MIGRATION_LOCK_KEY",
    "Backend",
    "build_config",
    "check_url",
    "close_db",
    "migrate",
    "open_db",
    "prepare",
    "sqlite_path",
]

SQLITE_SCHEMES: Final = ("sqlite",)
POSTGRES_SCHEMES: Final = ("postgres", "postgresql", "asyncpg")


def _backend_class(url: str) -> type[Backend]:
    scheme = urlsplit(url).scheme
    if scheme in SQLITE_SCHEMES:
        return SqliteBackend
    if scheme in POSTGRES_SCHEMES:
        return PostgresBackend
    raise ValueError(f"unsupported scheme {scheme!r}")


def check_url(url: str) -> None:
    """ValueError, saying why, when no backend serves ``url``."""
    _backend_class(url)


def prepare(url: str, check: str = "quick") -> None:
    """Raise, with one line saying what to do, when ``url``'s database cannot be opened
    as it is, or its pages fail ``check`` (``db.preflight``); before any process opens
    it."""
    _backend_class(url).prepare(url, check)


def build_config(
    url: str,
    *,
    pool_min: int = 1,
    pool_max: int = 10,
    statement_timeout: float | None = None,
    synchronous: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> dict[str, Any]:
    """Tortoise's configuration for ``url`` (its connection made by the URL's backend;
    ``synchronous``: SQLite's pragma, None for the durable default)."""
    connection = _backend_class(url).connection(
        url,
        pool_min=pool_min,
        pool_max=pool_max,
        statement_timeout=statement_timeout,
        synchronous=synchronous,
        connect_timeout=connect_timeout,
    )
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": ["db.models"],
                "default_connection": "default",
                "migrations": "db.migrations",
            }
        },
    }


async def migrate(url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Apply every pending migration; safe when several processes call it at once.

    Each caller takes a lock (a file lock beside an SQLite file, an advisory lock on
    PostgreSQL), then applies what is still pending: the first one migrates, the others
    wait and find nothing left to do. A connection not opened within ``connect_timeout``
    seconds: ConnectTimeoutError.
    """
    kind = _backend_class(url)
    kind.prepare(url)
    # A small pool: migrations run one statement at a time.
    config = build_config(url, pool_min=1, pool_max=2, connect_timeout=connect_timeout)
    async with kind.migration_lock(url, config["connections"]["default"]):
        try:
            await tortoise_migrate(config=config)
        finally:
            await Tortoise.close_connections()


async def open_db(
    url: str,
    *,
    run_migrations: bool = True,
    statement_timeout: float | None = None,
    synchronous: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **pool: int,
) -> Backend:
    """Open the database of ``url`` (migrated first unless told not to) and return its
    backend, through which every statement goes; a statement that runs longer than
    ``statement_timeout`` seconds is stopped (StatementTimeoutError), a connection not
    opened within ``connect_timeout`` seconds is ConnectTimeoutError; ``synchronous``:
    SQLite's pragma (SQLITE_SYNCHRONOUS), None for FULL."""
    if run_migrations:
        await migrate(url, connect_timeout=connect_timeout)
    else:
        _backend_class(url).prepare(url)
    # Tortoise caches each model's INSERT/UPDATE/DELETE text per process, keyed by the
    # connection's name ("default") but not its dialect: a process that opens SQLite, then
    # PostgreSQL (a test session over both backends) would send "?" placeholders to asyncpg.
    EXECUTOR_CACHE.clear()
    # Sanic runs listeners and requests in different tasks: the context must be global.
    config = build_config(
        url,
        statement_timeout=statement_timeout,
        synchronous=synchronous,
        connect_timeout=connect_timeout,
        **pool,
    )
    await Tortoise.init(config=config, _enable_global_fallback=True)
    backend = _backend_class(url)(get_connections())
    backend.statement_timeout = statement_timeout
    _open["backend"] = backend
    # Open the connection (the pool) now, in the start-up listener, rather than in the
    # first request (see the backends' fetch on why an opening must not be cancelled). A
    # database that is down does not stop the start: /readyz answers 503 until it is back,
    # and the first statement that finds it up opens the connection.
    with contextlib.suppress(DatabaseUnavailableError):
        await backend.ping()
    health.watch(url)
    return backend


_closing: dict[str, asyncio.Future[None]] = {}


_open: dict[str, Backend] = {}  # the backend of the database this process has open


async def _close_connections(backend: Backend | None) -> None:
    try:
        if backend is not None:
            await backend.close()
    finally:
        await Tortoise.close_connections()


async def close_db() -> None:
    """Close the connections; concurrent callers share one close.

    Sanic can run a worker's shutdown listeners twice when two signals arrive together;
    two overlapping closes of one aiosqlite connection left its thread answering a loop
    that had already been closed.
    """
    task = _closing.get("task")
    if task is None:
        backend = _open.pop("backend", None)
        if backend is not None:
            backend.forget_connections()
        health.watch(None)  # its descriptor of the file closed too
        task = asyncio.ensure_future(_close_connections(backend))
        _closing["task"] = task
    try:
        await asyncio.shield(task)
    finally:
        if task.done() and _closing.get("task") is task:
            del _closing["task"]
