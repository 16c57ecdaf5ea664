"""A PostgreSQL outage is one JSON log line when it starts and one when it ends, whatever
the number of requests it fails and of asyncpg's reconnection attempts (each of which
asyncpg logs with a traceback)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from backends import TEST_DATABASE_URL, PostgresSchema
from faults import tcp_proxy
from server_process import BOOK, free_port, make_token, readyz, running_server

pytestmark = pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set")


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_an_outage_is_one_json_line_and_its_end_another(
    tmp_path: Path, postgres: PostgresSchema
) -> None:
    postgres.reset()
    target = urlsplit(postgres.url)
    port = free_port()
    url = through(postgres.url, port)
    env = {"DATABASE_URL": url, "DB_POOL_MIN": "2", "MIGRATE_ON_START": "false"}
    with tcp_proxy(port, target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        auth = make_token(url)
        with running_server(tmp_path, env) as server:
            books = f"{server.url}/books/"
            assert httpx.post(books, json=BOOK, headers=auth).status_code == 201
            proxy.kill()
            proxy.wait()
            down = [httpx.post(books, json=BOOK, headers=auth, timeout=10) for _ in range(5)]
            down += [httpx.get(books, timeout=10) for _ in range(5)]
            readyz(server, 503)
            time.sleep(3.5)  # asyncpg retries its pool's connections after 1 s, then 2 s
            with tcp_proxy(port, target.hostname or "127.0.0.1", target.port or 5432):
                readyz(server, 200)
                assert httpx.post(books, json=BOOK, headers=auth).status_code == 201
    assert [r.status_code for r in down] == [503] * 10
    log = server.log()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    faults = [(line["level"], line["database_fault"]) for line in lines if "database_fault" in line]
    assert faults == [("ERROR", "unreachable"), ("WARNING", "unreachable")]
