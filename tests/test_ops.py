"""Operations routes in-process: liveness, readiness, metrics labels."""

from __future__ import annotations

import httpx
import pytest

from api import Settings
from tests.conftest import app_client


async def test_healthz_is_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


async def test_readyz_answers_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_answers_503_when_the_database_does_not() -> None:
    # A PostgreSQL URL on a port where nothing listens: Tortoise connects lazily,
    # so the app starts, and readiness must say the database is not there.
    settings = Settings(database_url="postgres://nobody@127.0.0.1:9/none", migrate_on_start=False)
    async with app_client(settings) as c:
        response = await c.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert (await c.get("/healthz")).status_code == 200


async def test_metrics_label_route_templates_never_raw_ids(client: httpx.AsyncClient) -> None:
    for book_id in (1, 2, 3):
        await client.get(f"/books/{book_id}/")
    await client.get("/books/")
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'bookshelf_http_requests_total{method="GET",route="/books/<id>",status="404"} 3.0' in text
    )
    assert 'bookshelf_http_requests_total{method="GET",route="/books",status="200"} 1.0' in text
    assert 'route="<unmatched>"' in text
    assert "/books/1" not in text and "/no/such/path" not in text
    assert "bookshelf_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_ops_routes_have_a_request_id(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"X-Request-ID": "ops-check"})
    assert response.headers["x-request-id"] == "ops-check"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/docs/openapi.json"])
async def test_options_and_head_on_every_get_route(client: httpx.AsyncClient, path: str) -> None:
    options = await client.options(path)
    assert options.status_code == 200
    assert options.headers["allow"] == "GET, HEAD, OPTIONS"
    assert options.headers["content-type"] == "application/json"
    head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""


async def test_made_up_methods_do_not_grow_the_metric_labels(client: httpx.AsyncClient) -> None:
    for method in ("FOOBAR", "BAZQUX"):
        await client.request(method, "/books/")
    text = (await client.get("/metrics")).text
    assert 'method="OTHER"' in text
    assert "FOOBAR" not in text and "BAZQUX" not in text
