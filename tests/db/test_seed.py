"""db.seed: deterministic rows, ids in order, and the counter and search index kept right."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from db import Backend, seed

pytestmark = pytest.mark.asyncio


async def _rows(db: Backend) -> list[Any]:
    return list(
        await db.fetch(
            "SELECT id, title, author, published_date, price_cents, version FROM book ORDER BY id"
        )
    )


async def test_seed_writes_the_seeded_books_in_batches(
    client: httpx.AsyncClient, db: Backend
) -> None:
    report = await seed.seed_books(db, count=150, batch_size=64)
    assert (report.inserted, report.first_id, report.last_id, report.total) == (150, 1, 150, 150)
    rows = await _rows(db)
    assert [r["id"] for r in rows] == list(range(1, 151))
    for row in rows[:20]:
        title, author, published, cents = seed.book_for(row["id"])
        assert (row["title"], row["author"], row["price_cents"], row["version"]) == (
            title,
            author,
            cents,
            1,
        )
        assert str(row["published_date"]) == published.isoformat()
        assert 100 <= cents <= 99_999
    assert await db.check_counts(thorough=True) in ((150, 150, 150), (150, 150, None))


async def test_seed_appends_after_the_highest_id_and_replace_starts_over(
    client: httpx.AsyncClient,
    db: Backend,
) -> None:
    await seed.seed_books(db, count=10)
    report = await seed.seed_books(db, count=5, seed=7)
    assert (report.first_id, report.last_id, report.total) == (11, 15, 15)
    assert (await _rows(db))[12]["title"] == seed.book_for(13, seed=7)[0]
    report = await seed.seed_books(db, count=8, replace=True)
    assert (report.first_id, report.last_id, report.total) == (1, 8, 8)
    assert await db.check_counts(thorough=True) in ((8, 8, 8), (8, 8, None))


async def _indexes(db: Backend) -> list[tuple[str, str]]:
    if db.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'book'"
    else:
        sql = (
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes"
            " WHERE tablename = 'book' AND schemaname = current_schema()"
        )
    return sorted((r["name"], r["sql"]) for r in await db.fetch(sql))


async def test_a_seed_into_an_empty_table_builds_the_same_indexes_after_the_rows(
    db: Backend,
) -> None:
    """(It drops them first: built from all the rows at once, each is one sort.)"""
    before = await _indexes(db)
    assert len(before) >= 7
    await seed.seed_books(db, count=300)
    await seed.seed_books(db, count=200, seed=3, replace=True)
    await seed.seed_books(db, count=50, seed=4)  # appended: the indexes stay
    assert await _indexes(db) == before
    author = seed.book_for(7, seed=3)[1]
    rows = await db.fetch(
        "SELECT id FROM book WHERE author = ? AND id <= 200 ORDER BY price_cents, id", [author]
    )
    expected = sorted(
        (seed.book_for(i, seed=3)[3], i)
        for i in range(1, 201)
        if seed.book_for(i, seed=3)[1] == author
    )
    assert [r["id"] for r in rows] == [i for _, i in expected]
    assert await db.check_counts(thorough=True) in ((250, 250, 250), (250, 250, None))


async def test_writes_after_a_seed_keep_count_and_search_in_step(
    client: httpx.AsyncClient, db: Backend, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await seed.seed_books(db, count=40)
    created = await client.post(
        "/books/", json={**book_data, "title": "Zyzzyva Quarterly"}, headers=auth
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == 41  # the id sequence moved past the seeded ids
    page = (await client.get("/books/", params={"limit": 1})).json()
    assert page["count"] == 41
    found = (await client.get("/books/", params={"search": "zyzzyva"})).json()
    assert [b["id"] for b in found["results"]] == [41]
    deleted = await client.delete("/books/1/", headers=auth)
    assert deleted.status_code == 204
    assert (await client.get("/books/", params={"limit": 1})).json()["count"] == 40
    term = seed.book_for(2)[1].split()[-1].lower()  # an author's surname, seeded
    hits = (await client.get("/books/", params={"search": term, "limit": 100})).json()
    assert 2 in [b["id"] for b in hits["results"]]
