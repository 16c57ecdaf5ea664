"""A write's answer says what is known of its outcome: "nothing was changed" when the
database never got it, "may have been stored" when it was sent and the connection died
before the answer came (PostgreSQL behind a real TCP proxy that is killed while the
statement, or the COMMIT, waits inside the server), and a retry with the same
Idempotency-Key then gives the stored answer."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from backends import TEST_DATABASE_URL, PostgresSchema, with_query
from faults import tcp_proxy
from sanic import Sanic
from server_process import BOOK, free_port

from api import Settings, create_app
from api.errors import OUTCOME_UNKNOWN, UNAVAILABLE
from db import tokens

pytestmark = pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set")


@dataclass
class Proxied:
    client: httpx.AsyncClient
    auth: dict[str, str]
    name: str  # the app's application_name: its sessions in pg_stat_activity
    port: int
    proxy: subprocess.Popen[str]


@pytest.fixture
async def proxied(postgres: PostgresSchema) -> AsyncIterator[Proxied]:
    """An app whose one pooled connection goes through a TCP proxy; killing the proxy
    (``proxy.kill()``) cuts it, ``tcp_proxy`` on the same port brings the database back."""
    postgres.reset()
    proxy_port = free_port()
    assert TEST_DATABASE_URL is not None
    name = f"bookshelf-outcome-{secrets.token_hex(4)}"
    url = with_query(postgres.url, application_name=name)
    through = url.replace(
        url.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{proxy_port}", 1
    )
    settings = Settings(
        database_url=through, migrate_on_start=False, db_pool_min=1, db_pool_max=1
    )
    app = create_app(settings, name=f"bookshelf_outcome_{secrets.token_hex(2)}")
    host, port = upstream()
    try:
        with tcp_proxy(proxy_port, host, port) as proxy:
            async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    key = await tokens.create_token(name="writer")
                    auth = {"Authorization": f"Token {key}"}
                    yield Proxied(client, auth, name, proxy_port, proxy)
    finally:
        Sanic.unregister_app(app)


def upstream() -> tuple[str, int]:
    assert TEST_DATABASE_URL is not None
    host_port = TEST_DATABASE_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    return host or "127.0.0.1", int(port or 5432)


async def waiting_on_a_lock(watcher: asyncpg.Connection, name: str) -> None:
    for _ in range(1000):
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND wait_event_type = 'Lock'",
            name,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the write never waited on the lock")


async def books(watcher: asyncpg.Connection, schema: str) -> int:
    return int(await watcher.fetchval(f'SELECT count(*) FROM "{schema}".book'))


async def test_a_write_cut_after_it_was_sent_may_have_been_stored(
    proxied: Proxied, postgres: PostgresSchema
) -> None:
    assert TEST_DATABASE_URL is not None
    locker = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    watcher = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    proxy = proxied.proxy
    try:
        # Warm: the pool's connection made through the proxy.
        assert (await proxied.client.get("/books/")).status_code == 200
        # Hold the row every insert's trigger updates: the INSERT is parsed, bound and
        # executed, then waits; its Sync (the commit) is already sent too.
        tx = locker.transaction()
        await tx.start()
        await locker.execute(f'SELECT n FROM "{postgres.name}".book_count FOR UPDATE')
        request = asyncio.create_task(
            proxied.client.post("/books/", json=BOOK, headers=proxied.auth)
        )
        await waiting_on_a_lock(watcher, proxied.name)
        proxy.kill()  # the connection cut with the statement sent
        response = await asyncio.wait_for(request, 30)
        await tx.rollback()  # the write goes on, and commits
        for _ in range(500):
            if await books(watcher, postgres.name):
                break
            await asyncio.sleep(0.01)
        stored = await books(watcher, postgres.name)
    finally:
        await locker.close()
        await watcher.close()
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": OUTCOME_UNKNOWN}
    assert response.headers["retry-after"] == "1"
    assert stored == 1  # it was: the answer saying so is the honest one


async def test_a_write_during_an_outage_stored_nothing(
    proxied: Proxied, postgres: PostgresSchema
) -> None:
    host, port = upstream()
    proxy = proxied.proxy
    assert (await proxied.client.get("/books/")).status_code == 200
    proxy.kill()
    proxy.wait()
    # The pool sees its connection closed and cannot make another one.
    await asyncio.sleep(0.1)
    response = await proxied.client.post("/books/", json=BOOK, headers=proxied.auth)
    keyed = await proxied.client.post(
        "/books/", json=BOOK, headers={**proxied.auth, "Idempotency-Key": "outage"}
    )
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": UNAVAILABLE}
    assert keyed.status_code == 503, keyed.text
    assert keyed.json() == {"detail": UNAVAILABLE}
    assert postgres.fetch("SELECT id FROM book") == []
    # The database back: the keyed retry runs (its claim was never made).
    with tcp_proxy(proxied.port, host, port):
        again = await proxied.client.post(
            "/books/", json=BOOK, headers={**proxied.auth, "Idempotency-Key": "outage"}
        )
    assert again.status_code == 201, again.text
    assert len(postgres.fetch("SELECT id FROM book")) == 1


# A COMMIT that waits: a deferred trigger on the stored outcome takes an advisory lock the
# test holds, so the app's COMMIT is sent, then waits inside the server.
HOLD_KEY = 725_001
HOLD_COMMIT = [
    """CREATE FUNCTION {schema}.hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_advisory_xact_lock({key}); RETURN NULL; END $$""",
    """CREATE CONSTRAINT TRIGGER hold_commit AFTER UPDATE ON {schema}.idempotency_key
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.hold_commit()""",
]
UNHOLD_COMMIT = [
    "DROP TRIGGER IF EXISTS hold_commit ON {schema}.idempotency_key",
    "DROP FUNCTION IF EXISTS {schema}.hold_commit()",
]


async def test_a_keyed_write_cut_during_its_commit_is_replayed_by_the_retry(
    proxied: Proxied, postgres: PostgresSchema
) -> None:
    host, port = upstream()
    assert TEST_DATABASE_URL is not None
    schema = f'"{postgres.name}"'
    for statement in HOLD_COMMIT:
        postgres.execute(statement.format(schema=schema, key=HOLD_KEY))
    locker = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    watcher = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    headers = {**proxied.auth, "Idempotency-Key": "cut-at-commit"}
    try:
        await locker.execute("SELECT pg_advisory_lock($1)", HOLD_KEY)
        request = asyncio.create_task(proxied.client.post("/books/", json=BOOK, headers=headers))
        await waiting_on_a_lock(watcher, proxied.name)  # in the COMMIT's trigger
        proxied.proxy.kill()  # the connection cut with the COMMIT sent
        response = await asyncio.wait_for(request, 30)
        await locker.execute("SELECT pg_advisory_unlock($1)", HOLD_KEY)  # it commits
        for _ in range(500):
            if await books(watcher, postgres.name):
                break
            await asyncio.sleep(0.01)
    finally:
        await locker.close()
        await watcher.close()
        for statement in UNHOLD_COMMIT:
            postgres.execute(statement.format(schema=schema))
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": OUTCOME_UNKNOWN}
    # It was stored, with its answer: the retry gives that answer and writes nothing.
    with tcp_proxy(proxied.port, host, port):
        retry = await proxied.client.post("/books/", json=BOOK, headers=headers)
    assert retry.status_code == 201, retry.text
    (row,) = postgres.fetch("SELECT id FROM book")
    assert retry.json()["id"] == row["id"]
    assert retry.headers["location"].endswith(f"/books/{row['id']}/")
