"""Structured logs: an unexpected exception logged once with its traceback behind the
contract's opaque 500, and the JSON form of a log line. The access line of the real server
is in tests/e2e/test_access_log.py."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sanic import Sanic

from api import Settings, create_app
from api.errors import SERVER_ERROR
from api.logs import CompactJSONFormatter
from tests.conftest import serving


@pytest.fixture
async def crashing(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url), name="bookshelf_crash")

    @app.get("/crash")
    async def crash(request):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    try:
        async with serving(app, raise_app_exceptions=False) as c:
            yield c
    finally:
        Sanic.unregister_app(app)


async def test_unexpected_exception_is_an_opaque_500_logged_once(
    crashing: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await crashing.get("/crash", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": SERVER_ERROR, "request_id": "req-500"}
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "req-500"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert getattr(errors[0], "request_id", None) == "req-500"


def test_log_lines_are_json_objects() -> None:
    record = logging.LogRecord(
        "bookshelf.access", logging.INFO, __file__, 1, "GET / 200", None, None
    )
    record.request_id = "abc"
    line = json.loads(CompactJSONFormatter().format(record))
    assert line["message"] == "GET / 200" and line["request_id"] == "abc"
    assert line["level"] == "INFO" and "timestamp" in line
