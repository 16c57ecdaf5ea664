"""PostgreSQL ending a connection mid-query (a restart, a failover, an administrator's
pg_terminate_backend) is a 503 with Retry-After for that request, never a 500; the next
request gets a fresh connection from the pool."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from backends import TEST_DATABASE_URL, PostgresSchema, with_query
from sanic import Sanic

from api import Settings, create_app
from api.errors import UNAVAILABLE

pytestmark = pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set")


@pytest.fixture
async def pg_client(postgres: PostgresSchema) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    postgres.reset()
    # A name of its own, so that only this app's connections are terminated.
    name = f"bookshelf-outage-{secrets.token_hex(4)}"
    settings = Settings(
        database_url=with_query(postgres.url, application_name=name),
        migrate_on_start=False,
        db_pool_min=1,
        db_pool_max=1,
    )
    app = create_app(settings, name="bookshelf_outage")
    try:
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, name
    finally:
        Sanic.unregister_app(app)


async def test_connection_ended_mid_query_is_503_then_recovers(
    pg_client: tuple[httpx.AsyncClient, str], postgres: PostgresSchema
) -> None:
    client, name = pg_client
    # A book, so that the list reads the table (an empty one's count says there is none).
    postgres.execute(
        "INSERT INTO book (title, author, published_date, price_cents, version)"
        " VALUES ('T', 'A', DATE '2000-01-01', 100, 1)"
    )
    assert (await client.get("/books/")).status_code == 200
    assert TEST_DATABASE_URL is not None
    locker = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    watcher = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    try:
        # Hold the table so the app's next query waits on it, then end that session.
        tx = locker.transaction()
        await tx.start()
        await locker.execute(f'LOCK TABLE "{postgres.name}".book IN ACCESS EXCLUSIVE MODE')
        request = asyncio.create_task(client.get("/books/"))
        for _ in range(1000):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND wait_event_type = 'Lock'",
                name,
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        await watcher.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            name,
        )
        response = await request
        await tx.rollback()
    finally:
        await locker.close()
        await watcher.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"detail": UNAVAILABLE}
    assert (await client.get("/books/")).status_code == 200
