"""A search's author side follows every write: a new author, a renamed one, an author's
last book deleted. On SQLite the authors that hold the text are found through a trigram
index of the distinct authors (``book_author_search``, kept by triggers on
``book_author_count``); on PostgreSQL through ``book_author_count``'s own trigram index."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from db import Backend, seed

pytestmark = pytest.mark.asyncio


async def _found(client: httpx.AsyncClient, term: str) -> tuple[list[int], int]:
    response = await client.get("/books/", params={"search": term, "limit": 100})
    assert response.status_code == 200, response.text
    body = response.json()
    return [b["id"] for b in body["results"]], body["count"]


async def _authors_in_step(db: Backend) -> None:
    if db.name != "sqlite":
        return
    counted = await db.fetch("SELECT author FROM book_author_count ORDER BY author")
    indexed = await db.fetch("SELECT author FROM book_author_search ORDER BY author")
    assert [r["author"] for r in indexed] == [r["author"] for r in counted]


async def test_a_search_finds_an_authors_books_through_every_write(
    client: httpx.AsyncClient, db: Backend, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await seed.seed_books(db, count=200)
    made = []
    # The first holds the name in its title too: found once.
    for title, author in (
        ("The Vexmoor Letters", "Quillon Vexmoor"),
        ("Plain", "Quillon Vexmoor"),
        ("Plain", "Zo"),
    ):
        response = await client.post(
            "/books/", json={**book_data, "title": title, "author": author}, headers=auth
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    await _authors_in_step(db)
    assert await _found(client, "VEXMOOR") == (made[:2], 2)

    # Renamed: the old name finds one book, the new name the other.
    renamed = await client.patch(
        f"/books/{made[0]}/", json={"author": "Quillon Braskett"}, headers=auth
    )
    assert renamed.status_code == 200, renamed.text
    await _authors_in_step(db)
    assert await _found(client, "vexmoor") == (made[:2], 2)  # a title, an author
    assert await _found(client, "braskett") == ([made[0]], 1)

    # Each author's last book deleted: the name finds nothing, the author is gone.
    for book_id in made:
        assert (await client.delete(f"/books/{book_id}/", headers=auth)).status_code == 204
    await _authors_in_step(db)
    assert await _found(client, "vexmoor") == ([], 0)
    assert await _found(client, "braskett") == ([], 0)
    assert await _found(client, "Quillon") == ([], 0)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_seed_keeps_the_authors_index_in_step(db: Backend) -> None:
    await seed.seed_books(db, count=300)
    await _authors_in_step(db)
    await seed.seed_books(db, count=100, replace=True)
    await _authors_in_step(db)
    await seed.seed_books(db, count=50)
    await _authors_in_step(db)
