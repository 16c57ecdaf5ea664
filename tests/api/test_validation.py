"""Validation exactly as the contract's field table, with DRF's error shapes and messages.
Bodies that are not JSON objects, and media types: tests/api/test_request_bodies.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import create

from api import errors as e

pytestmark = pytest.mark.asyncio

TOO_LONG = e.MAX_LENGTH.format(n=255)
MAX_DIGITS = e.MAX_DIGITS.format(n=5)
MAX_PLACES = e.MAX_PLACES.format(n=2)
MAX_WHOLE = e.MAX_WHOLE.format(n=3)
NEGATIVE = e.MIN_VALUE.format(n=0)


async def post(client: httpx.AsyncClient, auth: dict[str, str], data: Any) -> httpx.Response:
    return await client.post("/books/", json=data, headers=auth)


async def assert_nothing_created(client: httpx.AsyncClient) -> None:
    assert (await client.get("/books/")).json()["count"] == 0


async def test_empty_object_lists_every_required_field(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await post(client, auth, {})
    assert response.status_code == 400
    assert response.json() == {
        "title": [e.REQUIRED],
        "author": [e.REQUIRED],
        "published_date": [e.REQUIRED],
        "price": [e.REQUIRED],
    }
    await assert_nothing_created(client)


async def test_empty_body_is_every_field_required(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/books/", content=b"", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"title", "author", "published_date", "price"}


async def test_missing_field(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    for field in ("title", "author", "published_date", "price"):
        data = {k: v for k, v in book_data.items() if k != field}
        response = await post(client, auth, data)
        assert response.status_code == 400, field
        assert response.json() == {field: [e.REQUIRED]}
    await assert_nothing_created(client)


BAD_VALUES: list[tuple[str, Any, str]] = [
    ("title", "", e.BLANK),
    ("title", "   \t\n ", e.BLANK),
    ("author", "", e.BLANK),
    ("author", "  ", e.BLANK),
    ("title", None, e.NULL),
    ("author", None, e.NULL),
    ("published_date", None, e.NULL),
    ("price", None, e.NULL),
    ("title", True, e.NOT_STRING),
    ("title", False, e.NOT_STRING),
    ("title", ["Dune"], e.NOT_STRING),
    ("title", {"x": 1}, e.NOT_STRING),
    ("author", [], e.NOT_STRING),
    ("author", {}, e.NOT_STRING),
    ("price", True, e.INVALID_NUMBER),
    ("price", [12], e.INVALID_NUMBER),
    ("price", {"amount": 12}, e.INVALID_NUMBER),
    ("price", "", e.INVALID_NUMBER),
    ("price", "abc", e.INVALID_NUMBER),
    ("price", "NaN", e.INVALID_NUMBER),
    ("price", "Infinity", e.INVALID_NUMBER),
    ("price", "-inf", e.INVALID_NUMBER),
    ("price", "12,50", e.INVALID_NUMBER),
    ("price", "1234.567", MAX_DIGITS),
    ("price", 1234.567, MAX_DIGITS),
    ("price", "12.345", MAX_PLACES),
    ("price", 12.345, MAX_PLACES),
    ("price", "0.001", MAX_PLACES),
    ("price", "1234.5", MAX_WHOLE),
    ("price", 1000, MAX_WHOLE),
    ("price", "1000", MAX_WHOLE),
    ("price", "1E+3", MAX_WHOLE),
    ("price", "-1", NEGATIVE),
    ("price", -1, NEGATIVE),
    ("price", "-0.01", NEGATIVE),
    ("published_date", "2023-02-30", e.BAD_DATE),
    ("published_date", "2023-13-01", e.BAD_DATE),
    ("published_date", "2023-2-3", e.BAD_DATE),
    ("published_date", 20230203, e.BAD_DATE),
    ("published_date", "20230203", e.BAD_DATE),
    ("published_date", "2023-02-03T10:00:00", e.BAD_DATE),
    ("published_date", "2023-02-03T10:00:00Z", e.BAD_DATE),
    ("published_date", "2023-02-03 10:00", e.BAD_DATE),
    ("published_date", "03/02/2023", e.BAD_DATE),
    ("published_date", "", e.BAD_DATE),
    ("published_date", True, e.BAD_DATE),
    ("published_date", ["2023-02-03"], e.BAD_DATE),
    ("published_date", {}, e.BAD_DATE),
]


@pytest.mark.parametrize("field", ["title", "author", "published_date", "price"])
async def test_bad_values(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], field: str
) -> None:
    failures = []
    for name, value, message in BAD_VALUES:
        if name != field:
            continue
        response = await post(client, auth, {**book_data, field: value})
        if response.status_code != 400 or response.json() != {field: [message]}:
            failures.append((value, response.status_code, response.text))
    assert failures == []
    await assert_nothing_created(client)


async def test_every_bad_field_reported_at_once(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await post(
        client,
        auth,
        {"title": "", "author": None, "published_date": "2023-02-30", "price": "1234.567"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "title": [e.BLANK],
        "author": [e.NULL],
        "published_date": [e.BAD_DATE],
        "price": [MAX_DIGITS],
    }


@pytest.mark.parametrize("field", ["title", "author"])
async def test_length_limit_counts_after_trimming(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], field: str
) -> None:
    book_data[field] = "x" * 256
    response = await post(client, auth, book_data)
    assert response.status_code == 400
    assert response.json() == {field: [TOO_LONG]}

    book_data[field] = "  " + "x" * 255 + "  "
    created = await create(client, auth, book_data)
    assert created[field] == "x" * 255

    book_data[field] = "é" * 255  # characters, not bytes
    created = await create(client, auth, book_data)
    assert created[field] == "é" * 255


async def test_titles_and_authors_are_trimmed(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    book_data.update(title="  Dune \n", author="\tFrank Herbert  ")
    created = await create(client, auth, book_data)
    assert created["title"] == "Dune"
    assert created["author"] == "Frank Herbert"
    assert (await client.get(f"/books/{created['id']}/")).json()["title"] == "Dune"
    patched = await client.patch(
        f"/books/{created['id']}/", json={"title": "  Messiah  "}, headers=auth
    )
    assert patched.json()["title"] == "Messiah"


async def test_numbers_are_accepted_as_strings_like_drf(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    book_data.update(title=1984, author=42)
    created = await create(client, auth, book_data)
    assert created["title"] == "1984"
    assert created["author"] == "42"


PRICES_ACCEPTED = [
    ('"12.5"', "12.50"),
    ("12.5", "12.50"),
    ('"12.50"', "12.50"),
    ("12", "12.00"),
    ('"0"', "0.00"),
    ("0", "0.00"),
    ("0.1", "0.10"),
    ("0.30", "0.30"),
    ('"999.99"', "999.99"),
    ("999.99", "999.99"),
    ('" 7.5 "', "7.50"),
    ("1E+2", "100.00"),
    ('"-0"', "0.00"),
]


def raw_book(price: str) -> bytes:
    """A book body with ``price`` spliced in as raw JSON text (a number stays a number)."""
    body = f'{{"title": "T", "author": "A", "published_date": "2020-01-01", "price": {price}}}'
    return body.encode()


async def post_raw(client: httpx.AsyncClient, auth: dict[str, str], body: bytes) -> httpx.Response:
    return await client.post(
        "/books/", content=body, headers={**auth, "Content-Type": "application/json"}
    )


async def test_price_accepted_and_normalised(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    failures = []
    for raw, expected in PRICES_ACCEPTED:
        response = await post_raw(client, auth, raw_book(raw))
        if response.status_code != 201 or response.json()["price"] != expected:
            failures.append((raw, response.status_code, response.text))
            continue
        again = await client.get(f"/books/{response.json()['id']}/")
        if again.json()["price"] != expected:
            failures.append((raw, "stored", again.json()["price"]))
    assert failures == []


async def test_price_never_passes_through_a_float(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # 0.1 + 0.2 is 0.30000000000000004 as a float; as a decimal these are exact.
    body = b'{"title": "T", "author": "A", "published_date": "2020-01-01", "price": 999.99}'
    response = await client.post(
        "/books/", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.json()["price"] == "999.99"
    # A float with more places than allowed must be rejected, not rounded.
    body = raw_book("0.30000000000000004")
    response = await client.post(
        "/books/", content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"price": [MAX_DIGITS]}


async def test_non_json_numbers_are_parse_errors(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for raw in ("NaN", "Infinity", "-Infinity"):
        response = await post_raw(client, auth, raw_book(raw))
        assert response.status_code == 400, raw
        assert response.json()["detail"].startswith("JSON parse error - "), raw
    await assert_nothing_created(client)


async def test_huge_price_numbers_are_field_errors(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for raw in ("1e999", "-1e999", "123456789012345678901234567890", '"1e99999999999"'):
        response = await post_raw(client, auth, raw_book(raw))
        assert response.status_code == 400, (raw, response.text)
        assert list(response.json()) == ["price"], raw
    await assert_nothing_created(client)


async def test_leap_day_is_a_real_date(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, {**book_data, "published_date": "2024-02-29"})
    assert created["published_date"] == "2024-02-29"
    response = await post(client, auth, {**book_data, "published_date": "2023-02-29"})
    assert response.json() == {"published_date": [e.BAD_DATE]}


async def test_unknown_fields_and_id_are_ignored(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, {**book_data, "id": 999, "isbn": "x", "version": 50})
    assert created["id"] != 999
    assert set(created) == {"id", "title", "author", "published_date", "price"}
    assert (await client.get("/books/999/")).status_code == 404
    book_id = created["id"]
    put = await client.put(
        f"/books/{book_id}/", json={**book_data, "id": 12345, "extra": [1]}, headers=auth
    )
    assert put.status_code == 200
    assert put.json()["id"] == book_id
    patched = await client.patch(f"/books/{book_id}/", json={"id": 777}, headers=auth)
    assert patched.status_code == 200
    assert patched.json() == put.json()
    assert (await client.get("/books/777/")).status_code == 404


UPDATE_ERRORS: list[tuple[str, Any, str]] = [
    ("title", "", e.BLANK),
    ("title", None, e.NULL),
    ("title", "x" * 256, TOO_LONG),
    ("author", "  ", e.BLANK),
    ("price", "12.345", MAX_PLACES),
    ("price", -1, NEGATIVE),
    ("price", "abc", e.INVALID_NUMBER),
    ("published_date", "2023-02-30", e.BAD_DATE),
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_updates_validate_the_same_way(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    created = await create(client, auth, book_data)
    path = f"/books/{created['id']}/"
    for field, value, message in UPDATE_ERRORS:
        body = {**book_data, field: value} if method == "PUT" else {field: value}
        response = await client.request(method, path, json=body, headers=auth)
        assert response.status_code == 400, (field, value)
        assert response.json() == {field: [message]}, (field, value)
    assert (await client.get(path)).json() == created


async def test_null_character_in_title_is_rejected(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    response = await post(client, auth, {**book_data, "title": "a\x00b"})
    assert response.status_code == 400
    assert list(response.json()) == ["title"]


async def test_a_json_number_with_trailing_zeros_is_accepted_as_drf_does(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    # DRF reads JSON numbers as floats: 12.500 is 12.5 to it. The string "12.500" keeps
    # its three places and is refused, as DRF refuses it.
    for number, stored in ((12.500, "12.50"), (100.000, "100.00")):
        raw = json.dumps({**book_data, "price": "PRICE"}).replace('"PRICE"', f"{number:.3f}")
        response = await client.post(
            "/books/", content=raw, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text
        assert response.json()["price"] == stored
    response = await client.post("/books/", json={**book_data, "price": "12.500"}, headers=auth)
    assert response.status_code == 400


async def test_dates_take_ascii_digits_only(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    arabic = "\u0662\u0660\u0662\u0660-\u0660\u0661-\u0660\u0661"  # 2020-01-01
    response = await client.post(
        "/books/", json={**book_data, "published_date": arabic}, headers=auth
    )
    assert response.status_code == 400
    assert list(response.json()) == ["published_date"]
    assert (await client.get(f"/books/?published_after={arabic}")).status_code == 400
