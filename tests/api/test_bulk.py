"""Bulk create: a JSON array of up to 1,000 books, all-or-nothing, in request order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import book, book_fields, ids

from api import errors as e
from api.serializers import MAX_BULK

pytestmark = pytest.mark.asyncio


async def _count(client: httpx.AsyncClient) -> int:
    return int((await client.get("/books/")).json()["count"])


async def test_bulk_returns_201_list_in_request_order(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    items = [book(i, title=f"Book {n}") for i, n in enumerate([5, 3, 9, 1, 7])]
    response = await client.post("/books/", json=items, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert isinstance(created, list)
    assert [book_fields(c) for c in created] == items
    assert ids(created) == sorted(ids(created)) and len(set(ids(created))) == 5
    assert "location" not in response.headers
    for item in created:
        assert (await client.get(f"/books/{item['id']}/")).json() == item
    assert (await client.get("/books/?limit=10")).json()["results"] == created


async def test_bulk_of_one(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/books/", json=[book(1)], headers=auth)
    assert response.status_code == 201
    assert [book_fields(c) for c in response.json()] == [book(1)]


async def test_bulk_of_the_limit(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    items = [book(i, title=f"Book {i:04d}") for i in range(MAX_BULK)]
    response = await client.post("/books/", json=items, headers=auth)
    assert response.status_code == 201, response.text[:300]
    created = response.json()
    assert len(created) == MAX_BULK
    assert [c["title"] for c in created] == [i["title"] for i in items]
    assert await _count(client) == MAX_BULK


async def test_bulk_over_the_limit_names_it_and_creates_nothing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    items = [book(i) for i in range(MAX_BULK + 1)]
    response = await client.post("/books/", json=items, headers=auth)
    assert response.status_code == 400
    body = response.json()
    message = f"Ensure this field has no more than {MAX_BULK} elements."
    assert body == {"non_field_errors": [message]}
    assert "1000" in json.dumps(body)
    assert await _count(client) == 0


async def test_empty_array_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/books/", json=[], headers=auth)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["This list may not be empty."]}
    assert await _count(client) == 0


@pytest.mark.parametrize("bad_index", [0, 2, 499, 999])
async def test_one_bad_item_rejects_all_with_its_index(
    client: httpx.AsyncClient, auth: dict[str, str], bad_index: int
) -> None:
    size = 1000 if bad_index >= 5 else 5
    items = [book(i) for i in range(size)]
    items[bad_index] = {**items[bad_index], "price": "1234.567"}
    response = await client.post("/books/", json=items, headers=auth)
    assert response.status_code == 400
    assert response.json() == {str(bad_index): {"price": [e.MAX_DIGITS.format(n=5)]}}
    assert await _count(client) == 0


async def test_every_bad_item_and_field_is_named(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    items: list[Any] = [book(i) for i in range(6)]
    items[1] = {"title": "", "author": "A", "published_date": "2023-02-30", "price": "1"}
    items[3] = {"title": "T"}
    items[4] = 42
    items[5] = [book(5)]
    response = await client.post("/books/", json=items, headers=auth)
    assert response.status_code == 400
    assert response.json() == {
        "1": {"title": [e.BLANK], "published_date": [e.BAD_DATE]},
        "3": {"author": [e.REQUIRED], "published_date": [e.REQUIRED], "price": [e.REQUIRED]},
        "4": {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
        "5": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    }
    assert await _count(client) == 0


@pytest.mark.parametrize(("item", "kind"), [(None, "NoneType"), ("x", "str"), (True, "bool")])
async def test_non_object_items(
    client: httpx.AsyncClient, auth: dict[str, str], item: Any, kind: str
) -> None:
    response = await client.post("/books/", json=[book(1), item], headers=auth)
    assert response.status_code == 400
    assert response.json() == {
        "1": {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    }
    assert await _count(client) == 0


async def test_bulk_prices_as_numbers_never_pass_through_floats(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = json.dumps([book(1), book(2), book(3)])
    body = body.replace('"price": "', '"price": ').replace('"}', "}")
    # Every price is now a JSON number; add one that a float would round.
    extra = '{"title": "F", "author": "A", "published_date": "2020-01-01", "price": 0.1}'
    body = body[:-1] + ", " + extra + "]"
    response = await client.post(
        "/books/", content=body.encode(), headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    prices = [c["price"] for c in response.json()]
    assert prices == [book(1)["price"], book(2)["price"], book(3)["price"], "0.10"]


async def test_bulk_ignores_ids_and_unknown_fields(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/books/", json=[{**book(1), "id": 500, "x": 1}, {**book(2), "id": 500}], headers=auth
    )
    assert response.status_code == 201
    created = response.json()
    assert len(set(ids(created))) == 2 and 500 not in ids(created)
    assert all(set(c) == {"id", "title", "author", "published_date", "price"} for c in created)


async def test_bulk_needs_a_token(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/books/", json=[book(1)])
    assert response.status_code == 401
    response = await client.post("/books/", json=[book(1)], headers={"Authorization": "Token x"})
    assert response.status_code == 401
    assert await _count(client) == 0


async def test_bulk_then_more_bulks_keep_ids_increasing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first = (await client.post("/books/", json=[book(i) for i in range(3)], headers=auth)).json()
    bad = await client.post("/books/", json=[book(9), {"title": ""}], headers=auth)
    assert bad.status_code == 400
    second = (await client.post("/books/", json=[book(i) for i in range(3)], headers=auth)).json()
    assert ids(second)[0] > ids(first)[-1]
    assert await _count(client) == 6


async def test_bulk_body_not_json_or_not_list_of_objects(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/books/", content=b"[{]", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")
    assert await _count(client) == 0
