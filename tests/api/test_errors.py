"""Errors in DRF's shapes, JSON always, and X-Request-ID on every response."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import httpx
import pytest
from helpers import DETAIL_ALLOW, LIST_ALLOW, ROOT_ALLOW, create
from sanic import Request, Sanic
from sanic.compat import Header

from api.errors import FROM_DB, APIErrorHandler, NotFound
from api.observability import TimedRequest
from api.request_ids import new_request_id, request_id

NOT_FOUND = {"detail": "Not found."}


def assert_json(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


UNKNOWN_PATHS = [
    "/nope",
    "/nope/",
    "/books/abc/",
    "/books/abc",
    "/books/1.5/",
    "/books/1/extra/",
    "/book/",
    "/books/0/",
    "/books/-1/",
    "/books/1/",
    "/books/2147483648/",
    "/books/9223372036854775808/",
    "/books/99999999999999999999/",
    "/books/" + "9" * 500 + "/",
    "/books/%00/",
    "/books/%2F/",
    "/%E2%82%AC",
]


async def test_unknown_paths_and_ids_are_404_json(client: httpx.AsyncClient) -> None:
    for path in UNKNOWN_PATHS:
        for method in ("GET", "HEAD"):
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.headers.get("x-request-id")
            if method == "GET":
                assert assert_json(response) == NOT_FOUND, path


async def test_writes_to_unknown_ids_are_404_json(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    for path in ("/books/abc/", "/books/99999999999999999999/", "/books/0/", "/books/777/"):
        for method in ("PUT", "PATCH", "DELETE"):
            response = await client.request(method, path, json=book_data, headers=auth)
            assert response.status_code == 404, (method, path, response.text)
            assert assert_json(response) == NOT_FOUND


async def test_huge_id_on_existing_table_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await create(client, auth, book_data)
    for path in ("/books/4294967297/", "/books/-9223372036854775809/"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


NOT_ALLOWED = [
    ("POST", "/books/1/", DETAIL_ALLOW),
    ("POST", "/books/1", DETAIL_ALLOW),
    ("PUT", "/books/", LIST_ALLOW),
    ("PATCH", "/books", LIST_ALLOW),
    ("DELETE", "/books/", LIST_ALLOW),
    ("POST", "/", ROOT_ALLOW),
    ("PUT", "/", ROOT_ALLOW),
    ("DELETE", "/", ROOT_ALLOW),
]


async def test_method_not_allowed(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await create(client, auth, book_data)
    for method, path, allow in NOT_ALLOWED:
        response = await client.request(method, path, json=book_data, headers=auth)
        assert response.status_code == 405, (method, path, response.text)
        assert assert_json(response) == {"detail": f'Method "{method}" not allowed.'}
        assert response.headers["allow"] == allow, (method, path)
        assert response.headers.get("x-request-id")
    assert (await client.get("/books/")).json()["count"] == 1


async def test_errors_are_json_even_when_html_is_preferred(client: httpx.AsyncClient) -> None:
    headers = {"Accept": "text/html"}
    for method, path, status in (
        ("GET", "/nope", 404),
        ("GET", "/books/abc/", 404),
        ("POST", "/", 405),
        ("GET", "/books/?limit=0", 400),
        ("POST", "/books/", 401),
    ):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == status, (method, path)
        body = assert_json(response)
        assert "<html" not in response.text.lower()
        assert isinstance(body, dict)


# X-Request-ID


async def _every_kind_of_response(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    book_data: dict[str, Any],
    headers: dict[str, str],
) -> list[httpx.Response]:
    created = await create(client, auth, book_data)
    path = f"/books/{created['id']}/"
    tag = (await client.get(path)).headers["etag"]
    return [
        await client.get("/", headers=headers),
        await client.get("/books/", headers=headers),
        await client.head("/books/", headers=headers),
        await client.head(path, headers=headers),
        await client.options(path, headers=headers),
        await client.get(path, headers={**headers, "If-None-Match": tag}),  # 304
        await client.get("/nope", headers=headers),  # 404
        await client.get("/books/?limit=0", headers=headers),  # 400
        await client.post("/books/", json=book_data, headers=headers),  # 401
        await client.post("/", headers={**headers, **auth}),  # 405
        await client.patch(
            path, json={"title": "x"}, headers={**headers, **auth, "If-Match": '"stale"'}
        ),  # 412
        await client.post(
            "/books/", content=b"x", headers={**headers, **auth, "Content-Type": "text/plain"}
        ),  # 415
        await client.post("/books/", json=book_data, headers={**headers, **auth}),  # 201
        await client.delete(path, headers={**headers, **auth}),  # 204
    ]


async def test_request_id_on_every_response(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    responses = await _every_kind_of_response(client, auth, book_data, {})
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 304, 404, 400, 401, 405, 412, 415, 201, 204]
    request_ids = [r.headers.get("x-request-id") for r in responses]
    assert all(request_ids), list(zip(statuses, request_ids, strict=True))
    assert len(set(request_ids)) == len(request_ids)
    for r in responses:
        if r.status_code in (304, 204) or r.request.method == "HEAD":
            assert r.content == b""


ECHOED = ["abc-123", "my-trace-id", str(uuid.uuid4()), "42", "x" * 200]
# Sanic casts these to a UUID or an int (upper-case UUID, bare hex, braces, 007, 1_000).
CAST_BY_SANIC = [
    str(uuid.uuid4()).upper(),
    uuid.uuid4().hex,
    "{12345678-1234-5678-1234-567812345678}",
    "007",
    "1_000",
]


async def _echoes(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], values: list[str]
) -> None:
    for sent in values:
        responses = await _every_kind_of_response(client, auth, book_data, {"X-Request-ID": sent})
        for r in responses:
            got = r.headers.get("x-request-id")
            assert got == sent, (sent, r.request.method, r.status_code, got)


async def test_request_id_is_echoed_exactly(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await _echoes(client, auth, book_data, ECHOED)


async def test_request_id_sanic_would_cast_is_echoed_exactly(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    await _echoes(client, auth, book_data, CAST_BY_SANIC)


async def test_blank_request_id_gets_a_generated_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": ""})
    assert response.status_code == 404
    assert response.headers.get("x-request-id")


def _request(app: Sanic, headers: dict[str, str]) -> Request:
    transport: Any = None
    return Request(b"/books/abc/", Header(headers), "1.1", "GET", transport, app)


@pytest.mark.parametrize(
    "sent",
    [
        "007",
        "1_000",
        "B297F5E1-CF0D-45E2-9083-97B61F2AC124",
        "{12345678-1234-5678-1234-567812345678}",
        "abc",
    ],
)
def test_error_handler_echoes_the_request_id_whole(app: Sanic, sent: str) -> None:
    """The error handler's own X-Request-ID header and 500 body keep the client's id as sent
    (Sanic's request.id would give 7, 1000, a lower-case UUID, a bare UUID)."""
    request = _request(app, {"X-Request-ID": sent})
    assert request_id(request) == sent
    response = APIErrorHandler().default(request, NotFound())
    assert response.headers["X-Request-ID"] == sent
    crash = APIErrorHandler().default(_request(app, {"X-Request-ID": sent}), RuntimeError("boom"))
    assert crash.status == 500
    assert json.loads(crash.body) == {"detail": "Internal server error.", "request_id": sent}


@pytest.mark.parametrize(("db_error", "api_error"), FROM_DB)
def test_a_data_layer_error_is_answered_as_its_api_error(
    app: Sanic, db_error: type[Exception], api_error: type[Any]
) -> None:
    request = _request(app, {"X-Request-ID": "r"})
    got = APIErrorHandler().default(request, db_error())
    want = APIErrorHandler().default(request, api_error())
    assert (got.status, got.body, dict(got.headers)) == (want.status, want.body, dict(want.headers))
    assert got.status < 500 or "Retry-After" in got.headers


@pytest.mark.parametrize("request_class", [Request, TimedRequest])
def test_request_id_is_made_once_when_absent_or_blank(
    app: Sanic, request_class: type[Request]
) -> None:
    for headers in ({}, {"X-Request-ID": ""}, {"X-Request-ID": "  "}, {"X-Request-ID": " a "}):
        request = request_class(b"/books/abc/", Header(headers), "1.1", "GET", None, app)
        made = request_id(request)
        assert made and made.strip() == made
        assert request_id(request) == made


def test_generated_request_ids_are_unique_uuid4s() -> None:
    made = [new_request_id() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for rid in made:
        parsed = uuid.UUID(rid)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == rid  # canonical: lower case, dashed


def test_a_forked_child_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    ours = new_request_id()
    assert uuid.UUID(child).version == 4
    assert child[:24] != ours[:24]  # another random prefix, not the parent's counter
