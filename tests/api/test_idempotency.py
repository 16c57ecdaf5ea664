"""``Idempotency-Key`` on POST /books/: a retry gives the first answer and writes nothing;
another body is 422; a retry while the first is in flight is 409 (PostgreSQL; on SQLite it
waits for the first's commit); keys are per token, kept 24 h (on SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from backends import PostgresSchema

from api.errors import IDEMPOTENCY_IN_PROGRESS, IDEMPOTENCY_MISMATCH
from db import Backend, idempotency, tokens

BOOK: dict[str, Any] = {
    "title": "Dune",
    "author": "Frank Herbert",
    "published_date": "1965-08-01",
    "price": "12.50",
}
NOT_THE_REQUEST_ID = ("x-request-id",)


async def count(db: Backend) -> int:
    return int((await db.fetch("SELECT count(*) AS n FROM book"))[0]["n"])


def answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in NOT_THE_REQUEST_ID}
    return response.status_code, headers, response.content


def keyed(auth: dict[str, str], key: str) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


async def test_a_retry_gives_the_first_answer_and_writes_once(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    first = await client.post("/books/", json=BOOK, headers=keyed(auth, "k-1"))
    assert first.status_code == 201, first.text
    assert first.headers["location"].endswith(f"/books/{first.json()['id']}/")
    again = [await client.post("/books/", json=BOOK, headers=keyed(auth, "k-1")) for _ in range(3)]
    assert [answer(r) for r in again] == [answer(first)] * 3
    assert await count(db) == 1
    # Another key is another request.
    other = await client.post("/books/", json=BOOK, headers=keyed(auth, "k-2"))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert await count(db) == 2


async def test_a_bulk_create_is_replayed_whole(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    books = [dict(BOOK, title=f"T{i}") for i in range(5)]
    first = await client.post("/books/", json=books, headers=keyed(auth, "bulk"))
    assert first.status_code == 201, first.text
    again = await client.post("/books/", json=books, headers=keyed(auth, "bulk"))
    assert answer(again) == answer(first)
    assert await count(db) == 5


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    assert (await client.post("/books/", json=BOOK, headers=keyed(auth, "k"))).status_code == 201
    other = await client.post("/books/", json=dict(BOOK, price="1.00"), headers=keyed(auth, "k"))
    assert other.status_code == 422
    assert other.json() == {"detail": IDEMPOTENCY_MISMATCH}
    assert await count(db) == 1


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_retry_while_the_first_is_in_flight_is_409(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    token: str,
    db: Backend,
    postgres: PostgresSchema,
) -> None:
    # The first request's transaction, as it stands while its write runs: it holds the
    # key's lock. (On SQLite the retry waits for the first's commit instead:
    # tests/e2e/test_idempotency_workers.py.)
    once = idempotency.Once(tokens.hash_key(token), "busy", "")
    postgres.execute("SELECT pg_advisory_lock($1)", idempotency.lock_key(once))
    try:
        response = await client.post("/books/", json=BOOK, headers=keyed(auth, "busy"))
    finally:
        postgres.execute("SELECT pg_advisory_unlock($1)", idempotency.lock_key(once))
    assert response.status_code == 409
    assert response.json() == {"detail": IDEMPOTENCY_IN_PROGRESS}
    assert response.headers["retry-after"] == "1"
    assert await count(db) == 0
    # The first gone (its transaction ended without a commit): the retry runs.
    again = await client.post("/books/", json=BOOK, headers=keyed(auth, "busy"))
    assert again.status_code == 201, again.text
    assert await count(db) == 1


async def test_a_key_past_its_retention_is_claimed_afresh(
    client: httpx.AsyncClient, auth: dict[str, str], token: str, db: Backend
) -> None:
    # A key used more than a day ago, for another request, not yet pruned.
    old = int((time.time() - idempotency.RETENTION - 60) * 1000)
    await db.fetch(
        "INSERT INTO idempotency_key (scope, key, fingerprint, claimed_at, status, headers,"
        " body) VALUES (?, ?, ?, ?, 201, '{}', ?)",
        [tokens.hash_key(token), "old", "another request", old, b"[]"],
    )
    first = await client.post("/books/", json=BOOK, headers=keyed(auth, "old"))
    assert first.status_code == 201, first.text
    again = await client.post("/books/", json=BOOK, headers=keyed(auth, "old"))
    assert answer(again) == answer(first)
    assert await count(db) == 1


async def test_keys_are_per_token(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    other = {"Authorization": f"Token {await tokens.create_token(name='other')}"}
    mine = await client.post("/books/", json=BOOK, headers=keyed(auth, "shared"))
    theirs = await client.post("/books/", json=BOOK, headers=keyed(other, "shared"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await count(db) == 2


async def test_a_revoked_token_gets_no_stored_answer(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    first = await client.post("/books/", json=BOOK, headers=keyed(auth, "then-revoked"))
    assert first.status_code == 201
    await tokens.revoke_token(name="tester")
    again = await client.post("/books/", json=BOOK, headers=keyed(auth, "then-revoked"))
    assert again.status_code == 401
    assert again.json() == {"detail": "Invalid token."}
    assert await count(db) == 1


async def test_a_write_that_stored_nothing_frees_its_key(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    await tokens.revoke_token(name="tester")
    rejected = await client.post("/books/", json=BOOK, headers=keyed(auth, "again"))
    assert rejected.status_code == 401
    # Nothing stored, not even the key: a retry with a valid token runs.
    assert await db.fetch("SELECT key FROM idempotency_key") == []
    assert await count(db) == 0


async def test_keys_are_kept_a_day_then_pruned(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    assert (await client.post("/books/", json=BOOK, headers=keyed(auth, "day"))).status_code == 201
    now = int(time.time() * 1000)
    day = int(idempotency.RETENTION * 1000)
    await idempotency.prune(db.fetch, now_ms=now + day - 60_000)  # a minute short of a day
    assert len(await db.fetch("SELECT key FROM idempotency_key")) == 1
    await idempotency.prune(db.fetch, now_ms=now + day + 60_000)
    assert len(await db.fetch("SELECT key FROM idempotency_key")) == 0


@pytest.mark.parametrize(
    "key",
    [b"", b"a b", "é".encode(), b"x" * 256, b"tab\there"],
    ids=["empty", "space", "non-ascii", "long", "tab"],
)
async def test_a_malformed_key_is_400_naming_the_header(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend, key: bytes
) -> None:
    headers = [*auth.items(), ("Idempotency-Key", key)]
    response = await client.post("/books/", json=BOOK, headers=httpx.Headers(headers))
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in response.json()["detail"]
    assert await count(db) == 0


async def test_a_key_given_twice_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    headers = [*auth.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = await client.post("/books/", json=BOOK, headers=httpx.Headers(headers))
    assert response.status_code == 400, response.text
    assert await count(db) == 0


async def test_without_a_key_nothing_is_stored_for_keys(
    client: httpx.AsyncClient, auth: dict[str, str], db: Backend
) -> None:
    assert (await client.post("/books/", json=BOOK, headers=auth)).status_code == 201
    assert (await client.post("/books/", json=BOOK, headers=auth)).status_code == 201
    assert await db.fetch("SELECT key FROM idempotency_key") == []
    assert await count(db) == 2
