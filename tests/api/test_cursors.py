"""Cursors: malformed or foreign ones are 400s, a cursor is a keyset position, and cursor and
offset walks agree while rows are inserted and deleted."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from helpers import book, bulk, create, encode, ids, offset_walk, query, rel, sort_key, walk_next

pytestmark = pytest.mark.asyncio


# Cursors.


async def _cursor_of(client: httpx.AsyncClient, params: str) -> str:
    body = (await client.get(f"/books/?{params}")).json()
    return query(body["next"])["cursor"][0]


MALFORMED_CURSORS = [
    "garbage",
    "!!!!",
    "%%%",
    " ",
    "=",
    "€uro",
    "eyJvIjoiaWQi",  # truncated JSON
    encode(None),
    encode([]),
    encode(42),
    encode("id"),
    encode({}),
    encode({"o": "id", "p": [1]}),
    encode({"o": "id", "p": [1], "b": 0}),
    encode({"o": "id", "p": [1], "b": "false"}),
    encode({"o": "id", "p": [], "b": False}),
    encode({"o": "id", "p": [1, 2], "b": False}),
    encode({"o": "id", "p": ["1"], "b": False}),
    encode({"o": "id", "p": [1.5], "b": False}),
    encode({"o": "id", "p": [True], "b": False}),
    encode({"o": "id", "p": [None], "b": False}),
    encode({"o": "id", "p": [2**64], "b": False}),
    encode({"o": "id", "p": [-(2**63)], "b": False}),
    encode({"o": "id", "p": [[1]], "b": False}),
    encode({"o": "id", "p": {"id": 1}, "b": False}),
    encode({"o": "title,id", "p": [1, 1], "b": False}),
    encode({"o": "-price,title,id", "p": ["12.50", "x", 1], "b": False}),
    encode({"o": "published_date,id", "p": ["2023-02-30", 1], "b": False}),
    encode({"o": "published_date,id", "p": [20230203, 1], "b": False}),
    encode({"o": "title,id", "p": ["a\u0000b", 1], "b": False}),
    encode({"o": "drop table book", "p": [1], "b": False}),
    base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
]


async def test_malformed_cursor_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await bulk(client, auth, [book(i) for i in range(3)])
    failures = []
    for cursor in MALFORMED_CURSORS:
        for ordering in ("", "-price,title", "published_date"):
            response = await client.get("/books/", params={"cursor": cursor, "ordering": ordering})
            body = response.json()
            if response.status_code not in (400, 404) or not ("cursor" in body or "detail" in body):
                failures.append((cursor, ordering, response.status_code, response.text))
    assert failures == []


OTHER_ORDERINGS = [
    ("", "ordering=title"),
    ("ordering=title", ""),
    ("ordering=title", "ordering=-title"),
    ("ordering=-price,title", "ordering=-price"),
    ("ordering=-price,title", "ordering=price,title"),
    ("ordering=published_date", "ordering=author"),
]


async def test_cursor_for_another_ordering_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await bulk(client, auth, [book(i) for i in range(5)])
    for made_for, used_with in OTHER_ORDERINGS:
        cursor = await _cursor_of(client, f"limit=2&{made_for}")
        response = await client.get(f"/books/?{used_with}&cursor={cursor}")
        assert response.status_code == 400, (made_for, used_with, response.text)
        assert list(response.json()) == ["cursor"]
        # ... while the same cursor with its own ordering works.
        assert (await client.get(f"/books/?{made_for}&cursor={cursor}")).status_code == 200


async def test_cursor_is_a_keyset_position_not_an_offset(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await bulk(client, auth, [book(i) for i in range(6)])
    cursor = await _cursor_of(client, "limit=2&ordering=-price,title")
    doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    ordered = sort_key("-price,title")(created)
    text = json.dumps(doc)
    # The position names the last row of the page: its title and id are in the cursor.
    assert ordered[1]["title"] in text
    assert str(ordered[1]["id"]) in text


async def test_cursor_pages_have_no_count_and_accept_limit(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await bulk(client, auth, [book(i) for i in range(10)])
    cursor = await _cursor_of(client, "limit=3")
    body = (await client.get(f"/books/?cursor={cursor}&limit=5")).json()
    assert "count" not in body
    assert body["results"] == created[3:8]
    assert query(body["next"])["limit"] == ["5"]


async def test_empty_list_and_single_page_have_no_links(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = (await client.get("/books/?limit=5")).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}
    await bulk(client, auth, [book(i) for i in range(5)])
    body = (await client.get("/books/?limit=5")).json()
    assert body["next"] is None and body["previous"] is None


# Walks: cursor and offset over the same ordering.

WALK_ORDERINGS = [
    None,
    "-price,title",
    "published_date",
    "-published_date",
    "author,-price",
    "title",
    "-id",
]


@pytest.fixture
async def walk_rows(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    return await bulk(client, auth, [book(i) for i in range(230)])


async def test_cursor_walk_equals_offset_walk(
    client: httpx.AsyncClient, walk_rows: list[dict[str, Any]]
) -> None:
    for ordering in WALK_ORDERINGS:
        await _walk_both_ways(client, walk_rows, ordering)


async def _walk_both_ways(
    client: httpx.AsyncClient, walk_rows: list[dict[str, Any]], ordering: str | None
) -> None:
    params = {"ordering": ordering} if ordering else {}
    expected = ids(sort_key(ordering)(walk_rows))
    by_offset = ids(await offset_walk(client, params, 23))
    pages = await walk_next(
        client, "/books/?" + "&".join([f"{k}={v}" for k, v in {**params, "limit": 23}.items()])
    )
    by_cursor = [i for page in pages for i in ids(page["results"])]
    assert by_offset == expected, ordering
    assert by_cursor == expected, ordering
    assert len(set(by_cursor)) == len(walk_rows)
    assert all(len(page["results"]) == 23 for page in pages[:-1])
    assert "count" in pages[0] and all("count" not in page for page in pages[1:])

    # previous walks back over the same pages, in reverse order.
    back = [pages[-1]["results"]]
    page = pages[-1]
    while page["previous"] is not None:
        response = await client.get(rel(page["previous"]))
        assert response.status_code == 200
        page = response.json()
        back.append(page["results"])
    assert back == [p["results"] for p in reversed(pages)], ordering


def _late(ordering: str | None, n: int) -> dict[str, Any]:
    """A book that sorts after every existing row and every earlier late book."""
    return {
        None: {},
        "-price,title": {"price": "0.00", "title": f"zzz {n:04d}"},
        "published_date": {"published_date": f"2{n:03d}-01-01"},
        "title": {"title": f"zzz {n:04d}"},
        "-published_date,author": {"published_date": f"1{999 - n:03d}-01-01"},
    }[ordering]


@pytest.mark.parametrize(
    "ordering", [None, "-price,title", "published_date", "title", "-published_date,author"]
)
async def test_walks_while_rows_are_inserted_after_the_position(
    client: httpx.AsyncClient, auth: dict[str, str], ordering: str | None
) -> None:
    """Rows inserted between page fetches that sort after the walk's position: both walks
    see every row exactly once, in order, except the one inserted after the last page."""
    await bulk(client, auth, [book(i) for i in range(120)])
    params = {"ordering": ordering} if ordering else {}
    n = 0

    async def insert() -> int:
        nonlocal n
        n += 1
        return int((await create(client, auth, book(1000 + n, **_late(ordering, n))))["id"])

    async def everything() -> list[int]:
        return ids(await offset_walk(client, params, 100))

    walks: dict[str, tuple[list[int], list[int]]] = {}

    seen: list[int] = []
    url = "/books/?" + "&".join(f"{k}={v}" for k, v in {**params, "limit": 17}.items())
    while url:
        page = (await client.get(url)).json()
        seen += ids(page["results"])
        last = await insert()
        url = rel(page["next"]) if page["next"] else ""
    walks["cursor"] = (seen, [i for i in await everything() if i != last])

    seen = []
    offset = 0
    while True:
        page_params = {**params, "limit": 17, "offset": offset}
        page = (await client.get("/books/", params=page_params)).json()
        seen += ids(page["results"])
        last = await insert()
        if page["next"] is None:
            break
        offset += 17
    walks["offset"] = (seen, [i for i in await everything() if i != last])

    for how, (got, expected) in walks.items():
        assert len(got) == len(set(got)), how
        assert got == expected, how
        assert len(expected) > 120, how  # rows were added along the way and seen


@pytest.mark.parametrize("ordering", [None, "-price,title", "published_date"])
async def test_cursor_walk_survives_inserts_before_and_deletes_at_the_position(
    client: httpx.AsyncClient, auth: dict[str, str], ordering: str | None
) -> None:
    """Keyset pages neither repeat nor skip the original rows when rows are inserted before the
    position, or when the row a cursor points at is deleted."""
    start = await bulk(client, auth, [book(i) for i in range(90)])
    early = {
        None: {},
        "-price,title": {"price": "999.99"},
        "published_date": {"published_date": "1900-01-01"},
    }[ordering]
    params = "&".join(f"{k}={v}" for k, v in {"ordering": ordering, "limit": 13}.items() if v)
    url = f"/books/?{params}"
    got: list[int] = []
    deleted: set[int] = set()
    step = 0
    while url:
        page = (await client.get(url)).json()
        got += ids(page["results"])
        if ordering is not None:
            await create(client, auth, book(500 + step, **early))
        if step % 2 and page["results"]:
            victim = page["results"][-1]["id"]
            assert (await client.delete(f"/books/{victim}/", headers=auth)).status_code == 204
            deleted.add(victim)
        step += 1
        url = rel(page["next"]) if page["next"] else ""
    original = ids(sort_key(ordering)(start))
    assert [i for i in got if i in set(original)] == original
    assert len(got) == len(set(got))


async def test_unicode_titles_order_and_walk_by_code_point(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    titles = ["apple", "Apple", "Äpfel", "zebra", "Ωmega", "日本", "📚 books", "a", "A", "", "ß"]
    titles = [t or "_" for t in titles] + ["apple", "Äpfel"]  # duplicates tie-break by id
    created = await bulk(client, auth, [book(i, title=t) for i, t in enumerate(titles)])
    for ordering in ("title", "-title", "title,-id"):
        expected = ids(sort_key(ordering)(created))
        pages = await walk_next(client, f"/books/?ordering={ordering}&limit=2")
        assert [i for p in pages for i in ids(p["results"])] == expected, ordering
        assert ids(await offset_walk(client, {"ordering": ordering}, 3)) == expected, ordering
