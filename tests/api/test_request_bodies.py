"""Request bodies that are not JSON or not an object (DRF's parse error), and media types
other than JSON (415), on every method that takes a body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import create

from api import errors as e

pytestmark = pytest.mark.asyncio


# Bodies that are not JSON, or not an object.

NOT_JSON = [
    b"{",
    b"not json",
    b"{'title': 'x'}",
    b'{"title": "x",}',
    b"\xff\xfe",
    b"[1,",
    b'{"title": "x"} trailing',
    b"{" * 100_000,
]
NOT_OBJECT = [b"42", b"null", b'"x"', b"true", b"1.5"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_body_not_json_or_not_an_object_is_parse_error(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    created = await create(client, auth, book_data)
    path = "/books/" if method == "POST" else f"/books/{created['id']}/"
    # An array is a bulk create on POST, but never an update.
    bodies = NOT_JSON + NOT_OBJECT + ([] if method == "POST" else [b"[]", b"[{}]", b"[1]"])
    for body in bodies:
        response = await client.request(
            method, path, content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body[:20], response.text)
        assert response.headers["content-type"].startswith("application/json")
        detail = response.json()["detail"]
        assert detail.startswith("JSON parse error - "), (body[:20], detail)
        assert "Traceback" not in detail and len(detail) < 300
    body = (await client.get("/books/")).json()
    assert body["count"] == 1 and body["results"] == [created]


WRONG_TYPES = [
    ("text/plain", "text/plain"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
    ("multipart/form-data; boundary=x", "multipart/form-data"),
    ("application/xml", "application/xml"),
    ("text/json", "text/json"),
]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    created = await create(client, auth, book_data)
    path = "/books/" if method == "POST" else f"/books/{created['id']}/"
    for content_type, media in WRONG_TYPES:
        response = await client.request(
            method,
            path,
            content=json.dumps({**book_data, "title": "Changed"}).encode(),
            headers={**auth, "Content-Type": content_type},
        )
        assert response.status_code == 415, (content_type, response.text)
        assert response.json() == {"detail": e.UNSUPPORTED_MEDIA.format(media_type=media)}
    assert (await client.get("/books/")).json()["results"] == [created]


async def test_missing_content_type_with_body_is_415(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    response = await client.post("/books/", content=json.dumps(book_data).encode(), headers=auth)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("Unsupported media type")


async def test_exact_415_message_for_text_plain(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/books/", content=b"hello", headers={**auth, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "text/plain" in request.'}


async def test_json_content_type_variants_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    for content_type in (
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        "application/vnd.api+json",
    ):
        response = await client.post(
            "/books/",
            content=json.dumps(book_data).encode(),
            headers={**auth, "Content-Type": content_type},
        )
        assert response.status_code == 201, (content_type, response.text)
    created = (await client.get("/books/")).json()["results"][0]
    patched = await client.patch(
        f"/books/{created['id']}/",
        content=b'{"title": "Charset"}',
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert patched.status_code == 200
    assert patched.json()["title"] == "Charset"
