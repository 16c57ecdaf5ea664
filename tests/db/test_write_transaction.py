"""``Backend.write_transaction``: the transaction an Idempotency-Key's write and its stored
outcome share. It commits when its block ends and stores nothing when the block raises,
while the worker's other statements wait for it (SQLite) or run beside it (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from db import Backend, close_db, open_db

INSERT = (
    "INSERT INTO book (title, author, published_date, price_cents, version) "
    "VALUES (?, 'A', ?, 100, 1) RETURNING id"
)


class Refused(Exception):
    pass


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Backend]:
    backend = await open_db(database_url, run_migrations=True)
    try:
        yield backend
    finally:
        await close_db()


def day(db: Backend) -> object:
    return db.date_param(dt.date(2020, 1, 1))


async def titles(db: Backend) -> list[str]:
    return [row["title"] for row in await db.fetch("SELECT title FROM book ORDER BY id")]


async def test_the_block_s_statements_commit_together(db: Backend) -> None:
    async with db.write_transaction() as fetch:
        await fetch(INSERT, ["one", day(db)])
        await fetch(INSERT, ["two", day(db)])
    assert await titles(db) == ["one", "two"]


async def test_a_block_that_raises_stores_nothing(db: Backend) -> None:
    with pytest.raises(Refused):
        async with db.write_transaction() as fetch:
            await fetch(INSERT, ["one", day(db)])
            raise Refused()
    assert await titles(db) == []
    # The connection is usable again, outside any transaction.
    await db.write(INSERT, ["after", day(db)])
    assert await titles(db) == ["after"]


async def test_other_statements_never_land_inside_it(db: Backend) -> None:
    """A statement of another request sent while the transaction is open is not rolled
    back with it."""
    started = asyncio.Event()
    go_on = asyncio.Event()

    async def held() -> None:
        with pytest.raises(Refused):
            async with db.write_transaction() as fetch:
                await fetch(INSERT, ["inside", day(db)])
                started.set()
                await go_on.wait()
                raise Refused()

    task = asyncio.create_task(held())
    await started.wait()
    other = asyncio.create_task(db.write(INSERT, ["outside", day(db)]))
    await asyncio.sleep(0)  # (the other statement sent, or queued behind the lock)
    go_on.set()
    await task
    await other
    assert await titles(db) == ["outside"]
