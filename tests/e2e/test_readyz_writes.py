"""A database that cannot take a write: no write is acknowledged that would be lost, the
answer is a JSON 503/507 saying why, the log says it once, and /readyz answers 503.

Real servers (`main.py serve`) over real files: deleted, replaced, on a full tmpfs, on a
folder remounted read-only, with corrupt pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from backends import TEST_DATABASE_URL, with_query
from faults import a_database, fill, tmpfs
from server_process import BOOK, Server, make_token, readyz, running_server

from api.errors import _translate


def post(server: Server, auth: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/books/", json=BOOK, headers=auth, timeout=10)


def fault_lines(server: Server) -> list[dict[str, Any]]:
    """The log's lines about database faults; every line of the log is JSON."""
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    return [line for line in lines if "database_fault" in line]


def book_count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM book").fetchone()[0])


def test_writes_into_a_deleted_file_are_not_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    with running_server(tmp_path, {"DATABASE_URL": url}) as server:
        created = post(server, auth)
        assert created.status_code == 201, created.text
        path.unlink()
        answers = [post(server, auth) for _ in range(5)]
        book = created.json()["id"]
        answers.append(httpx.delete(f"{server.url}/books/{book}/", headers=auth, timeout=10))
        body = readyz(server, 503)
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "deleted or replaced" in answer.json()["detail"]
        assert answer.headers["content-type"].startswith("application/json")
    assert body["database"] == "gone"
    assert [line["database_fault"] for line in fault_lines(server)] == ["gone"]
    assert "Traceback" not in server.log()


def test_a_full_disk_is_507_logged_once_and_clears(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        path = mnt / "db.sqlite3"
        url = f"sqlite://{path}"
        auth = make_token(url)
        with running_server(tmp_path, {"DATABASE_URL": url}) as server:
            acknowledged = [post(server, auth).status_code for _ in range(3)]
            filler = fill(mnt)
            full = [post(server, auth) for _ in range(20)]
            body = readyz(server, 503)
            filler.unlink()
            readyz(server, 200)
            acknowledged += [post(server, auth).status_code for _ in range(3)]
        stored = book_count(path)
    assert acknowledged == [201] * 6
    for answer in full:
        assert answer.status_code == 507, answer.text
        assert "disk is full" in answer.json()["detail"]
    assert body["database"] == "disk_full"
    # One line when the incident starts, one when it clears; no traceback per request.
    faults = fault_lines(server)
    assert [(f["level"], f["database_fault"]) for f in faults] == [
        ("ERROR", "disk_full"),
        ("WARNING", "disk_full"),
    ]
    assert "Traceback" not in server.log()
    assert stored == 6  # every acknowledged write, and nothing else


async def ready(client: httpx.AsyncClient, status: int) -> dict[str, Any]:
    """/readyz's body once it answers ``status`` (it re-checks at most once a second)."""
    for _ in range(50):
        response = await client.get("/readyz")
        if response.status_code == status:
            return dict(response.json())
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz still {response.status_code}: {response.text}")


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_writes_into_a_replaced_file_are_not_acknowledged(
    client: httpx.AsyncClient, auth: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    created = await client.post("/books/", json=BOOK, headers=auth)
    assert created.status_code == 201
    os.replace(a_database(tmp_path / "other.sqlite3"), database_url.removeprefix("sqlite://"))
    book = created.json()["id"]
    answers = [
        await client.post("/books/", json=BOOK, headers=auth),
        await client.patch(f"/books/{book}/", json={"price": "2.00"}, headers=auth),
        await client.delete(f"/books/{book}/", headers=auth),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "deleted or replaced" in answer.json()["detail"]
    assert (await ready(client, 503))["database"] == "gone"


def test_corrupt_pages_are_503_not_500(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (schema_pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.executemany(
            "INSERT INTO book (title, author, published_date, price_cents, version) "
            "VALUES (?, ?, '2020-01-01', 100, 1)",
            [(f"title {i} " * 8, f"author {i % 7}") for i in range(3000)],
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as fh:  # every page the books were written to
        for page in range(schema_pages, path.stat().st_size // 4096):
            fh.seek(page * 4096)
            fh.write(os.urandom(4096))
    # Started on the damaged file (DB_CHECK=off: serve would refuse it), as if the pages
    # went bad under it.
    env = {"DATABASE_URL": url, "MIGRATE_ON_START": "false", "DB_CHECK": "off"}
    with running_server(tmp_path, env) as server:
        answers = [post(server, auth) for _ in range(5)]
        body = readyz(server, 503)
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "corrupt" in answer.json()["detail"]
    assert body["database"] == "corrupt"
    assert [line["database_fault"] for line in fault_lines(server)] == ["corrupt"]
    assert "Traceback" not in server.log()


def test_a_read_only_database_answers_503(tmp_path: Path) -> None:
    path = a_database(tmp_path / "db.sqlite3")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        with pytest.raises(sqlite3.OperationalError) as failed:
            conn.execute("INSERT INTO t VALUES (1)")
    status, body, headers = _translate(None, failed.value)
    assert status == 503
    assert "read-only" in body["detail"]
    assert headers["Retry-After"]


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set")
async def test_a_read_only_postgres_answers_503() -> None:
    """A standby after a failover refuses writes as a read-only transaction does."""
    assert TEST_DATABASE_URL is not None
    conn = await asyncpg.connect(with_query(TEST_DATABASE_URL))
    try:
        await conn.execute("SET default_transaction_read_only = on")
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError) as failed:
            await conn.execute("CREATE TEMP TABLE t (x int)")
    finally:
        await conn.close()
    status, body, _ = _translate(None, failed.value)
    assert status == 503
    assert "primary" in body["detail"]
