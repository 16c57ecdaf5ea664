"""Many requests with one Idempotency-Key at once, spread over a real server's two
workers: exactly one book is created, every request is answered with that book or a 409
while it is in flight, and a later retry gives the same answer (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from server_process import BOOK, make_token, running_server

AT_ONCE = 16


async def post_all(url: str, headers: dict[str, str]) -> list[httpx.Response]:
    """AT_ONCE clients, each on a connection of its own opened first (both workers take
    some), then their POSTs sent together."""
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(AT_ONCE)]
    try:
        await asyncio.gather(*(c.get("/healthz") for c in clients))
        return list(
            await asyncio.gather(*(c.post("/books/", json=BOOK, headers=headers) for c in clients))
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def test_one_key_at_once_in_two_workers_creates_one_book(
    tmp_path: Path, database_url: str
) -> None:
    auth = make_token(database_url)
    headers = {**auth, "Idempotency-Key": "at-once"}
    env = {"DATABASE_URL": database_url, "WORKERS": "2", "MIGRATE_ON_START": "false"}
    with running_server(tmp_path, env) as server:
        answers = asyncio.run(post_all(server.url, headers))
        later = httpx.post(f"{server.url}/books/", json=BOOK, headers=headers, timeout=30)
        listed = httpx.get(f"{server.url}/books/", timeout=30).json()
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {201, 409}, [r.text for r in answers]
    created = [r for r in answers if r.status_code == 201]
    assert created, statuses
    first = created[0]
    for response in [*created, later]:
        assert response.content == first.content
        assert response.headers["location"] == first.headers["location"]
        assert response.headers["etag"] == first.headers["etag"]
    assert listed["count"] == 1
    assert listed["results"][0]["id"] == first.json()["id"]
