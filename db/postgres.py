"""PostgreSQL: statements on Tortoise's asyncpg pool, books' JSON made in Python.

Statements are written once with ``?`` placeholders (``db.query``, ``db.backend``);
asyncpg wants ``$1``-style ones: the text is rewritten once per distinct statement and
cached. A search is ``ILIKE`` over the ``pg_trgm`` indexes (migration 0002). A
statement past the statement time limit is stopped by the server: ``statement_timeout``
is set on every connection of the pool (``db.build_config``); an exact count runs on a
connection of the pool like any statement, so it holds up no other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg
from tortoise.exceptions import DBConnectionError

from db import query, schema
from db.backend import Backend, Progress, Row, RowBatches, is_open
from db.errors import DatabaseUnavailableError, StatementTimeoutError
from db.query import BookJSON, Page, PageQuery

# The connection failed, not the statement: the server unreachable, restarting or failing
# over, an administrator ending the session (asyncpg then reports AdminShutdownError, or an
# InternalClientError/InterfaceError from the broken connection), too many connections, a
# statement cancelled. The client gets 503 with Retry-After, not an opaque 500; the pool
# replaces the connection.
_UNAVAILABLE: Final = (
    DBConnectionError,
    ConnectionError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.InterfaceError,
)
# One key per database: every instance's migrations (whatever its schema) queue on it,
# which also serialises CREATE EXTENSION, a database-wide catalog change.
MIGRATION_LOCK_KEY: Final = 727274
# Credentials Tortoise consumes itself; the rest are asyncpg connect()/create_pool() options.
_TORTOISE_ONLY: Final = ("minsize", "maxsize", "schema", "application_name", "server_settings")
_COLUMNS: Final = ["id", "title", "author", "published_date", "price_cents", "version"]


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}")
        out.append(part)
    return "".join(out)


class PostgresBackend(Backend):
    name = "postgres"
    like = "ILIKE"
    values_row = "(?, ?, ?::date, ?::integer, 1)"

    @classmethod
    def connection(
        cls, url: str, *, pool_min: int, pool_max: int, statement_timeout: float | None
    ) -> dict[str, Any]:
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
        query_params = dict(parse_qsl(parts.query))
        if "sslmode" in query_params:
            query_params["ssl"] = query_params.pop("sslmode")
        credentials.update(query_params)
        if statement_timeout is not None:  # on every connection of the pool
            milliseconds = max(1, round(statement_timeout * 1000))
            credentials["server_settings"] = {"statement_timeout": str(milliseconds)}
        return {"engine": "tortoise.backends.asyncpg", "credentials": credentials}

    @classmethod
    @contextlib.asynccontextmanager
    async def migration_lock(cls, url: str, connection: dict[str, Any]) -> AsyncIterator[None]:
        """Hold a session-level advisory lock on a connection of its own for the whole run.

        Not on a connection of Tortoise's pool: Tortoise's migrate() re-initialises
        Tortoise, which closes that pool, so the lock would be dropped mid-migration (and
        the pool's close would wait 10 s for the borrowed connection). A lock held by a
        crashed process is freed by PostgreSQL when its connection ends.
        """
        credentials = connection["credentials"]
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

    def date_param(self, value: dt.date) -> Any:
        return value  # a DATE column takes a date

    async def fetch(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        client = self._client()
        try:
            # Tortoise's asyncpg execute_query drops the rows of INSERT/UPDATE … RETURNING.
            call = client.execute_query_dict(_numbered(sql), list(values))
            # A statement that finds no pool makes Tortoise open it. Cancelled halfway (a
            # client hanging up cancels its request), that opening left a pool that
            # answered nothing, ever: such a statement is shielded.
            if not is_open(client):
                call = asyncio.shield(call)
            return await call
        except asyncpg.QueryCanceledError as exc:  # statement_timeout (set on the pool)
            raise StatementTimeoutError(self.statement_timeout) from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(str(exc)) from exc

    async def book_json(self, book_id: int) -> BookJSON:
        return self._saved(await self._book_row(book_id))

    async def list_books(self, q: PageQuery) -> Page:
        clauses, values = query.where(q.filter, self.like, self.date_param)
        count, exact = await self.count(q, clauses, values) if q.with_count else (None, True)
        params = list(values)
        if q.after is not None:
            params += query.keyset_values(q.after, q.ordering, self.date_param)
        statement = query.page_sql(
            schema.COLUMNS,
            "book",
            "id",
            tuple(clauses),
            q.ordering,
            q.backwards,
            q.after is not None,
        )
        rows = list(await self.fetch(statement, [*params, q.limit + 1, q.offset]))
        return self._rows_page(rows, q, count, exact)

    async def bulk_load(
        self,
        count: int,
        replace: bool,
        batch_size: int,
        rows: RowBatches,
        progress: Progress | None,
    ) -> tuple[int, int]:
        client = self._client()
        async with client.acquire_connection() as raw, raw.transaction():
            # The pool's statement_timeout is for requests, not for a seed.
            await raw.execute("SET LOCAL statement_timeout = 0")
            # Writers wait for the seed rather than taking ids from under it.
            await raw.execute("LOCK TABLE book IN SHARE ROW EXCLUSIVE MODE")
            if replace:
                # TRUNCATE fires no row or statement DELETE trigger: reset the counts.
                await raw.execute("TRUNCATE book RESTART IDENTITY")
                await raw.execute("UPDATE book_count SET n = 0 WHERE id = 1")
                await raw.execute("DELETE FROM book_author_count")
            first = int(await raw.fetchval("SELECT coalesce(max(id), 0) FROM book")) + 1
            done = 0
            while done < count:
                size = min(batch_size, count - done)
                records = [(*r, 1) for r in rows(first + done, size, False)]
                await raw.copy_records_to_table("book", records=records, columns=_COLUMNS)
                done += size
                if progress:
                    progress(done, count)
            await raw.execute(
                "SELECT setval(pg_get_serial_sequence('book', 'id'), "
                "(SELECT coalesce(max(id), 1) FROM book), (SELECT count(*) > 0 FROM book))"
            )
            total = int(await raw.fetchval("SELECT count(*) FROM book"))
            # Statistics now, not when autovacuum gets to it: planned without them, a
            # bounded count of a narrow price range read the whole table in id order.
            await raw.execute("ANALYZE book")
        return first, total
