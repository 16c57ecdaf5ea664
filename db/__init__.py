"""Connection set-up: Tortoise configuration built from a database URL, migrations, teardown."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connections
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

from db import health
from db.backend import Backend
from db.errors import DatabaseUnavailableError
from db.postgres import PostgresBackend
from db.sqlite import SqliteBackend

__all__ = [
    "Backend",
    "build_config",
    "check_url",
    "close_db",
    "migrate",
    "open_db",
    "sqlite_path",
]

# Pragmas for concurrent use by several worker processes: WAL lets readers run beside
# the one writer; the busy timeout makes a writer wait for the lock instead of failing
# with "database is locked"; NORMAL sync is durable across process crashes in WAL mode.
# An 8 MiB page cache per worker (SQLite's default is 2 MiB): at 16 MiB a worker serving a
# million rows peaked at 78-85 MB RSS, over the 80 MB a worker may use; pages it misses
# come from the OS page cache, read in aiosqlite's thread.
SQLITE_PRAGMAS: Final = {
    "journal_mode": "WAL",
    "busy_timeout": 30000,
    "synchronous": "NORMAL",
    "cache_size": -8000,
    "temp_store": "MEMORY",
}
SQLITE_SCHEMES: Final = ("sqlite",)
POSTGRES_SCHEMES: Final = ("postgres", "postgresql", "asyncpg")
# One key per database: every instance's migrations (whatever its schema) queue on it,
# which also serialises CREATE EXTENSION, a database-wide catalog change.
MIGRATION_LOCK_KEY: Final = 727274
# Credentials Tortoise consumes itself; the rest are asyncpg connect()/create_pool() options.
_TORTOISE_ONLY: Final = ("minsize", "maxsize", "schema", "application_name", "server_settings")


def sqlite_path(url: str) -> str | None:
    """The file path of an ``sqlite://`` URL, else None."""
    if not url.startswith("sqlite://"):
        return None
    return url[len("sqlite://") :].split("?", 1)[0]


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


def build_config(
    url: str, *, pool_min: int = 1, pool_max: int = 10, statement_timeout: float | None = None
) -> dict[str, Any]:
    """Tortoise's configuration for ``url``; ``statement_timeout`` (seconds) is set on
    every PostgreSQL connection (SQLite's is kept by its backend)."""
    if _backend_class(url) is SqliteBackend:
        path = sqlite_path(url) or ""
        extra = dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}
        connection: dict[str, Any] = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {"file_path": path, **SQLITE_PRAGMAS, **extra},
        }
    else:
        parts = urlsplit(url)
        credentials: dict[str, Any] = {
            "host": unquote(parts.hostname or "127.0.0.1"),
            "port": parts.port or 5432,
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or ""),
            "database": unquote(parts.path.lstrip("/")) or "postgres",
            "minsize": pool_min,
            "maxsize": pool_max,
        }
        # Query parameters pass through: ?schema=NAME (Tortoise sets the search_path),
        # ?ssl=require, ?host=/run/postgresql, ... libpq's sslmode is asyncpg's ssl.
        query = dict(parse_qsl(parts.query))
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        credentials.update(query)
        if statement_timeout is not None:
            milliseconds = max(1, round(statement_timeout * 1000))
            credentials["server_settings"] = {"statement_timeout": str(milliseconds)}
        connection = {"engine": "tortoise.backends.asyncpg", "credentials": credentials}
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


@contextlib.asynccontextmanager
async def _sqlite_migration_lock(path: str) -> AsyncIterator[None]:
    # Several processes start at once: one of them migrates, the others wait on the lock
    # (in a thread, so their event loops keep running) and then find nothing to apply.
    lock_path = f"{path}.migrate-lock"
    with open(lock_path, "a+") as fh:
        await asyncio.to_thread(fcntl.flock, fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _postgres_migration_lock(credentials: dict[str, Any]) -> AsyncIterator[None]:
    """Hold a session-level advisory lock on a connection of its own for the whole run.

    Not on a connection of Tortoise's pool: Tortoise's migrate() re-initialises Tortoise,
    which closes that pool, so the lock would be dropped mid-migration (and the pool's
    close would wait 10 s for the borrowed connection). A lock held by a crashed process
    is freed by PostgreSQL when its connection ends.
    """
    import asyncpg

    options = {k: v for k, v in credentials.items() if k not in _TORTOISE_ONLY}
    conn = await asyncpg.connect(**options)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    if path in ("", ":memory:") or "mode=memory" in url:
        # Each worker (and each ASGI test request) would get its own empty database.
        raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
    # Before Tortoise opens it: a file it cannot open would leave its lock held for ever.
    health.preflight_sqlite(path)


async def migrate(url: str) -> None:
    """Apply every pending migration; safe when several processes call it at once.

    Each caller takes a lock (a file lock beside an SQLite file, an advisory lock on
    PostgreSQL), then applies what is still pending: the first one migrates, the others
    wait and find nothing left to do.
    """
    _ensure_sqlite_dir(url)
    # A small pool: migrations run one statement at a time.
    config = build_config(url, pool_min=1, pool_max=2)
    if _backend_class(url) is SqliteBackend:
        lock = _sqlite_migration_lock(sqlite_path(url) or "")
    else:
        lock = _postgres_migration_lock(config["connections"]["default"]["credentials"])
    async with lock:
        try:
            await tortoise_migrate(config=config)
        finally:
            await Tortoise.close_connections()


async def open_db(
    url: str,
    *,
    run_migrations: bool = True,
    statement_timeout: float | None = None,
    **pool: int,
) -> Backend:
    """Open the database of ``url`` (migrated first unless told not to) and return its
    backend, through which every statement goes; a statement that runs longer than
    ``statement_timeout`` seconds is stopped (StatementTimeoutError)."""
    if run_migrations:
        await migrate(url)
    else:
        _ensure_sqlite_dir(url)
    # Tortoise caches each model's INSERT/UPDATE/DELETE text per process, keyed by the
    # connection's name ("default") but not its dialect: a process that opens SQLite, then
    # PostgreSQL (a test session over both backends) would send "?" placeholders to asyncpg.
    EXECUTOR_CACHE.clear()
    # Sanic runs listeners and requests in different tasks: the context must be global.
    config = build_config(url, statement_timeout=statement_timeout, **pool)
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
        task = asyncio.ensure_future(_close_connections(backend))
        _closing["task"] = task
    try:
        await asyncio.shield(task)
    finally:
        if task.done() and _closing.get("task") is task:
            del _closing["task"]
