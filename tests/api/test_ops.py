"""Operations routes in-process: liveness, readiness, metrics labels."""

from __future__ import annotations

import gc
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from sanic import Sanic

from api import Settings
from api.app import create_app
from api.observability import _HELP, LATENCY, LATENCY_BUCKETS, REQUESTS, Metrics
from tests.conftest import app_client, serving


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


def test_metrics_files_read_as_prometheus_clients_own_multiprocess_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values written in place (Metrics.observe) give the exposition prometheus-client's
    own Counter and Histogram give in multiprocess mode for the same requests, line for
    line (the files are read in directory order), bucket edges, made-up methods and
    unmatched routes included."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(theirs))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: "reference"))
    reference = CollectorRegistry()
    counter = Counter(REQUESTS, _HELP[REQUESTS], ("route", "method", "status"), registry=reference)
    histogram = Histogram(
        LATENCY, _HELP[LATENCY], ("route", "method"), buckets=LATENCY_BUCKETS, registry=reference
    )
    metrics = Metrics(str(ours))
    seconds = [0.0, 0.0005, 0.00050001, 0.001, 0.003, 0.0999, 0.1, 2.5, 9.99, 10.0, 10.5, 300.0]
    for i, value in enumerate(seconds):
        for route, method, status in (
            ("books/<book_id:int>", "GET", 200),
            ("books", "POST", 201),
            ("books/<book_id:int>", "GET", 404),
            (None, "FOOBAR", 404),
        ):
            if i % 2 or status == 200:
                metrics.observe(route, method, status, value)
                label = (
                    "<unmatched>" if route is None else "/" + route.replace("<book_id:int>", "<id>")
                )
                label_method = "OTHER" if method == "FOOBAR" else method
                counter.labels(label, label_method, str(status)).inc()
                histogram.labels(label, label_method).observe(value)
        if i == 5:
            metrics.close()  # closed and opened again: counts on
    try:
        ours_text, _ = metrics.exposition()
        theirs_text, _ = Metrics(str(theirs)).exposition()
        assert sorted(ours_text.splitlines()) == sorted(theirs_text.splitlines())
        assert b"FOOBAR" not in ours_text
        assert b'method="OTHER",route="<unmatched>",status="404"} 6.0' in ours_text
    finally:
        metrics.close()
        values.close_all_multiprocess_files()


async def test_a_served_app_freezes_its_start_up_objects(settings: Settings) -> None:
    """main.py serve's workers take their start-up objects out of the cycle collector's
    full collections (a 30-60 ms pause each); an app built for tests does not."""
    gc.unfreeze()
    plain = create_app(settings, name="bookshelf_test_unfrozen")
    frozen = create_app(settings, name="bookshelf_test_frozen", freeze_gc=True)
    try:
        async with serving(plain):
            assert gc.get_freeze_count() == 0
        async with serving(frozen):
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
        Sanic.unregister_app(plain)
        Sanic.unregister_app(frozen)
