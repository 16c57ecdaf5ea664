"""Every test gets its own app over its own SQLite file, started once through ASGI lifespan."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sanic import Sanic

from api import Settings, create_app
from db import tokens

_names = itertools.count()
# Sanic rewrites some of its own methods at start-up (TouchUp); in test mode it keeps the
# originals so that a second app in the same process can start.
Sanic.test_mode = True


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'db.sqlite3'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Sanic]:
    app = create_app(settings, name=f"bookshelf_test_{next(_names)}")
    try:
        yield app
    finally:
        Sanic.unregister_app(app)


@pytest.fixture
async def client(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    return await tokens.create_token(name="tester")


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


BOOK: dict[str, Any] = {
    "title": "Dune",
    "author": "Frank Herbert",
    "published_date": "1965-08-01",
    "price": "12.50",
}


@pytest.fixture
def book_data() -> dict[str, Any]:
    return dict(BOOK)
