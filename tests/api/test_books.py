"""Every route of the contract's Endpoints table, on the happy path."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import DETAIL_ALLOW, JSON_TYPE, LIST_ALLOW, ROOT_ALLOW, book, create

pytestmark = pytest.mark.asyncio


async def test_api_root_links_to_books(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JSON_TYPE)
    assert response.json() == {"books": "http://testserver/books/"}


async def test_api_root_uses_the_request_host(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Host": "api.example.com:8080"})
    assert response.json() == {"books": "http://api.example.com:8080/books/"}


async def test_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/books/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JSON_TYPE)
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_create_returns_201_location_etag(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    response = await client.post("/books/", json=book_data, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int) and body["id"] > 0
    assert body == {"id": body["id"], **book_data}
    assert response.headers["location"] == f"http://testserver/books/{body['id']}/"
    tag = response.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    got = await client.get(f"/books/{body['id']}/")
    assert got.status_code == 200
    assert got.json() == body
    assert got.headers["etag"] == tag


async def test_create_then_list(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    first = await create(client, auth, book(1))
    second = await create(client, auth, book(2))
    response = await client.get("/books/")
    body = response.json()
    assert body["count"] == 2
    assert body["results"] == [first, second]


async def test_retrieve_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/books/1/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


async def test_put_replaces_every_field(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    new = {
        "title": "Emma",
        "author": "Jane Austen",
        "published_date": "1815-12-23",
        "price": "7.99",
    }
    response = await client.put(f"/books/{created['id']}/", json=new, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": created["id"], **new}
    assert (await client.get(f"/books/{created['id']}/")).json() == {"id": created["id"], **new}


async def test_put_requires_every_field(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.put(f"/books/{created['id']}/", json={"title": "X"}, headers=auth)
    assert response.status_code == 400
    assert response.json() == {
        "author": ["This field is required."],
        "published_date": ["This field is required."],
        "price": ["This field is required."],
    }
    assert (await client.get(f"/books/{created['id']}/")).json() == created


async def test_patch_changes_only_given_fields(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.patch(f"/books/{created['id']}/", json={"price": 9}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {**created, "price": "9.00"}
    assert (await client.get(f"/books/{created['id']}/")).json() == {**created, "price": "9.00"}


async def test_patch_empty_body_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.patch(f"/books/{created['id']}/", json={}, headers=auth)
    assert response.status_code == 200
    assert response.json() == created


async def test_delete_is_204_empty_then_404(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.delete(f"/books/{created['id']}/", headers=auth)
    assert response.status_code == 204
    assert response.content == b""
    assert "x-request-id" in response.headers
    assert (await client.get(f"/books/{created['id']}/")).status_code == 404
    again = await client.delete(f"/books/{created['id']}/", headers=auth)
    assert again.status_code == 404
    assert again.json() == {"detail": "Not found."}
    assert (await client.get("/books/")).json()["count"] == 0


async def test_writes_on_unknown_id_are_404(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(method, "/books/999/", json=book_data, headers=auth)
        assert response.status_code == 404, method
        assert response.json() == {"detail": "Not found."}


async def test_head_is_get_without_body(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    for path in (
        "/",
        "/books/",
        "/books",
        f"/books/{created['id']}/",
        f"/books/{created['id']}",
        "/books/?limit=1&ordering=-price",
    ):
        get = await client.get(path)
        head = await client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        for name in ("content-type", "etag", "content-length"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
        assert "x-request-id" in head.headers


async def test_head_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    response = await client.head("/books/12/")
    assert response.status_code == 404
    assert response.content == b""
    assert "x-request-id" in response.headers


async def test_options_allow_is_exact(client: httpx.AsyncClient) -> None:
    for path, allow, name in [
        ("/", ROOT_ALLOW, "Api Root"),
        ("/books/", LIST_ALLOW, "Book List"),
        ("/books", LIST_ALLOW, "Book List"),
        ("/books/1/", DETAIL_ALLOW, "Book Instance"),
        ("/books/1", DETAIL_ALLOW, "Book Instance"),
    ]:
        response = await client.options(path)
        assert response.status_code == 200, path
        assert response.headers["allow"] == allow, path
        assert response.headers["content-type"].startswith(JSON_TYPE)
        assert response.json()["name"] == name
        assert "x-request-id" in response.headers


async def test_options_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.options("/books/", headers={"Authorization": "Token wrong"})
    assert response.status_code == 200


async def test_trailing_slash_optional_on_list(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    made = []
    for path in ("/books", "/books/"):
        created = await client.post(path, json=book_data, headers=auth)
        assert created.status_code == 201, path
        made.append(created.json())
    for path in ("/books", "/books/", "/books?limit=5", "/books/?limit=5"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 200, path
        assert response.json()["results"] == made


async def test_trailing_slash_optional_on_detail(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    book_id = created["id"]
    for path in (f"/books/{book_id}", f"/books/{book_id}/"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json() == created
    patched = await client.patch(f"/books/{book_id}", json={"title": "No slash"}, headers=auth)
    assert patched.status_code == 200
    put = await client.put(f"/books/{book_id}", json={**book_data, "title": "Put"}, headers=auth)
    assert put.status_code == 200
    deleted = await client.delete(f"/books/{book_id}", headers=auth)
    assert deleted.status_code == 204


async def test_no_redirects_anywhere(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    for path in ("/books", "/books/", f"/books/{created['id']}", f"/books/{created['id']}/"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 200
        assert "location" not in response.headers


async def test_ids_are_not_reused_in_sequence(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    a = await create(client, auth, book(1))
    b = await create(client, auth, book(2))
    assert b["id"] > a["id"]


async def test_json_with_charset_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    import json

    response = await client.post(
        "/books/",
        content=json.dumps(book_data).encode(),
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    patched = await client.patch(
        f"/books/{created['id']}/",
        content=b'{"title": "Charset"}',
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert patched.status_code == 200
    assert patched.json()["title"] == "Charset"


async def test_unicode_round_trip(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    data = book(1, title="Война и мир 📚", author="Лев Толстой")
    created = await create(client, auth, data)
    assert created["title"] == "Война и мир 📚"
    assert (await client.get(f"/books/{created['id']}/")).json() == created
