"""IsAuthenticatedOrReadOnly with TokenAuthentication: 401 bodies, WWW-Authenticate, open reads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import create

from api import errors as e
from db import tokens

pytestmark = pytest.mark.asyncio

NOT_PROVIDED = {"detail": e.NOT_AUTHENTICATED}
INVALID = {"detail": e.INVALID_TOKEN}


async def _writes(
    client: httpx.AsyncClient, book_id: int, book_data: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    return [
        await client.post("/books/", json=book_data, headers=headers),
        await client.post("/books/", json=[book_data, book_data], headers=headers),
        await client.put(f"/books/{book_id}/", json={**book_data, "title": "X"}, headers=headers),
        await client.patch(f"/books/{book_id}/", json={"title": "X"}, headers=headers),
        await client.delete(f"/books/{book_id}/", headers=headers),
    ]


async def _assert_unchanged(client: httpx.AsyncClient, created: dict[str, Any]) -> None:
    body = (await client.get("/books/")).json()
    assert body["count"] == 1
    assert body["results"] == [created]


NOT_PROVIDED_HEADERS: list[str | None] = [
    None,
    "",
    "Basic dXNlcjpwYXNz",
    "Digest username=x",
    "Tokenabc",
    "Bearerabc",
]


async def test_missing_credentials_is_401_not_provided(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    for header in NOT_PROVIDED_HEADERS:
        headers = {} if header is None else {"Authorization": header}
        for response in await _writes(client, created["id"], book_data, headers):
            assert response.status_code == 401, (header, response.request.method, response.text)
            assert response.json() == NOT_PROVIDED, header
            assert response.headers["www-authenticate"] == "Token"
            assert response.headers.get("x-request-id")
    await _assert_unchanged(client, created)


INVALID_HEADERS = [
    "Token wrong",
    "Bearer wrong",
    "Token",
    "Bearer",
    "Token   ",
    "Token a b",
    "Bearer a b",
    "Token " + "x" * 5000,
    "Token ключ",
    "Token \u00e9t\u00e9",
    "Token {token}x",
    "Token x{token}",
    "Token {token_upper}",
    "Bearer {token} extra",
]


async def test_bad_token_is_401_invalid(
    client: httpx.AsyncClient, auth: dict[str, str], token: str, book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    for header in INVALID_HEADERS:
        value = header.format(token=token, token_upper=token.upper())
        headers: Any = {"Authorization": value.encode()}  # bytes: UTF-8 sent as is
        for response in await _writes(client, created["id"], book_data, headers):
            assert response.status_code == 401, (value[:40], response.request.method, response.text)
            assert response.json() == INVALID, value[:40]
            assert response.headers["www-authenticate"] == "Token"
    await _assert_unchanged(client, created)


async def test_both_schemes_in_any_case_are_accepted(
    client: httpx.AsyncClient, token: str, book_data: dict[str, Any]
) -> None:
    for scheme in ("Token", "Bearer", "token", "bearer", "TOKEN", "BeArEr"):
        headers = {"Authorization": f"{scheme} {token}"}
        created = await client.post("/books/", json=book_data, headers=headers)
        assert created.status_code == 201, (scheme, created.text)
        book_id = created.json()["id"]
        put = await client.put(f"/books/{book_id}/", json=book_data, headers=headers)
        assert put.status_code == 200, scheme
        patched = await client.patch(f"/books/{book_id}/", json={"title": "Y"}, headers=headers)
        assert patched.status_code == 200, scheme
        deleted = await client.delete(f"/books/{book_id}/", headers=headers)
        assert deleted.status_code == 204, scheme


async def test_surrounding_whitespace_in_header_is_tolerated(
    client: httpx.AsyncClient, token: str, book_data: dict[str, Any]
) -> None:
    response = await client.post(
        "/books/", json=book_data, headers={"Authorization": f"  Token   {token}  "}
    )
    assert response.status_code == 201


async def test_revoked_token_is_refused_at_once(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    await tokens.revoke_token(name="tester")
    for response in await _writes(client, created["id"], book_data, auth):
        assert response.status_code == 401
        assert response.json() == INVALID
        assert response.headers["www-authenticate"] == "Token"
    await _assert_unchanged(client, created)


async def test_other_tokens_keep_working_after_a_revocation(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    other = await tokens.create_token(name="other")
    await tokens.revoke_token(name="tester")
    response = await client.post(
        "/books/", json=book_data, headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 201


async def test_reads_stay_open(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    path = f"/books/{created['id']}/"
    for headers in (
        {},
        {"Authorization": "Token wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic x"},
        auth,
    ):
        for method, url in [
            ("GET", "/"),
            ("GET", "/books/"),
            ("GET", path),
            ("HEAD", "/books/"),
            ("HEAD", path),
            ("HEAD", "/"),
            ("OPTIONS", "/books/"),
            ("OPTIONS", path),
            ("OPTIONS", "/"),
        ]:
            response = await client.request(method, url, headers=headers)
            assert response.status_code == 200, (headers, method, url)


async def test_auth_comes_before_body_checks(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    """An anonymous client learns nothing about the body: 401 first, as DRF answers."""
    created = await create(client, auth, book_data)
    for response in [
        await client.post("/books/", content=b"{", headers={"Content-Type": "application/json"}),
        await client.post("/books/", content=b"x", headers={"Content-Type": "text/plain"}),
        await client.patch(f"/books/{created['id']}/", json={"price": -1}),
    ]:
        assert response.status_code == 401
        assert response.json() == NOT_PROVIDED


async def test_key_is_long_random_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, token: str
) -> None:
    from db.models import ApiToken

    assert len(token) >= 40
    other = await tokens.create_token(name="second")
    assert other != token
    rows = await ApiToken.all()
    for row in rows:
        assert row.key_hash not in (token, other)
        assert token not in str(row.__dict__) and other not in str(row.__dict__)
    assert {r.key_hash for r in rows} == {tokens.hash_key(token), tokens.hash_key(other)}


async def test_write_records_last_use(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    (before,) = await tokens.list_tokens()
    assert before.last_used_at is None
    await create(client, auth, book_data)
    (after,) = await tokens.list_tokens()
    assert after.last_used_at is not None
    await client.get("/books/", headers=auth)  # reads do not touch the token table


async def test_a_bad_token_is_401_whatever_the_write_would_have_met(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    """The token is checked inside the write's own statement; every way that statement can
    touch no row (a missing or out-of-range book, a stale tag, an empty PATCH, a body that
    fails validation) still answers 401 first for a token that is not active."""
    created = await create(client, auth, book_data)
    book = f"/books/{created['id']}/"
    await tokens.revoke_token(name="tester")
    stale = {**auth, "If-Match": '"999999-1"'}
    for response in [
        await client.patch("/books/999999/", json={"title": "X"}, headers=auth),
        await client.patch(f"/books/{2**40}/", json={"title": "X"}, headers=auth),
        await client.delete("/books/999999/", headers=auth),
        await client.delete(f"/books/{2**40}/", headers=auth),
        await client.patch(book, json={"title": "X"}, headers=stale),
        await client.delete(book, headers=stale),
        await client.patch(book, json={}, headers=auth),
        await client.patch(book, json={"price": -1}, headers=auth),
        await client.post("/books/", json={**book_data, "price": "x"}, headers=auth),
        await client.post("/books/", json=[book_data, {}], headers=auth),
        await client.post("/books/", content=b"{", headers=auth),
    ]:
        assert response.status_code == 401, (response.request.method, response.text)
        assert response.json() == INVALID
    await _assert_unchanged(client, created)


async def test_a_valid_token_meets_the_usual_answers(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    book = f"/books/{created['id']}/"
    stale = {**auth, "If-Match": '"999999-1"'}
    assert (await client.patch("/books/999999/", json={}, headers=auth)).status_code == 404
    assert (await client.delete("/books/999999/", headers=auth)).status_code == 404
    assert (await client.patch(book, json={"title": "X"}, headers=stale)).status_code == 412
    assert (await client.patch(book, json={"price": -1}, headers=auth)).status_code == 400
    assert (await client.patch(book, json={}, headers=auth)).status_code == 200
    assert (await client.delete(book, headers=auth)).status_code == 204
