"""Fixed SQL through Tortoise's connection, written once with ``?`` placeholders.

The hot paths of bookshelf are single statements (a keyset page, an ``UPDATE … WHERE
version = ? RETURNING``), which Tortoise's querysets cannot express; they go through
Tortoise's own client (``execute_query``), so connection set-up, pooling, transactions and
exception translation stay Tortoise's. PostgreSQL wants ``$1``-style placeholders: the
text is rewritten once per distinct statement and cached.

On SQLite, Tortoise's client guards its one connection with an ``asyncio.Lock`` that every
statement takes, transaction or not, so 64 concurrent requests ran their statements one at
a time, each waiting for the last one's round trip through aiosqlite's thread. That lock
is there for transactions (``in_transaction`` holds it from ``BEGIN`` to ``COMMIT``). When
nobody holds it, a statement goes straight onto the same connection's queue instead:
aiosqlite runs its queue in order on one thread, and the statement is queued before this
coroutine first yields, so it runs before any later ``BEGIN``, in autocommit mode, outside
every transaction, just as it would have under the lock. When the lock is held, the
statement waits for it as before. This halved the CPU time of a detail read (issue 9).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
from tortoise import connections
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.connection import ConnectionHandler
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from db.errors import DatabaseUnavailableError

_state: dict[str, Any] = {"dialect": "sqlite", "connections": None}

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


def configure(dialect: str, handler: ConnectionHandler | None = None) -> None:
    """The dialect of the open database, and the connection handler of its Tortoise
    context (``tortoise.connection.get_connections()``) when it is open: ``fetch`` asks
    it for the connection directly instead of through ``tortoise.connections``, which
    looks the context up again on every statement (issue 9)."""
    _state["dialect"] = dialect
    _state["connections"] = handler


def forget_connections() -> None:
    """The database is closing: back to ``tortoise.connections`` for any later statement."""
    _state["connections"] = None


def is_postgres() -> bool:
    return _state["dialect"] == "postgres"


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}")
        out.append(part)
    return "".join(out)


def date_param(value: dt.date) -> Any:
    # Tortoise stores a DateField as ISO text on SQLite and as DATE on PostgreSQL.
    return value if is_postgres() else value.isoformat()


def _is_open(client: Any) -> bool:
    """Whether Tortoise's client holds its SQLite connection or its PostgreSQL pool."""
    return (
        getattr(client, "_connection", None) is not None
        or getattr(client, "_pool", None) is not None
    )


async def fetch(sql: str, values: Sequence[Any] = ()) -> Sequence[Any]:
    """Rows of one statement, each indexable by column name."""
    client = (_state["connections"] or connections).get("default")
    try:
        # Inside in_transaction(), get() gives the transaction's own client, never a
        # SqliteClient: its statements take Tortoise's path below.
        if (
            type(client) is SqliteClient
            and client._connection is not None
            and not client._lock.locked()
        ):
            # Nobody holds the lock (see the module's docstring): straight onto the
            # connection's queue. sqlite3's errors become Tortoise's, as its own
            # translate_exceptions does.
            try:
                return await client._connection.execute_fetchall(sql, values)
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(exc) from exc
        postgres = _state["dialect"] == "postgres"
        if postgres:
            # Tortoise's asyncpg execute_query drops the rows of INSERT/UPDATE … RETURNING.
            call = client.execute_query_dict(_numbered(sql), list(values))
        else:
            call = client.execute_query(sql, list(values))
        # A statement that finds no connection (pool) makes Tortoise open it. Cancelled
        # halfway (a client hanging up cancels its request), that opening left a
        # connection that answered nothing, ever: every later statement of the worker
        # waited forever. Such a statement is shielded; the others cancel as usual.
        result = await (call if _is_open(client) else asyncio.shield(call))
        return result if postgres else result[1]
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailableError(str(exc)) from exc


async def ping() -> None:
    try:
        await fetch("SELECT 1")
    except OperationalError as exc:
        raise DatabaseUnavailableError(str(exc)) from exc
