"""A backend's ``fetch`` beside Tortoise's transactions.

On SQLite a statement skips Tortoise's connection lock when nobody holds it (the lock
serialised every statement). These tests pin down that a statement never ends up
inside another task's transaction: it waits for that transaction instead, whether the
transaction commits or rolls back. On PostgreSQL every statement has a pool connection of
its own; the same tests hold there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from db import Backend, close_db, open_db

INSERT = (
    "INSERT INTO book (title, author, published_date, price_cents, version) "
    "VALUES (?, 'A', ?, 100, 1) RETURNING id"
)

DAY = dt.date(2020, 1, 1)


class Rollback(Exception):
    pass


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Backend]:
    backend = await open_db(database_url, run_migrations=True)
    try:
        yield backend
    finally:
        await close_db()


async def _titles(db: Backend) -> list[str]:
    rows = await db.fetch("SELECT title FROM book ORDER BY id")
    return [row["title"] for row in rows]


async def _insert(db: Backend, title: str) -> None:
    await db.fetch(INSERT, [title, db.date_param(DAY)])


async def _beside_transaction(db: Backend, *, commit: bool) -> None:
    """Task T opens a transaction and writes; while it is open, another task writes."""
    in_tx = asyncio.Event()
    release = asyncio.Event()

    async def transaction() -> None:
        try:
            async with in_transaction("default") as conn:
                values = ["in transaction", db.date_param(DAY)]
                if db.name == "postgres":
                    await conn.execute_query_dict(
                        INSERT.replace("?", "$1", 1).replace("?", "$2"), values
                    )
                else:
                    await conn.execute_query(INSERT, values)
                in_tx.set()
                await release.wait()
                if not commit:
                    raise Rollback
        except Rollback:
            pass

    task = asyncio.create_task(transaction())
    await in_tx.wait()
    outside = asyncio.create_task(_insert(db, "outside"))
    await asyncio.sleep(0.05)  # the outside write is queued while the transaction is open
    release.set()
    await asyncio.gather(task, outside)


async def test_a_statement_is_not_rolled_back_with_another_tasks_transaction(db: Backend) -> None:
    await _beside_transaction(db, commit=False)
    assert await _titles(db) == ["outside"]


async def test_a_statement_beside_a_committed_transaction(db: Backend) -> None:
    await _beside_transaction(db, commit=True)
    assert sorted(await _titles(db)) == ["in transaction", "outside"]


async def test_concurrent_statements_all_answer(db: Backend) -> None:
    await asyncio.gather(*(_insert(db, f"book {i}") for i in range(50)))
    counts = await asyncio.gather(*(db.fetch("SELECT count(*) AS n FROM book") for _ in range(50)))
    assert {int(rows[0]["n"]) for rows in counts} == {50}
    assert sorted(await _titles(db)) == sorted(f"book {i}" for i in range(50))


@pytest.mark.parametrize("reopen", [False, True])
@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5, 8])
async def test_a_first_statement_cancelled_midway_does_not_wedge_the_database(
    database_url: str, steps: int, reopen: bool
) -> None:
    """A client that hangs up cancels its request's task. The very first statement of a
    worker used to open Tortoise's connection: cancelled at the wrong moment, it left the
    connection half made, and every later statement of that worker waited forever. The
    connection is now opened by open_db, and an opening inside a statement (``reopen``: as
    after a start with the database down) is shielded from the cancellation."""
    db = await open_db(database_url, run_migrations=True)
    try:
        if reopen:
            # As when the database was down at start-up: the first statement opens it.
            from tortoise import connections

            await connections.get("default").close()
        first = asyncio.create_task(db.fetch("SELECT 1 AS n"))
        for _ in range(steps):
            await asyncio.sleep(0)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        rows = await asyncio.wait_for(db.fetch("SELECT 2 AS n"), timeout=10)
        assert int(rows[0]["n"]) == 2
    finally:
        await close_db()


class CountingLock(asyncio.Lock):
    def __init__(self) -> None:
        super().__init__()
        self.acquired = 0

    async def acquire(self) -> bool:
        self.acquired += 1
        return await super().acquire()


@pytest.mark.parametrize("backend", ["sqlite"])  # the lock is SQLite's
async def test_serving_never_takes_tortoises_connection_lock(
    client: Any, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    """While anything holds Tortoise's SQLite lock, every statement queues behind it, and
    under load that queue does not drain (db/sqlite.py). Reads, writes and the token's
    last-use refresh must therefore never take it."""
    from tortoise import connections

    lock = CountingLock()
    connections.get("default")._lock = lock
    created = (await client.post("/books/", json=book_data, headers=auth)).json()
    book = f"/books/{created['id']}/"
    await client.patch(book, json={"title": "Y"}, headers=auth)
    await client.get(book)
    await client.get("/books/?search=Y")
    await client.delete(book, headers=auth)
    assert lock.acquired == 0
