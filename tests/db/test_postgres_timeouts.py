"""A PostgreSQL server that stops answering ends every wait with an exception that tells
"could not connect" (ConnectTimeoutError: nothing was sent) from "sent, no answer" (a
TimeoutError in the chain, never ConnectTimeoutError): what a write must know to say
whether it may have been stored. The server is real, behind a TCP proxy stopped with
SIGSTOP (``faults.frozen``); each wait is bounded by the test, no duration asserted.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from backends import TEST_DATABASE_URL, PostgresSchema
from faults import frozen, proxied, tcp_proxy
from server_process import free_port

from db import close_db, open_db
from db.errors import ConnectTimeoutError, DatabaseUnavailableError

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set"),
]


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen = []
    while exc is not None and len(seen) < 8:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


async def test_no_connection_in_time_is_a_connect_timeout(postgres: PostgresSchema) -> None:
    target = urlsplit(postgres.url)
    port = free_port()
    with tcp_proxy(port, target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        with frozen(proxy):
            # The start-up's first connection gives up; the backend is still returned.
            backend = await asyncio.wait_for(
                open_db(proxied(postgres.url, port), run_migrations=False, connect_timeout=1),
                timeout=30,
            )
            with pytest.raises(ConnectTimeoutError) as info:
                await asyncio.wait_for(backend.fetch("SELECT 1"), timeout=30)
        await asyncio.wait_for(close_db(), timeout=30)
    assert info.value.seconds == 1
    assert "DB_CONNECT_TIMEOUT" in str(info.value)


async def test_a_statement_sent_and_never_answered_is_not_a_connect_timeout(
    postgres: PostgresSchema,
) -> None:
    target = urlsplit(postgres.url)
    port = free_port()
    with tcp_proxy(port, target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        backend = await open_db(
            proxied(postgres.url, port),
            run_migrations=False,
            statement_timeout=1,
            connect_timeout=1,
            pool_min=1,
            pool_max=1,
        )
        try:
            assert (await backend.fetch("SELECT 1 AS one"))[0]["one"] == 1
            with frozen(proxy):
                with pytest.raises(DatabaseUnavailableError) as info:
                    # Bounded by the pool: STATEMENT_TIMEOUT + DB_CONNECT_TIMEOUT.
                    await asyncio.wait_for(backend.fetch("SELECT 1"), timeout=30)
            # The connection was given up; the next statement gets a new one.
            rows = await asyncio.wait_for(backend.fetch("SELECT 2 AS two"), timeout=30)
            assert rows[0]["two"] == 2
        finally:
            await asyncio.wait_for(close_db(), timeout=30)
    chain = _chain(info.value)
    assert not any(isinstance(e, ConnectTimeoutError) for e in chain), chain
    assert any(type(e) is TimeoutError for e in chain), chain
