"""The test databases: an SQLite file per test always; PostgreSQL too when TEST_DATABASE_URL
is set (TEST_REDIS_URL likewise opts in to Redis).

Each test session works in a PostgreSQL schema of its own inside TEST_DATABASE_URL's
database, built once through the migrations and dropped at the end; each test starts from
``TRUNCATE … RESTART IDENTITY``. A schema per session lets several sessions (a developer's
and CI's, say) share one database without truncating each other's rows.

Set-up and clean-up go through one asyncpg connection on an event loop in a thread of its
own: sync fixtures can use it, and it never meets pytest-asyncio's per-test loops.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from db import MIGRATION_LOCK_KEY, build_config, migrate

TEST_DATABASE_URL: Final = os.environ.get("TEST_DATABASE_URL", "").strip() or None
TEST_REDIS_URL: Final = os.environ.get("TEST_REDIS_URL", "").strip() or None
BACKENDS: Final = ("sqlite", "postgres") if TEST_DATABASE_URL else ("sqlite",)
# Tables the tests write to; the counter row is reset beside them (TRUNCATE fires no
# DELETE trigger). tortoise_migrations is left alone: the schema stays migrated.
TABLES: Final = ("book", "api_token", "idempotency_key")
SCHEMA_PREFIX: Final = "bookshelf_test_"

T = TypeVar("T")


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters added or replaced."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Loop:
    """An event loop running in a daemon thread; ``run`` blocks on one coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def _connect_options(url: str, schema: str | None) -> dict[str, Any]:
    credentials = dict(build_config(url)["connections"]["default"]["credentials"])
    for key in ("minsize", "maxsize", "schema", "application_name", "connect"):
        credentials.pop(key, None)
    if schema:
        credentials["server_settings"] = {"search_path": schema}
    return credentials


class PostgresSchema:
    """A migrated schema for one test session (or one test that wants a fresh one)."""

    def __init__(self, base_url: str, *, migrated: bool = True) -> None:
        self.name = f"{SCHEMA_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        self.url = with_query(base_url, schema=self.name)
        self._loop = _Loop()
        self._conn: asyncpg.Connection = self._loop.run(self._open(base_url, migrated))

    async def _open(self, base_url: str, migrated: bool) -> asyncpg.Connection:
        conn = await asyncpg.connect(**_connect_options(base_url, None))
        # pg_trgm belongs in public, made once under the migrations' own lock: created
        # inside a test schema it would be dropped with it, under other sessions' indexes.
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(f'CREATE SCHEMA "{self.name}"')
        await conn.execute(f"SET search_path TO \"{self.name}\"; SET lock_timeout = '20s'")
        if migrated:
            await migrate(self.url)
        return conn

    def execute(self, statement: str, *args: Any) -> str:
        return self._loop.run(self._conn.execute(statement, *args))

    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return self._loop.run(self._conn.fetch(query, *args))

    def reset(self) -> None:
        """Empty every table the tests write to, ids restarting at 1."""
        self.execute(
            f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY; UPDATE book_count SET n = 0;"
            " DELETE FROM book_author_count"
        )

    def drop(self) -> None:
        try:
            self.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
            self._loop.run(self._conn.close())
        finally:
            self._loop.close()
