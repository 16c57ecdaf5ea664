"""Connection set-up: Tortoise configuration built from a database URL, migrations, teardown."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from tortoise import Tortoise, connections
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

__all__ = ["build_config", "close_db", "dialect", "init_db", "migrate", "sqlite_path"]

# Pragmas for concurrent use by several worker processes: WAL lets readers run beside
# the one writer; the busy timeout makes a writer wait for the lock instead of failing
# with "database is locked"; NORMAL sync is durable across process crashes in WAL mode.
SQLITE_PRAGMAS: Final = {
    "journal_mode": "WAL",
    "busy_timeout": 30000,
    "synchronous": "NORMAL",
    "cache_size": -16000,
    "temp_store": "MEMORY",
}
SQLITE_SCHEMES: Final = ("sqlite",)
POSTGRES_SCHEMES: Final = ("postgres", "postgresql", "asyncpg")


def sqlite_path(url: str) -> str | None:
    """The file path of an ``sqlite://`` URL, else None."""
    if not url.startswith("sqlite://"):
        return None
    return url[len("sqlite://") :].split("?", 1)[0]


def dialect(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    raise ValueError(f"unsupported scheme {scheme!r}")


def build_config(url: str, *, pool_min: int = 1, pool_max: int = 10) -> dict[str, Any]:
    if dialect(url) == "sqlite":
        path = sqlite_path(url) or ""
        extra = dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}
        connection: dict[str, Any] = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {"file_path": path, **SQLITE_PRAGMAS, **extra},
        }
    else:
        parts = urlsplit(url)
        credentials: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "user": parts.username or "postgres",
            "password": parts.password or "",
            "database": parts.path.lstrip("/") or "postgres",
            "minsize": pool_min,
            "maxsize": pool_max,
        }
        credentials.update(dict(parse_qsl(parts.query)))
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


@contextlib.contextmanager
def _sqlite_migration_lock(path: str) -> Any:
    # Several workers (or instances on one host) start at once: one of them migrates,
    # the others wait on the lock and then find nothing left to apply.
    lock_path = f"{path}.migrate-lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _postgres_migration_lock() -> AsyncIterator[None]:
    conn = connections.get("default")
    async with conn.acquire_connection() as raw:  # type: ignore[attr-defined]
        await raw.execute("SELECT pg_advisory_lock(727274)")
        try:
            yield
        finally:
            await raw.execute("SELECT pg_advisory_unlock(727274)")


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    if path in ("", ":memory:") or "mode=memory" in url:
        # Each worker (and each ASGI test request) would get its own empty database.
        raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
    Path(path).parent.mkdir(parents=True, exist_ok=True)


async def migrate(url: str, **pool: int) -> None:
    """Apply every pending migration; safe when several processes call it at once."""
    _ensure_sqlite_dir(url)
    config = build_config(url, **pool)
    if dialect(url) == "sqlite":
        with _sqlite_migration_lock(sqlite_path(url) or ""):
            await tortoise_migrate(config=config)
            await Tortoise.close_connections()
    else:
        await Tortoise.init(config=config)
        async with _postgres_migration_lock():
            await tortoise_migrate(config=config)
        await Tortoise.close_connections()


async def init_db(url: str, *, run_migrations: bool = True, **pool: int) -> None:
    if run_migrations:
        await migrate(url, **pool)
    else:
        _ensure_sqlite_dir(url)
    # Sanic runs listeners and requests in different tasks: the context must be global.
    await Tortoise.init(config=build_config(url, **pool), _enable_global_fallback=True)
    from db import sql

    sql.configure(dialect(url))


async def close_db() -> None:
    await Tortoise.close_connections()


def env_database_url() -> str:
    return os.environ.get("DATABASE_URL", "sqlite://./data/bookshelf.sqlite3")
