"""Bounds against abusive clients: deep JSON and huge fields, in process.

The bounds that need the real server (body size, trickled headers, a stop under load) are in
tests/e2e/test_server_bounds.py.
"""

from __future__ import annotations

from typing import Any

import httpx


async def test_deeply_nested_json_is_a_400_not_a_500(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for body in (b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        response = await client.post(
            "/books/", content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("JSON parse error - ")


async def test_a_huge_string_field_is_a_field_error(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    huge = {**book_data, "title": "x" * 500_000}
    response = await client.post("/books/", json=huge, headers=auth)
    assert response.status_code == 400
    assert list(response.json()) == ["title"]
