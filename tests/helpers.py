"""Shared helpers for the books tests: building books, bulk-loading rows, walking pages,
making cursors and the expected order of rows."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from db.schema import WRITABLE, price_text

ROOT_ALLOW = "GET, HEAD, OPTIONS"
LIST_ALLOW = "GET, POST, HEAD, OPTIONS"
DETAIL_ALLOW = "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"
JSON_TYPE = "application/json"
# The query parameters of GET /books/ that API.md lists.
LIST_PARAMETERS = (
    "limit",
    "offset",
    "cursor",
    "author",
    "search",
    "published_after",
    "published_before",
    "min_price",
    "max_price",
    "ordering",
    "fields",
)


def book(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid book body, distinct per ``i``, with deliberately repeating sort keys."""
    data = {
        "title": f"Title {(i * 7) % 13:02d}",
        "author": f"Author {i % 5}",
        "published_date": (dt.date(2000, 1, 1) + dt.timedelta(days=(i * 37) % 41)).isoformat(),
        "price": price_text(((i * 11) % 29) * 50 + 99),
    }
    data.update(overrides)
    return data


async def create(client: httpx.AsyncClient, auth: dict[str, str], data: Any) -> Any:
    response = await client.post("/books/", json=data, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def bulk(
    client: httpx.AsyncClient, auth: dict[str, str], items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Create books through the API's bulk create, in chunks of the bulk limit."""
    created: list[dict[str, Any]] = []
    for start in range(0, len(items), 1000):
        created += await create(client, auth, items[start : start + 1000])
    return created


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def rel(url: str) -> str:
    """An absolute link from the API as a path + query for the test client."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def walk_next(
    client: httpx.AsyncClient, url: str, *, max_pages: int = 1000
) -> list[dict[str, Any]]:
    """Follow ``next`` links from ``url``; returns every page body."""
    pages = []
    for _ in range(max_pages):
        response = await client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if page["next"] is None:
            return pages
        url = rel(page["next"])
    raise AssertionError("too many pages")


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


def book_fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in WRITABLE}


def sort_key(ordering: str | None):  # type: ignore[no-untyped-def]
    """The rows' expected order, computed in Python: the fields then the id tie-break, in
    the direction of the last field."""
    parts = [p for p in (ordering or "").split(",") if p]
    keys: list[tuple[str, bool]] = []
    for part in parts:
        desc = part.startswith("-")
        name = part.lstrip("-")
        keys.append((name, desc))
        if name == "id":
            break
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))

    def value(item: dict[str, Any], name: str) -> Any:
        return Decimal(item[name]) if name == "price" else item[name]

    def order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(items)
        for name, desc in reversed(keys):
            out.sort(key=lambda item, n=name: value(item, n), reverse=desc)
        return out

    return order


def encode(doc: Any) -> str:
    """``doc`` as a cursor parameter's text (unpadded URL-safe base64 of its JSON)."""
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


async def offset_walk(
    client: httpx.AsyncClient, params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Every row of the list for ``params``, page by page with limit and offset."""
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
