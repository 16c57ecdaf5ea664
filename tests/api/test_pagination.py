"""The list: envelope, links, bad parameters, ordering, sparse fieldsets, cursors and walks."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from helpers import book, bulk, create, ids, query, rel, walk_next

pytestmark = pytest.mark.asyncio


def sort_key(ordering: str | None):  # type: ignore[no-untyped-def]
    """The rows' expected order, computed in Python: the fields then the id tie-break."""
    parts = [p for p in (ordering or "").split(",") if p]
    keys: list[tuple[str, bool]] = []
    for part in parts:
        desc = part.startswith("-")
        name = part.lstrip("-")
        keys.append((name, desc))
        if name == "id":
            break
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", False))

    def value(item: dict[str, Any], name: str) -> Any:
        return Decimal(item[name]) if name == "price" else item[name]

    def order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(items)
        for name, desc in reversed(keys):
            out.sort(key=lambda item, n=name: value(item, n), reverse=desc)
        return out

    return order


def encode(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


async def offset_walk(
    client: httpx.AsyncClient, params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = await client.get("/books/", params={**params, "limit": limit, "offset": offset})
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["results"]
        if page["next"] is None:
            return rows
        assert query(page["next"])["offset"] == [str(offset + limit)]
        offset += limit


# The envelope and its links.


async def test_envelope_first_page_links_by_cursor(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await bulk(client, auth, [book(i) for i in range(25)])
    response = await client.get("/books/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 25
    assert body["previous"] is None
    assert body["results"] == created[:20]
    assert body["next"].startswith("http://testserver/books/?")
    assert "cursor" in query(body["next"])
    assert "offset" not in query(body["next"])
    page2 = (await client.get(rel(body["next"]))).json()
    assert "count" not in page2
    assert page2["results"] == created[20:]
    assert page2["next"] is None
    assert page2["previous"].startswith("http://testserver/books/?")


async def test_offset_links(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await bulk(client, auth, [book(i) for i in range(12)])
    first = (await client.get("/books/?limit=5&offset=0")).json()
    assert first["count"] == 12
    assert first["results"] == created[:5]
    assert first["previous"] is None
    assert query(first["next"]) == {"limit": ["5"], "offset": ["5"]}
    middle = (await client.get("/books/?limit=5&offset=5")).json()
    assert middle["results"] == created[5:10]
    assert query(middle["next"]) == {"limit": ["5"], "offset": ["10"]}
    assert query(middle["previous"])["offset"] in (["0"], None)
    last = (await client.get(rel(middle["next"]))).json()
    assert last["results"] == created[10:]
    assert last["next"] is None
    assert query(last["previous"]) == {"limit": ["5"], "offset": ["5"]}
    odd = (await client.get("/books/?limit=5&offset=3")).json()
    assert odd["results"] == created[3:8]
    assert query(odd["previous"]).get("offset", ["0"]) == ["0"]
    past = (await client.get("/books/?limit=5&offset=50")).json()
    assert past == {
        "count": 12,
        "next": None,
        "previous": past["previous"],
        "results": [],
    }


async def test_links_keep_filters_and_are_absolute(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await bulk(client, auth, [book(i, author="Ann") for i in range(6)] + [book(9, author="Bob")])
    body = (await client.get("/books/?author=Ann&limit=2&ordering=-price&fields=id")).json()
    assert body["count"] == 6
    params = query(body["next"])
    assert params["author"] == ["Ann"]
    assert params["limit"] == ["2"]
    assert params["ordering"] == ["-price"]
    assert params["fields"] == ["id"]
    assert body["next"].startswith("http://testserver/books/?")
    response = await client.get("/books/?limit=2&offset=2", headers={"Host": "example.org"})
    assert response.json()["next"].startswith("http://example.org/books/?")


@pytest.mark.parametrize(
    "sent",
    [
        "author=Ann%20Lee&limit=2&ordering=-price,id",  # kept as written
        "author=Ann+Lee&limit=2&offset=0&ordering=-price%2Cid",
        "author=Ann%20Lee&limit=2&ordering=-price,id&note=[x]",  # not plain: re-encoded
        "author=Ann%20Lee&limit=2&ordering=-price,id&%63ursor=&offs%65t=0",  # escaped names
        "author=Ann%20Lee&&limit=2&ordering=-price,id&offset=0&",
        "author=Ann%zzLee&limit=2&ordering=-price,id",  # a broken escape: re-encoded
    ],
)
async def test_links_keep_every_other_parameter(
    client: httpx.AsyncClient, auth: dict[str, str], sent: str
) -> None:
    await bulk(client, auth, [book(i, author="Ann Lee") for i in range(5)])
    author = "Ann%zzLee" if "%zz" in sent else "Ann Lee"
    if author != "Ann Lee":
        await bulk(client, auth, [book(i, author=author) for i in range(5)])
    body = (await client.get(f"/books/?{sent}")).json()
    assert len(body["results"]) == 2
    for link in (body["next"], (await client.get(rel(body["next"]))).json()["previous"]):
        assert link.startswith("http://testserver/books/?")
        params = query(link)
        assert params.pop("author") == [author]
        assert params.pop("limit") == ["2"]
        assert params.pop("ordering") == ["-price,id"]
        assert params.pop("note", ["[x]"]) == ["[x]"]
        assert set(params) <= {"cursor", "offset"} and len(params) == 1, link
        assert link.count("cursor=") + link.count("offset=") == 1, link
        assert " " not in link and "[" not in link


async def test_default_and_max_limit(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await bulk(client, auth, [book(i) for i in range(105)])
    assert len((await client.get("/books/")).json()["results"]) == 20
    assert len((await client.get("/books/?limit=100")).json()["results"]) == 100
    assert len((await client.get("/books/?limit=1")).json()["results"]) == 1


BAD_PARAMETERS = [
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=1.5", "limit"),
    ("offset=-1", "offset"),
    ("offset=abc", "offset"),
    ("offset=1e3", "offset"),
    ("limit=99999999999999999999999999999999999", "limit"),
    ("offset=-99999999999999999999999999999999999", "offset"),
    ("min_price=abc", "min_price"),
    ("min_price=NaN", "min_price"),
    ("max_price=inf", "max_price"),
    ("published_after=2023-02-30", "published_after"),
    ("published_before=yesterday", "published_before"),
    ("published_after=2023-02-03T00:00:00", "published_after"),
    ("ordering=isbn", "ordering"),
    ("ordering=title,-nope", "ordering"),
    ("ordering=price_cents", "ordering"),
    ("ordering=version", "ordering"),
    ("ordering=--title", "ordering"),
    ("fields=isbn", "fields"),
    ("fields=id,title,version", "fields"),
    ("fields=price_cents", "fields"),
    ("cursor=!!!", "cursor"),
    ("search=a%00b", "search"),
    ("author=a%00b", "author"),
    ("ordering=id,foo", "ordering"),
    ("limit=%EF%BC%95", "limit"),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_bad_parameters_are_400_naming_them(client: httpx.AsyncClient, method: str) -> None:
    failures = []
    for params, name in BAD_PARAMETERS:
        response = await client.request(method, f"/books/?{params}")
        if response.status_code != 400:
            failures.append((params, response.status_code, response.text))
        elif method == "GET":
            body = response.json()
            if not (
                isinstance(body.get(name), list)
                and body[name]
                and all(isinstance(m, str) for m in body[name])
            ):
                failures.append((params, body))
    assert failures == []


EXTREME_PARAMETERS = [
    "offset=12345678901234567890123",
    "offset=9007199254740993",
    "min_price=1e999",
    "max_price=1e999",
    "min_price=-1e999",
    "max_price=-1e999",
    "min_price=1e-999",
    "min_price=99999999999999999999999",
    "max_price=-99999999999999999999999",
    "min_price=1e99999999999",
    "max_price=0.0000000000000000000000000000000000001",
    "published_after=9999-12-31",
    "published_before=0001-01-01",
    "limit=0000000000000000000000000000000000000000005",
    "offset=%2B5",
]


async def test_extreme_parameters_are_never_5xx(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await bulk(client, auth, [book(i) for i in range(3)])
    failures = []
    for params in EXTREME_PARAMETERS:
        response = await client.get(f"/books/?{params}")
        if response.status_code not in (200, 400) or not isinstance(response.json(), dict):
            failures.append((params, response.status_code, response.text))
    assert failures == []


async def test_blank_parameters_are_ignored_as_drf_does(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await bulk(client, auth, [book(i) for i in range(3)])
    for param in (
        "limit",
        "offset",
        "min_price",
        "max_price",
        "published_after",
        "author",
        "ordering",
        "search",
        "fields",
        "cursor",
    ):
        response = await client.get(f"/books/?{param}=")
        assert response.status_code == 200, (param, response.text)
        assert response.json()["count"] == 3, param


async def test_huge_min_price_returns_nothing_and_huge_max_everything(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await bulk(client, auth, [book(i) for i in range(3)])
    assert (await client.get("/books/?min_price=1e999")).json()["count"] == 0
    assert (await client.get("/books/?max_price=1e999")).json()["count"] == 3
    assert (await client.get("/books/?min_price=-1e999")).json()["count"] == 3


async def test_cursor_and_offset_together_is_400(client: httpx.AsyncClient) -> None:
    cursor = encode({"o": "id", "p": [1], "b": False})
    response = await client.get(f"/books/?cursor={cursor}&offset=0")
    assert response.status_code == 400


# Filters.


async def test_author_is_exact_and_case_sensitive(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    wanted = await create(client, auth, book(1, author="  Ann Lee  "))
    await bulk(
        client,
        auth,
        [
            book(2, author="ann lee"),
            book(3, author="Ann Leeds"),
            book(4, author="Ann"),
            book(5, author="ANN LEE"),
        ],
    )
    response = await client.get("/books/", params={"author": "Ann Lee"})
    assert response.json()["count"] == 1
    assert response.json()["results"] == [wanted]
    assert (await client.get("/books/", params={"author": "Ann Le"})).json()["count"] == 0
    assert (await client.get("/books/", params={"author": "Ann%"})).json()["count"] == 0
    assert (await client.get("/books/", params={"author": " Ann Lee "})).json()["count"] == 0


SEARCH_BOOKS = [
    ("The Hobbit", "J. R. R. Tolkien"),
    ("Dune", "Frank Herbert"),
    ("Children of Dune", "Frank Herbert"),
    ("100% Pure", "Ann Percent"),
    ("snake_case handbook", "Py Thon"),
    ("snakeXcase handbook", "Py Thon"),
    ("Ab", "Zed"),
    ("Война и мир", "Лев Толстой"),
    ("Élan vital", "Henri Bergson"),
    ('Quote "this"', "Back\\slash"),
]


async def _load_search_books(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, int]:
    created = await bulk(
        client, auth, [book(i, title=t, author=a) for i, (t, a) in enumerate(SEARCH_BOOKS)]
    )
    return {item["title"]: item["id"] for item in created}


def _expected_search(term: str) -> set[str]:
    """A case-insensitive substring of the title or the author.

    Case is folded for ASCII letters only, as DRF's ``icontains`` on SQLite and PostgreSQL's
    ILIKE under the "C" collation do; the rule must not depend on the term's length."""

    def fold(text: str) -> str:
        return "".join(c.lower() if c.isascii() else c for c in text)

    return {t for t, a in SEARCH_BOOKS if fold(term) in fold(t) or fold(term) in fold(a)}


SEARCH_TERMS = [
    # 1-2 characters (a LIKE scan) and 3+ characters (the trigram index): same rules.
    "d",
    "D",
    "du",
    "DU",
    "dune",
    "DUNE",
    "uNe",
    "herb",
    "HERBERT",
    "ert",
    "%",
    "_",
    "%%",
    "0%",
    "0% ",
    "e_c",
    "_case",
    "e%",
    "\\",
    "\\s",
    "back\\",
    '"',
    '"this"',
    "xcase",
    "ab",
    "AB",
    "zed",
    "во",
    "Во",
    "вой",
    "Вой",
    "ВОЙНА",
    "война",
    "мир",
    "МИР",
    "É",
    "é",
    "él",
    "Él",
    "éla",
    "Éla",
    "ÉLAN",
    "j. r",
    "r. t",
    "k h",
    "of d",
    "zzz",
    "",
    " ",
]


async def test_search_is_case_insensitive_substring(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    by_title = await _load_search_books(client, auth)
    failures = []
    for term in SEARCH_TERMS:
        response = await client.get("/books/", params={"search": term, "limit": 100})
        assert response.status_code == 200, term
        body = response.json()
        got = {item["title"] for item in body["results"]}
        expected = _expected_search(term.strip()) if term.strip() else set(by_title)
        if got != expected or body["count"] != len(expected):
            failures.append((term, sorted(got), sorted(expected), body["count"]))
    assert failures == []


async def test_search_combines_with_other_filters_and_cursor(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await _load_search_books(client, auth)
    params = {"search": "dune", "author": "Frank Herbert"}
    both = (await client.get("/books/", params=params)).json()
    assert {b["title"] for b in both["results"]} == {"Dune", "Children of Dune"}
    page = (await client.get("/books/", params={"search": "dune", "limit": 1})).json()
    assert page["count"] == 2
    rest = (await client.get(rel(page["next"]))).json()
    assert len(rest["results"]) == 1
    assert rest["next"] is None
    titles = {page["results"][0]["title"], rest["results"][0]["title"]}
    assert titles == {"Dune", "Children of Dune"}


async def test_search_follows_updates_and_deletes(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await create(client, auth, book(1, title="Old Name"))
    assert (await client.get("/books/?search=old")).json()["count"] == 1
    await client.patch(f"/books/{created['id']}/", json={"title": "New Name"}, headers=auth)
    assert (await client.get("/books/?search=old")).json()["count"] == 0
    assert (await client.get("/books/?search=new")).json()["count"] == 1
    await client.delete(f"/books/{created['id']}/", headers=auth)
    assert (await client.get("/books/?search=new")).json()["count"] == 0


async def test_date_bounds_are_inclusive(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    dates = ["2020-01-01", "2020-06-15", "2020-12-31", "2021-01-01"]
    await bulk(client, auth, [book(i, published_date=d) for i, d in enumerate(dates)])

    async def got(params: dict[str, str]) -> list[str]:
        body = (await client.get("/books/", params=params)).json()
        return sorted(b["published_date"] for b in body["results"])

    assert await got({"published_after": "2020-06-15"}) == dates[1:]
    assert await got({"published_before": "2020-06-15"}) == dates[:2]
    both = {"published_after": "2020-06-15", "published_before": "2020-12-31"}
    assert await got(both) == dates[1:3]
    assert await got({"published_after": "2020-06-16", "published_before": "2020-12-30"}) == []
    assert await got({"published_after": "2021-01-02"}) == []
    assert await got({"published_after": "2021-01-01", "published_before": "2020-01-01"}) == []


async def test_price_bounds_are_inclusive(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    prices = ["0.00", "9.99", "10.00", "10.01", "100.00", "999.99"]
    await bulk(client, auth, [book(i, price=p) for i, p in enumerate(prices)])

    async def got(params: dict[str, str]) -> list[str]:
        body = (await client.get("/books/", params=params)).json()
        assert body["count"] == len(body["results"])
        return sorted((b["price"] for b in body["results"]), key=Decimal)

    assert await got({"min_price": "10"}) == prices[2:]
    assert await got({"min_price": "10.00"}) == prices[2:]
    assert await got({"max_price": "10"}) == prices[:3]
    assert await got({"min_price": "9.995"}) == prices[2:]
    assert await got({"max_price": "10.005"}) == prices[:3]
    assert await got({"min_price": "10", "max_price": "10"}) == ["10.00"]
    assert await got({"min_price": "0", "max_price": "0"}) == ["0.00"]
    assert await got({"min_price": "999.99"}) == ["999.99"]
    assert await got({"max_price": "-1"}) == []
    assert await got({"min_price": " 10 "}) == prices[2:]
    # Bounds are exact however many digits they carry: no rounding to 28 places, no 500.
    assert await got({"min_price": "1e-99999999999"}) == prices[1:]
    assert await got({"max_price": "-1e-99999999999"}) == []
    assert await got({"min_price": "9.9800000000000000000000000000000001"}) == prices[1:]
    assert await got({"min_price": "9.9900000000000000000000000000000001"}) == prices[2:]
    assert await got({"max_price": "10.009999999999999999999999999999999"}) == prices[:3]
    assert await got({"min_price": "1e99999999999"}) == []
    assert await got({"max_price": "1e99999999999"}) == prices
    assert await got({"min_price": "-1e99999999999"}) == prices


async def test_filters_combine(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await bulk(
        client,
        auth,
        [
            book(1, author="A", price="5.00", published_date="2020-01-01"),
            book(2, author="A", price="15.00", published_date="2020-01-01"),
            book(3, author="A", price="15.00", published_date="2019-01-01"),
            book(4, author="B", price="15.00", published_date="2020-01-01"),
        ],
    )
    body = (
        await client.get(
            "/books/", params={"author": "A", "min_price": "10", "published_after": "2019-06-01"}
        )
    ).json()
    assert body["count"] == 1
    assert body["results"][0]["price"] == "15.00"
    assert body["results"][0]["author"] == "A"
    assert body["results"][0]["published_date"] == "2020-01-01"


# Ordering and sparse fieldsets.

ORDERINGS = [
    None,
    "id",
    "-id",
    "title",
    "-title",
    "author",
    "-published_date",
    "published_date",
    "price",
    "-price",
    "-price,title",
    "author,-published_date",
    "author,price,-title",
    "published_date,-id",
    "title,id,price",
]


async def test_ordering_with_id_tie_break(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await bulk(client, auth, [book(i) for i in range(60)])
    for ordering in ORDERINGS:
        params = {"limit": 100, **({"ordering": ordering} if ordering else {})}
        body = (await client.get("/books/", params=params)).json()
        assert body["count"] == 60
        assert ids(body["results"]) == ids(sort_key(ordering)(created)), ordering


async def test_ordering_ignores_blank_entries_and_spaces(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await bulk(client, auth, [book(i) for i in range(10)])
    params: dict[str, Any] = {"ordering": " -price , ,title ", "limit": 50}
    body = (await client.get("/books/", params=params)).json()
    assert ids(body["results"]) == ids(sort_key("-price,title")(created))
    body = (await client.get("/books/", params={"ordering": "", "limit": 50})).json()
    assert ids(body["results"]) == ids(created)


async def test_sparse_fieldsets(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await bulk(client, auth, [book(i) for i in range(3)])
    body = (await client.get("/books/?fields=title,id")).json()
    assert body["results"] == [{"id": c["id"], "title": c["title"]} for c in created]
    body = (await client.get("/books/?fields=price")).json()
    assert body["results"] == [{"price": c["price"]} for c in created]
    body = (await client.get("/books/?fields=price&ordering=-price&limit=2")).json()
    assert all(set(item) == {"price"} for item in body["results"])
    follow = (await client.get(rel(body["next"]))).json()
    assert all(set(item) == {"price"} for item in follow["results"])
    assert len(body["results"]) + len(follow["results"]) == 3
    body = (await client.get("/books/?fields=")).json()
    assert body["results"] == created
    body = (await client.get("/books/?fields=id,title,author,published_date,price")).json()
    assert body["results"] == created


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
