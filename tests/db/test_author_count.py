"""An author's ``count`` comes from ``book_author_count``, kept by triggers.

Whatever writes the books (one or a list by POST, PUT and PATCH changing the author or
not, DELETE, the seed with and without ``--replace``), ``GET /books/?author=A`` counts
exactly what ``count(*)`` counts, and the counter holds no row for an author without
books. On both backends.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from db import Backend, seed
from db.seed import author_name

pytestmark = pytest.mark.asyncio

AUTHORS = ("Ann", "Bo", "Cy", "ann", "Ann ")  # case and a trailing space are other authors


async def _truth(db: Backend) -> dict[str, int]:
    rows = await db.fetch("SELECT author, count(*) AS n FROM book GROUP BY author")
    return {r["author"]: int(r["n"]) for r in rows}


async def _counter(db: Backend) -> dict[str, int]:
    rows = await db.fetch("SELECT author, n FROM book_author_count")
    return {r["author"]: int(r["n"]) for r in rows}


async def _check(
    client: httpx.AsyncClient, db: Backend, authors: tuple[str, ...] = AUTHORS
) -> None:
    truth = await _truth(db)
    assert await _counter(db) == truth
    for author in authors:
        response = await client.get("/books/", params={"author": author, "limit": 100})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["count"] == truth.get(author, 0), author
        assert len(page["results"]) == min(100, truth.get(author, 0))


def _book(author: str, i: int) -> dict[str, Any]:
    return {"title": f"t{i}", "author": author, "published_date": "2001-02-03", "price": "1.50"}


async def test_every_write_keeps_the_author_count(
    client: httpx.AsyncClient, db: Backend, auth: dict[str, str]
) -> None:
    await _check(client, db)
    ids = []
    for i, author in enumerate(AUTHORS * 2):
        response = await client.post("/books/", json=_book(author, i), headers=auth)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    await _check(client, db)

    bulk = [_book(AUTHORS[i % 3], i) for i in range(7)]
    response = await client.post("/books/", json=bulk, headers=auth)
    assert response.status_code == 201, response.text
    await _check(client, db)

    # PATCH: to another author, to the same author, a field other than the author.
    for book_id, body in (
        (ids[0], {"author": "Bo"}),
        (ids[1], {"author": "Bo"}),
        (ids[2], {"title": "renamed"}),
        (ids[3], {"author": "Dee"}),
    ):
        response = await client.patch(f"/books/{book_id}/", json=body, headers=auth)
        assert response.status_code == 200, response.text
    await _check(client, db, (*AUTHORS, "Dee"))

    response = await client.put(f"/books/{ids[4]}/", json=_book("Eve", 99), headers=auth)
    assert response.status_code == 200, response.text
    await _check(client, db, (*AUTHORS, "Dee", "Eve"))

    # Deleting an author's last book removes the author's counter row.
    for book_id in (ids[3], ids[4], ids[5], ids[9]):
        response = await client.delete(f"/books/{book_id}/", headers=auth)
        assert response.status_code == 204, response.text
    await _check(client, db, (*AUTHORS, "Dee", "Eve"))
    assert "Dee" not in await _counter(db) and "Eve" not in await _counter(db)
    assert all(n > 0 for n in (await _counter(db)).values())


async def test_a_filter_beside_the_author_counts_exactly(
    client: httpx.AsyncClient, db: Backend, auth: dict[str, str]
) -> None:
    for i, price in enumerate(("1.00", "2.00", "3.00")):
        body = {**_book("Ann", i), "price": price}
        assert (await client.post("/books/", json=body, headers=auth)).status_code == 201
    response = await client.get("/books/", params={"author": "Ann", "min_price": "2.00"})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2


async def test_the_seed_keeps_the_author_count(client: httpx.AsyncClient, db: Backend) -> None:
    authors = tuple(author_name(i) for i in (0, 1, 7, 4095))
    await seed.seed_books(db, count=3000)
    await _check(client, db, authors)
    await seed.seed_books(db, count=1000)  # appended
    await _check(client, db, authors)
    await seed.seed_books(db, count=500, replace=True)
    await _check(client, db, authors)
