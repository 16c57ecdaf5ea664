"""A search's ``count``: exact up to db.sqlite.SEARCH_EXACT_COUNT matches, an estimate above.

On SQLite a search reads its matches from the trigram index in id order; counting every
match of a common word would cost time in proportion to the table, so above the threshold
the count is estimated from how far into the ids the first matches reach. PostgreSQL
counts exactly up to db.backend.COUNT_SCAN_LIMIT and estimates above it from a sample.
Either way the pages themselves are exact, and ``X-Count-Kind`` says which count it is.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from db import Backend, seed
from db.sqlite import SEARCH_EXACT_COUNT

pytestmark = pytest.mark.asyncio

ROWS = 20_000  # "river" is in about 2.3% of the seeded rows: some 460 matches


async def _exact(db: Backend, term: str, extra: str = "", values: tuple[Any, ...] = ()) -> int:
    op = "ILIKE" if db.name == "postgres" else "LIKE"
    rows = await db.fetch(
        f"SELECT count(*) AS n FROM book WHERE (title {op} ? OR author {op} ?){extra}",
        [f"%{term}%", f"%{term}%", *values],
    )
    return int(rows[0]["n"])


_KINDS: dict[int, str] = {}  # the X-Count-Kind of each count _count returned


async def _count(client: httpx.AsyncClient, query: str) -> int:
    response = await client.get(f"/books/?{query}")
    assert response.status_code == 200, response.text
    count = int(response.json()["count"])
    _KINDS[count] = response.headers["X-Count-Kind"]
    return count


def _close(db: Backend, got: int, exact: int) -> None:
    if _KINDS[got] == "exact":
        assert got == exact
    else:
        assert got > SEARCH_EXACT_COUNT
        assert abs(got - exact) <= 0.15 * exact, (got, exact)


async def test_search_counts_exact_up_to_the_threshold_and_close_above(
    client: httpx.AsyncClient,
    db: Backend,
) -> None:
    await seed.seed_books(db, count=ROWS)
    seen = set()
    # Below and above; "wand" in titles ("Wandering") and in names ("Wanda").
    for term in ("lantern", "okafor", "nakamura", "river", "wand", "e r", "an"):
        exact = await _exact(db, term)
        got = await _count(client, f"search={term.replace(' ', '+')}")
        seen.add(exact <= SEARCH_EXACT_COUNT)
        if exact <= SEARCH_EXACT_COUNT or len(term) < 3:  # two letters: no trigram, exact
            assert got == exact, term
        else:
            _close(db, got, exact)
    assert seen == {True, False}
    # Far above: "the" is in most titles.
    _close(db, await _count(client, "search=the"), await _exact(db, "the"))
    # With another filter the estimate counts what passes both.
    both = await _exact(db, "the", " AND price_cents >= ?", (50_000,))
    got = await _count(client, "search=the&min_price=500")
    if both <= SEARCH_EXACT_COUNT:
        assert got == both
    else:
        _close(db, got, both)
    # Never more than the table holds, never an estimate on a cursor page (no count).
    assert await _count(client, "search=e") <= ROWS
    first = (await client.get("/books/?search=the&limit=5")).json()
    assert "count" not in (await client.get(first["next"])).json()


async def test_the_estimate_follows_deleted_ids(client: httpx.AsyncClient, db: Backend) -> None:
    """Ids need not start at 1: the estimate spans the ids that are there."""
    await seed.seed_books(db, count=ROWS)
    await db.fetch("DELETE FROM book WHERE id <= ?", [ROWS // 2])
    exact = await _exact(db, "the")
    assert exact > SEARCH_EXACT_COUNT
    _close(db, await _count(client, "search=the"), exact)
