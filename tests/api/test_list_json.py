"""A book is the same JSON wherever it appears: list pages, detail reads, writes.

On SQLite a page's books and a detail read are made into JSON by the database itself
(``json_object`` in the statement), a write's answer by ``db.schema.render``: they
must agree on every title, price and date, whatever the fields asked for.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import book

pytestmark = pytest.mark.asyncio

TITLES = [
    'Quote " and backslash \\ and slash /',
    "Tab\tnew line\ncarriage\rreturn, bell \x07, escape \x1b, unit sep \x1f",
    # The record separator parts a page's rows on SQLite (db.sqlite_json.gathered).
    "Record sep \x1e between, and at the end \x1e",
    "Del \x7f, NBSP \xa0, line sep \u2028, para sep \u2029, BOM \ufeff",
    "Accents: Ça, élève, Straße; CJK 東京; emoji 📚🧵; combining e\u0301",
    "<script>alert('x')</script> & ampersand",
    " leading and trailing spaces ",
    "x" * 255,
    "0",
    "null",
]
PRICES = ["0.00", "0.05", "0.10", "1.00", "9.99", "10.50", "999.99", "12.3", "7"]
DATES = ["0001-01-01", "0999-12-31", "1970-01-01", "2000-02-29", "9999-12-31"]


async def _created(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    bodies = [
        book(i, title=title, price=PRICES[i % len(PRICES)], published_date=DATES[i % len(DATES)])
        for i, title in enumerate(TITLES)
    ]
    response = await client.post("/books/", json=bodies, headers=auth)
    assert response.status_code == 201, response.text
    return [(await client.get(f"/books/{b['id']}/")).json() for b in response.json()]


async def test_detail_reads_give_the_json_of_writes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    bodies = [
        book(i, title=title, price=PRICES[i % len(PRICES)], published_date=DATES[i % len(DATES)])
        for i, title in enumerate(TITLES)
    ]
    created = await client.post("/books/", json=bodies, headers=auth)
    assert created.status_code == 201, created.text
    for written in created.json():
        read = await client.get(f"/books/{written['id']}/")
        assert read.status_code == 200
        assert read.headers["content-type"] == "application/json"
        item = json.loads(read.content.decode("utf-8"), parse_constant=pytest.fail)
        assert item == written
        assert list(item) == list(written)  # the contract's order
        patched = await client.patch(
            f"/books/{written['id']}/", json={"price": "1.5"}, headers=auth
        )
        assert (await client.get(f"/books/{written['id']}/")).json() == patched.json()


@pytest.mark.parametrize(
    "fields",
    [None, "id", "price", "title,author", "published_date,price,id", "price,title,author,id"],
)
async def test_list_pages_give_the_detail_json(
    client: httpx.AsyncClient, auth: dict[str, str], fields: str | None
) -> None:
    details = await _created(client, auth)
    wanted = [f for f in details[0] if fields is None or f in fields.split(",")]
    expected = [{f: d[f] for f in wanted} for d in details]
    suffix = "" if fields is None else f"&fields={fields}"
    first = await client.get(f"/books/?limit=4{suffix}")
    assert first.status_code == 200
    pages = [first.json()]
    while pages[-1]["next"]:
        pages.append((await client.get(pages[-1]["next"])).json())
    results = [item for page in pages for item in page["results"]]
    assert results == expected
    for item in results:
        assert list(item) == wanted  # the fields in the contract's order
    # The cursor pages back, from the last one: the same books.
    back = pages[-1]
    seen = list(back["results"])
    while back["previous"]:
        back = (await client.get(back["previous"])).json()
        seen[:0] = back["results"]
    assert seen == expected
    # The bytes are JSON a strict parser takes whole (no NaN, no raw control characters).
    json.loads(first.content.decode("utf-8"), parse_constant=pytest.fail)


@pytest.mark.parametrize(
    "query", ["ordering=-price", "ordering=published_date,-title", "ordering=title", "offset=2"]
)
async def test_other_orders_and_offsets_give_the_detail_json(
    client: httpx.AsyncClient, auth: dict[str, str], query: str
) -> None:
    details = {d["id"]: d for d in await _created(client, auth)}
    url: str | None = f"/books/?limit=3&{query}"
    seen = []
    while url:
        page = (await client.get(url)).json()
        seen += page["results"]
        url = page["next"]
    assert all(item == details[item["id"]] for item in seen)
    expected_count = len(details) - (2 if query == "offset=2" else 0)
    assert len(seen) == expected_count
