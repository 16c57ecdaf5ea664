"""The list's filters (author, search, dates, prices), ordering with its id tie-break, and
sparse fieldsets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from helpers import book, bulk, create, ids, rel, sort_key

pytestmark = pytest.mark.asyncio


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
