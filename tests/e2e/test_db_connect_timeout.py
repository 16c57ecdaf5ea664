"""A PostgreSQL server that accepts TCP but never answers (here: a TCP proxy stopped with
SIGSTOP, whose kernel still completes the handshakes) stops every command and a migrating
start-up with one line and status 2 once DB_CONNECT_TIMEOUT has passed; a server that
starts without migrating serves and says 503 on /readyz; a server that freezes while
serving answers its requests 503 rather than leaving them hanging.

No real PostgreSQL is needed for the silent listener (nothing answers anyway); the frozen
server mid-serving is a real PostgreSQL behind the proxy. Every wait is bounded (a command
is killed after 30 s, half of asyncpg's own 60 s default); no duration is asserted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from backends import TEST_DATABASE_URL, PostgresSchema
from faults import frozen, proxied, tcp_proxy
from server_process import (
    BOOK,
    Server,
    free_port,
    launch_server,
    make_token,
    readyz,
    running_server,
    stop,
)
from test_db_faults import one_line, run_main

from api import errors

COMMANDS = (("migrate",), ("token", "create", "alice"), ("seed", "--count", "10"), ("serve",))
UNAVAILABLE = {"detail": errors.UNAVAILABLE}


@contextlib.contextmanager
def silent_database() -> Iterator[str]:
    """A postgres:// URL whose server completes TCP handshakes and never answers."""
    port = free_port()
    with tcp_proxy(port, "127.0.0.1", 1) as proxy, frozen(proxy):
        yield f"postgres://postgres:secret@127.0.0.1:{port}/test"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_silent_database_stops_every_command_with_one_line(command: tuple[str, ...]) -> None:
    with silent_database() as url:
        result = run_main(url, *command, DB_CONNECT_TIMEOUT="1")
    line = one_line(result, "did not answer", "within 1 s", "DB_CONNECT_TIMEOUT", url[-20:])
    assert "secret" not in line


def test_the_default_connect_timeout_is_bounded() -> None:
    with silent_database() as url:
        result = run_main(url, "migrate")
    one_line(result, "within 5 s", "DB_CONNECT_TIMEOUT")


def test_a_server_started_without_migrating_serves_and_is_not_ready(tmp_path: Path) -> None:
    """The start-up's first connection gives up after DB_CONNECT_TIMEOUT; the server
    serves, /readyz says 503 (promptly: it never waits for a connection), a request that
    needs the database is 503, and neither hangs."""
    with silent_database() as url:
        env = {"DATABASE_URL": url, "MIGRATE_ON_START": "false", "DB_CONNECT_TIMEOUT": "1"}
        server = launch_server(tmp_path, env)
        try:
            _wait_live(server)
            body = readyz(server, 503)
            assert body["status"] == "unavailable", body
            response = httpx.get(f"{server.url}/books/", timeout=20)
            assert response.status_code == 503, response.text
            assert response.json() == UNAVAILABLE
            assert response.headers["retry-after"]
        finally:
            stop(server.process)
    assert "Traceback" not in server.log()


def _wait_live(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the server did not serve in time:\n{server.log()}")


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set")
def test_a_database_frozen_while_serving_is_answered_503(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    """PostgreSQL's statement_timeout cannot stop what a frozen server never reads: the
    pool's own bound (STATEMENT_TIMEOUT + DB_CONNECT_TIMEOUT, here 2 s, and as long again
    for the cancel request) ends the wait for the answer, well inside RESPONSE_TIMEOUT
    (30 s, whose answer is "Request timed out."). Once the server answers again, so does
    bookshelf."""
    postgres.reset()
    target = urlsplit(postgres.url)
    port = free_port()
    url = proxied(postgres.url, port)
    env = {
        "DATABASE_URL": url,
        "MIGRATE_ON_START": "false",
        "STATEMENT_TIMEOUT": "1",
        "DB_CONNECT_TIMEOUT": "1",
        "DB_POOL_MIN": "2",
    }
    with tcp_proxy(port, target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        auth = make_token(url)
        with running_server(tmp_path, env) as server:
            books = f"{server.url}/books/"
            assert httpx.post(books, json=BOOK, headers=auth, timeout=20).status_code == 201
            with frozen(proxy):
                read = httpx.get(books, timeout=20)
                write = httpx.post(books, json=BOOK, headers=auth, timeout=20)
                ready = httpx.get(f"{server.url}/readyz", timeout=20)
            readyz(server, 200)
            assert httpx.get(books, timeout=20).status_code == 200
    assert read.status_code == 503, read.text
    assert read.json() == UNAVAILABLE
    assert write.status_code == 503, write.text
    assert write.headers["retry-after"]
    assert ready.status_code == 503, ready.text
    assert "Traceback" not in server.log()
