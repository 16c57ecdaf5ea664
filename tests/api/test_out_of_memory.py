"""A MemoryError anywhere in a request is a JSON 503 with Retry-After (413 while the body
is parsed and validated), logged as one line, never a 500. A write that runs out of memory
after its commit says that it may have been stored, and it was.

In process, the MemoryError raised where the server would meet it (tests/e2e/
test_out_of_memory_server.py runs a real server under an address-space limit).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from helpers import book
from sanic import Sanic

from api import books as books_module
from api import errors as e

pytestmark = pytest.mark.asyncio


def _out_of_memory(*args: Any, **kwargs: Any) -> Any:
    raise MemoryError


def _memory_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_body_that_runs_out_of_memory_while_validated_is_413_and_not_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(books_module, "validate_bulk", _out_of_memory)
    response = await client.post("/books/", json=[book(i) for i in range(3)], headers=auth)
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": e.OUT_OF_MEMORY_BODY}
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-request-id"]
    assert (await client.get("/books/")).json()["count"] == 0
    (line,) = _memory_lines(caplog)
    assert line.getMessage() == "out of memory: answered 413" and not line.exc_info


async def test_a_write_that_runs_out_of_memory_after_its_commit_may_have_been_stored(
    app: Sanic,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    create_books = app.ctx.db.create_books

    async def committed_then_out_of_memory(*args: Any, **kwargs: Any) -> Any:
        await create_books(*args, **kwargs)
        raise MemoryError  # building the answer, say

    monkeypatch.setattr(app.ctx.db, "create_books", committed_then_out_of_memory)
    response = await client.post("/books/", json=[book(i) for i in range(3)], headers=auth)
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": e.OUT_OF_MEMORY_WRITE}
    assert response.headers["retry-after"] == "5"
    assert (await client.get("/books/")).json()["count"] == 3  # stored indeed
    (line,) = _memory_lines(caplog)
    assert line.getMessage() == "out of memory: answered 503" and not line.exc_info


async def test_a_read_that_runs_out_of_memory_is_503(
    app: Sanic,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(app.ctx.db, "list_books", _out_of_memory)
    response = await client.get("/books/")
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": e.OUT_OF_MEMORY}
    assert response.headers["retry-after"] == "5"
    (line,) = _memory_lines(caplog)
    assert line.getMessage() == "out of memory: answered 503"
    monkeypatch.undo()
    assert (await client.get("/books/")).status_code == 200
