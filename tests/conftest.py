"""Every test gets its own app over its own database, started once through ASGI lifespan.

The tests are grouped the way the code is: ``tests/api/`` drives the app in process through
the ``client`` fixture below; ``tests/db/`` tests the data layer (``db`` fixture, or the
backends directly); ``tests/e2e/`` starts real server processes and the CLI
(tests/server_process.py). Shared helpers stay at this level: tests/helpers.py (books,
pages, cursors), tests/backends.py, tests/faults.py. The folders have no ``__init__.py``:
pytest puts each test module's folder and this one on ``sys.path``, so a test module's name
must be unique across the folders.

A test that uses the database runs once per backend (``[sqlite]``, plus ``[postgres]`` when
TEST_DATABASE_URL is set; see tests/backends.py). A test meant for one backend only
overrides the parameter: ``@pytest.mark.parametrize("backend", ["sqlite"])``.

A test that needs an optional part (PostgreSQL, Redis, Chromium, wrk, the bench extra)
skips with a reason when it is absent. With BOOKSHELF_FORBID_SKIPS=1 (CI, where every part
is installed) a skip fails instead, naming its reason.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from backends import BACKENDS, TEST_DATABASE_URL, TEST_REDIS_URL, PostgresSchema
from sanic import Sanic

from api import Settings, create_app
from db import Backend, tokens

_names = itertools.count()

FORBID_SKIPS = os.environ.get("BOOKSHELF_FORBID_SKIPS", "") == "1"
# Skips that stay skips under BOOKSHELF_FORBID_SKIPS, each with why it can never run.
# None today: a test meant for one backend says so with its parameters instead.
ALLOWED_SKIPS: dict[str, str] = {}


def _forbid_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Turn a skip into a failure that names the skip's reason (BOOKSHELF_FORBID_SKIPS)."""
    if not (FORBID_SKIPS and report.skipped) or hasattr(report, "wasxfail"):
        return
    if report.nodeid in ALLOWED_SKIPS:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped, and BOOKSHELF_FORBID_SKIPS=1 forbids skips: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    _forbid_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report: pytest.CollectReport = yield
    _forbid_skip(report)
    return report


# Sanic rewrites some of its own methods at start-up (TouchUp); in test mode it keeps the
# originals so that a second app in the same process can start.
Sanic.test_mode = True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresSchema]:
    """This session's PostgreSQL schema, migrated once."""
    if TEST_DATABASE_URL is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    schema = PostgresSchema(TEST_DATABASE_URL)
    try:
        yield schema
    finally:
        schema.drop()


@pytest.fixture
def redis_url() -> str:
    if TEST_REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    return TEST_REDIS_URL


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty, migrated database: a new SQLite file, or this session's PostgreSQL
    schema truncated."""
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'db.sqlite3'}"
    pg: PostgresSchema = request.getfixturevalue("postgres")
    pg.reset()
    return pg.url


@pytest.fixture
def settings(backend: str, database_url: str) -> Settings:
    # The PostgreSQL schema is migrated once per session; a new SQLite file on start-up.
    return Settings(database_url=database_url, migrate_on_start=backend == "sqlite")


@contextlib.asynccontextmanager
async def serving(app: Sanic, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app``, started once through ASGI lifespan."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        asgi = httpx.ASGITransport(app=app, **transport)
        async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as c:
            yield c


@contextlib.asynccontextmanager
async def app_client(settings: Settings, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own for ``settings`` (rate limit, CORS, ...) and its client."""
    app = create_app(settings, name=f"bookshelf_test_{next(_names)}")
    try:
        async with serving(app, **transport) as c:
            yield c
    finally:
        Sanic.unregister_app(app)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Sanic]:
    app = create_app(settings, name=f"bookshelf_test_{next(_names)}")
    try:
        yield app
    finally:
        Sanic.unregister_app(app)


@pytest.fixture
async def client(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as c:
        yield c


@pytest.fixture
def db(app: Sanic, client: httpx.AsyncClient) -> Backend:
    """The backend of the app's database, open once ``client`` has started the app."""
    return app.ctx.db


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
