"""CORS_ORIGINS through sanic-ext's CORS: allowed origins get the headers, others do not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api import Settings
from tests.conftest import app_client


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, cors_origins=("https://app.example",))
    async with app_client(settings) as c:
        yield c


async def test_allowed_origin_gets_cors_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/books/", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_preflight_for_a_write(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options(
        "/books/",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_other_origin_gets_no_cors_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/books/", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/books/", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers
