"""Values past PostgreSQL's 32-bit integer columns (id, version, price_cents) answer as on
SQLite, never with a driver error (asyncpg refuses such a parameter: a 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.errors import NOT_FOUND, PRECONDITION_FAILED

BIG = [2**31 - 1, 2**31, 999_999_999, 9_999_999_999, 10**11]


@pytest.mark.parametrize("version", BIG)
@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
async def test_if_match_with_a_huge_version_is_412(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    book_data: dict[str, Any],
    method: str,
    version: int,
) -> None:
    created = (await client.post("/books/", json=book_data, headers=auth)).json()
    headers = {**auth, "If-Match": f'"{created["id"]}-{version}"'}
    body = None if method == "DELETE" else book_data
    response = await client.request(method, f"/books/{created['id']}/", json=body, headers=headers)
    assert response.status_code == 412, response.text
    assert response.json() == {"detail": PRECONDITION_FAILED}


@pytest.mark.parametrize("book_id", BIG)
async def test_a_huge_id_is_404(client: httpx.AsyncClient, book_id: int) -> None:
    response = await client.get(f"/books/{book_id}/")
    assert response.status_code == 404
    assert response.json() == {"detail": NOT_FOUND}


@pytest.mark.parametrize(
    "query", ["min_price=1e999", "max_price=-1e999", "min_price=21474836.48", "max_price=1e10"]
)
async def test_a_price_bound_past_the_column_is_200(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], query: str
) -> None:
    await client.post("/books/", json=book_data, headers=auth)
    response = await client.get(f"/books/?{query}")
    assert response.status_code == 200, response.text
    assert response.json()["count"] == (1 if query.startswith("max_price=1e10") else 0)
