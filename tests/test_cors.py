"""CORS_ORIGINS through sanic-ext's CORS: allowed origins get the headers, others do not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sanic import Sanic

from api import Settings, create_app


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, cors_origins=("https://app.example",))
    app = create_app(settings, name="bookshelf_cors")
    try:
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                yield c
    finally:
        Sanic.unregister_app(app)


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
