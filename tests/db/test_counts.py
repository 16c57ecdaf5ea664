"""Counts and depth at any table size: exact or estimated ``count`` with ``X-Count-Kind``,
``Prefer: count=…`` with ``Preference-Applied``, ``MAX_OFFSET``, and the statement time
limit, past which a statement is stopped (503) without holding up other requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import httpx
import pytest

from api import Settings
from api.errors import COUNT_TIMEOUT
from api.pagination import count_preference
from db import Backend, seed
from db import backend as backend_module
from db.backend import COUNT_EXACT_UP_TO, COUNT_SCAN_LIMIT
from db.errors import StatementTimeoutError
from tests.conftest import app_client

ROWS = 30_000  # ids spanning more than the sample; min_price=100 matches some 27,000
# A condition that is never decided: a recursive CTE that counts up for ever looking for
# a negative number. Standing for any statement that runs too long, on both backends.
ENDLESS = (
    "EXISTS (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT 1 FROM c WHERE x < 0)"
)


async def _true_count(db: Backend, where: str, values: list[Any]) -> int:
    rows = await db.fetch(f"SELECT count(*) AS n FROM book WHERE {where}", values)
    return int(rows[0]["n"])


def test_prefer_is_read_as_rfc_7240_says() -> None:
    assert count_preference(["count=exact"]) == "exact"
    assert count_preference(["respond-async, COUNT = Estimated ;x=1"]) == "estimated"
    assert count_preference(["wait=5", 'count="none"']) == "none"
    assert count_preference(["count=exact, count=none"]) == "exact"  # the first one counts
    assert count_preference(["count=planned"]) is None  # unknown: ignored
    assert count_preference(["return=minimal", "handling=lenient"]) is None
    assert count_preference([""]) is None


async def test_a_page_says_what_kind_of_count_it_carries(
    client: httpx.AsyncClient, db: Backend
) -> None:
    await seed.seed_books(db, count=50)
    first = await client.get("/books/?limit=5")
    assert first.json()["count"] == 50
    assert first.headers["X-Count-Kind"] == "exact"
    assert first.headers["Vary"] == "Prefer"
    assert "Preference-Applied" not in first.headers
    offset = await client.get("/books/?limit=5&offset=5&author=" + seed.author_name(1))
    assert offset.headers["X-Count-Kind"] == "exact"
    cursor = await client.get(first.json()["next"])
    assert "count" not in cursor.json()
    for header in ("X-Count-Kind", "Vary", "Preference-Applied"):
        assert header not in cursor.headers
    none = await client.get("/books/?limit=5", headers={"Prefer": "count=none"})
    assert none.status_code == 200
    assert set(none.json()) == {"next", "previous", "results"}
    assert none.headers["Preference-Applied"] == "count=none"
    assert "X-Count-Kind" not in none.headers and none.headers["Vary"] == "Prefer"
    assert none.json()["results"] == first.json()["results"]
    ignored = await client.get("/books/?limit=5", headers={"Prefer": "count=lots, foo"})
    assert ignored.json()["count"] == 50 and "Preference-Applied" not in ignored.headers
    asked = await client.get("/books/?min_price=1", headers={"Prefer": "count=exact"})
    assert asked.headers["Preference-Applied"] == "count=exact"
    assert (asked.json()["count"], asked.headers["X-Count-Kind"]) == (50, "exact")
    head = await client.head("/books/?limit=5", headers={"Prefer": "count=estimated"})
    assert head.headers["Preference-Applied"] == "count=estimated"
    assert head.headers["X-Count-Kind"] == "exact"  # a kept count costs nothing


async def test_counts_exact_up_to_the_threshold_estimated_within_20_percent_above(
    client: httpx.AsyncClient, db: Backend
) -> None:
    await seed.seed_books(db, count=ROWS)
    cases = [
        ("min_price=990", "price_cents >= ?", [99_000]),  # about 300 matches
        ("min_price=100", "price_cents >= ?", [10_000]),  # about 27,000
        ("published_before=1960-01-01", "published_date <= ?", ["1960-01-01"]),
        ("min_price=100&max_price=500", "price_cents >= ? AND price_cents <= ?", [10_000, 50_000]),
    ]
    kinds = set()
    for params, where, values in cases:
        if "published" in where:
            values = [db.date_param(dt.date(1960, 1, 1))]
        truth = await _true_count(db, where, values)
        response = await client.get(f"/books/?{params}")
        assert response.status_code == 200, response.text
        kind, got = response.headers["X-Count-Kind"], response.json()["count"]
        kinds.add(kind)
        if truth <= COUNT_EXACT_UP_TO:
            assert (kind, got) == ("exact", truth), params
        elif kind == "exact":
            assert got == truth <= COUNT_SCAN_LIMIT, params
        else:
            assert abs(got - truth) <= 0.2 * truth, (params, got, truth)
        exact = await client.get(f"/books/?{params}", headers={"Prefer": "count=exact"})
        assert exact.headers["X-Count-Kind"] == "exact"
        assert exact.headers["Preference-Applied"] == "count=exact"
        assert exact.json()["count"] == truth, params
        estimated = await client.get(f"/books/?{params}", headers={"Prefer": "count=estimated"})
        assert estimated.headers["Preference-Applied"] == "count=estimated"
        assert estimated.json()["count"] == got
    assert kinds == {"exact", "estimated"}


async def test_an_offset_past_max_offset_is_refused(settings: Settings) -> None:
    async with app_client(dataclasses.replace(settings, max_offset=40)) as client:
        assert (await client.get("/books/?offset=40")).status_code == 200
        response = await client.get("/books/?offset=41")
        assert response.status_code == 400
        (message,) = response.json()["offset"]
        assert "40" in message and "next" in message
    async with app_client(settings) as client:  # the default: 100,000
        assert (await client.get("/books/?offset=100000")).status_code == 200
        assert (await client.get("/books/?offset=100001")).status_code == 400


async def _endless_count(db: Backend, done: list[str]) -> None:
    try:
        await db.exact_count(ENDLESS, [])
    except StatementTimeoutError as exc:
        assert exc.counting
        done.append("slow")
    else:
        done.append("finished?")


async def test_a_long_count_is_stopped_and_holds_up_no_other_request(settings: Settings) -> None:
    """While an exact count runs as long as the limit allows, detail reads on the same
    worker keep being answered; the count is stopped at the limit."""
    settings = dataclasses.replace(settings, statement_timeout=1.5)
    async with app_client(settings) as client:
        db: Backend = client._transport.app.ctx.db  # type: ignore[attr-defined]
        await seed.seed_books(db, count=20)
        done: list[str] = []
        slow = asyncio.create_task(_endless_count(db, done))
        await asyncio.sleep(0.05)  # the count has started
        for i in range(1, 21):
            response = await client.get(f"/books/{i}/")
            assert response.status_code == 200
            page = await client.get("/books/?limit=3&min_price=1")
            assert page.status_code == 200
            done.append("fast")
        await slow
        assert done == ["fast"] * 20 + ["slow"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_exact_count_past_the_limit_is_answered_503(settings: Settings) -> None:
    """The count of a request waits behind another one on the counting connection; its
    time runs from when it asked: past it, 503 saying to ask for an estimate."""
    settings = dataclasses.replace(settings, statement_timeout=0.5)
    async with app_client(settings) as client:
        db: Backend = client._transport.app.ctx.db  # type: ignore[attr-defined]
        await seed.seed_books(db, count=ROWS)
        done: list[str] = []
        db.statement_timeout = 1.5  # another client's count, given longer
        slow = asyncio.create_task(_endless_count(db, done))
        await asyncio.sleep(0.05)
        db.statement_timeout = settings.statement_timeout
        # Some 30,000 matches: more than a bounded count counts, so counted apart.
        response = await client.get("/books/?min_price=1", headers={"Prefer": "count=exact"})
        await slow
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["detail"] == COUNT_TIMEOUT.format(s="0.5")
        assert "count=estimated" in response.json()["detail"]
        # Without the preference the same list is answered, estimated.
        response = await client.get("/books/?min_price=1")
        assert response.status_code == 200
        assert response.headers["X-Count-Kind"] == "estimated"


async def test_any_statement_past_the_limit_is_stopped(settings: Settings) -> None:
    settings = dataclasses.replace(settings, statement_timeout=0.3)
    async with app_client(settings) as client:
        db: Backend = client._transport.app.ctx.db  # type: ignore[attr-defined]
        with pytest.raises(StatementTimeoutError) as info:
            await db.fetch(f"SELECT {ENDLESS} AS n")
        assert not info.value.counting and info.value.seconds == 0.3
        # The connection serves on.
        assert (await client.get("/books/")).status_code == 200


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_statement_waiting_past_the_limit_is_answered_503(
    settings: Settings, postgres: Any
) -> None:
    """On PostgreSQL the limit is the server's statement_timeout, set on the pool."""
    settings = dataclasses.replace(settings, statement_timeout=0.5)
    async with app_client(settings) as client:
        db: Backend = client._transport.app.ctx.db  # type: ignore[attr-defined]
        await seed.seed_books(db, count=20)
        await asyncio.to_thread(postgres.execute, "BEGIN; LOCK TABLE book IN ACCESS EXCLUSIVE MODE")
        try:
            response = await client.get("/books/?min_price=1")
        finally:
            await asyncio.to_thread(postgres.execute, "ROLLBACK")
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert "narrow the filter" in response.json()["detail"]
        assert (await client.get("/books/?min_price=1")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_estimate_reads_no_whole_table(client: httpx.AsyncClient, db: Backend) -> None:
    """Its cost must not grow with the table: the ends of the ids by one seek each, the
    sample by one seek per run (with min and max in one SELECT, SQLite scanned it)."""
    await seed.seed_books(db, count=10)
    sample = backend_module._SAMPLE.format(where="price_cents >= ?")
    for statement, values in (
        (backend_module._SPAN, []),
        (sample, [100, 1, 1, 10, 1, 10, 5]),
    ):
        plan = [row["detail"] for row in await db.fetch(f"EXPLAIN QUERY PLAN {statement}", values)]
        assert not [step for step in plan if step.startswith("SCAN book")], plan
