"""Two instances (``python main.py serve``, one worker each) on one PostgreSQL database and
one Redis, as behind a load balancer, with 64 concurrent clients spread over both.

- Creates through both: every acknowledged book is stored once and read the same through
  either instance.
- ``PATCH`` with ``If-Match`` through both: per book and tag, exactly one of the racing
  writers wins and every other gets 412; unconditional writes all land.
- A token revoked by the CLI is refused by both instances at once.
- The rate limit is one budget across both instances (Redis).

Skipped unless TEST_DATABASE_URL and TEST_REDIS_URL are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import TEST_DATABASE_URL, TEST_REDIS_URL, PostgresSchema
from helpers import book
from server_process import Server, run_cli, running_server

from api.errors import INVALID_TOKEN, PRECONDITION_FAILED
from db import close_db, open_db, tokens

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        TEST_DATABASE_URL is None or TEST_REDIS_URL is None,
        reason="TEST_DATABASE_URL and TEST_REDIS_URL are not both set",
    ),
]

CLIENTS = 64
CREATES_EACH = 3  # two single creates and one bulk create of BULK books
BULK = 3
RACED_BOOKS = 16  # CLIENTS / RACED_BOOKS writers race for each book, through both instances
ROUNDS = 3
# Per token (every client has its own, and no client sends RATE requests): a burst of RATE
# then one more per 90 s, far longer than the test lasts, so exactly RATE requests of one
# token pass, whichever instance serves them.
RATE = 40


@contextlib.contextmanager
def two_instances(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[list[Server]]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RATE_LIMIT": f"{RATE}/hour",
        "WORKERS": "1",
        "HOST": "127.0.0.1",
    }
    with running_server(tmp_path / "a", env) as a, running_server(tmp_path / "b", env) as b:
        yield [a, b]


async def _tokens(database_url: str, names: list[str]) -> dict[str, str]:
    await open_db(database_url, run_migrations=False)
    try:
        return {name: await tokens.create_token(name=name) for name in names}
    finally:
        await close_db()


@contextlib.asynccontextmanager
async def _clients(servers: list[Server]) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=s.url, limits=limits, timeout=httpx.Timeout(60.0))
            )
            for s in servers
        ]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def _list_all(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    url: str | None = "/books/?limit=100"
    while url:
        page = (await client.get(url, headers=auth)).json()
        rows += page["results"]
        url = page["next"] and page["next"].removeprefix(str(client.base_url).rstrip("/"))
    return rows


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    return tmp_path


async def test_two_instances_share_one_database_and_one_rate_limit(
    tmp: Path, postgres: PostgresSchema
) -> None:
    assert TEST_REDIS_URL is not None
    postgres.reset()
    names = [f"client-{n}" for n in range(CLIENTS)] + ["audit", "burst"]
    keys = await _tokens(postgres.url, names)
    auth = {name: _auth(key) for name, key in keys.items()}

    with two_instances(tmp, postgres.url, TEST_REDIS_URL) as servers:
        async with _clients(servers) as via:
            # 1. Creates, client n through instance n % 2 then alternating.
            async def creator(n: int) -> list[httpx.Response]:
                out = []
                for i in range(CREATES_EACH):
                    body: Any = book(n * 10 + i, title=f"c{n}-{i}")
                    if i == CREATES_EACH - 1:
                        body = [book(n * 10 + i, title=f"c{n}-{i}-{j}") for j in range(BULK)]
                    out.append(
                        await via[(n + i) % 2].post(
                            "/books/", json=body, headers=auth[f"client-{n}"]
                        )
                    )
                return out

            created = [r for rs in await asyncio.gather(*map(creator, range(CLIENTS))) for r in rs]
            assert [(r.status_code, r.text[:200]) for r in created if r.status_code != 201] == []
            acknowledged = {}
            for r in created:
                for item in r.json() if isinstance(r.json(), list) else [r.json()]:
                    acknowledged[item["id"]] = item
            expected = CLIENTS * (CREATES_EACH - 1 + BULK)
            assert len(acknowledged) == expected

            # Nothing lost, nothing doubled, the same through either instance.
            for client in via:
                assert (await client.get("/books/?limit=1", headers=auth["audit"])).json()[
                    "count"
                ] == expected
                stored = await _list_all(client, auth["audit"])
                assert {row["id"]: row for row in stored} == acknowledged
                assert len(stored) == expected

            # 2. If-Match races: for each raced book and round, CLIENTS / RACED_BOOKS writers
            # (half through each instance) send the same tag; exactly one wins.
            raced = sorted(acknowledged)[:RACED_BOOKS]
            tags = {}
            for i, book_id in enumerate(raced):
                got = await via[i % 2].get(f"/books/{book_id}/", headers=auth[f"client-{i}"])
                tags[book_id] = got.headers["etag"]
            for rnd in range(ROUNDS):

                async def contender(n: int, rnd: int = rnd) -> tuple[int, int, httpx.Response]:
                    book_id = raced[n % RACED_BOOKS]
                    headers = {**auth[f"client-{n}"], "If-Match": tags[book_id]}
                    patch = {"title": f"won-r{rnd}-c{n}"}
                    response = await via[n % 2].patch(
                        f"/books/{book_id}/", json=patch, headers=headers
                    )
                    return book_id, n, response

                results = await asyncio.gather(*map(contender, range(CLIENTS)))
                outcomes: dict[int, Counter[int]] = {b: Counter() for b in raced}
                winners: dict[int, tuple[int, httpx.Response]] = {}
                for book_id, n, response in results:
                    outcomes[book_id][response.status_code] += 1
                    if response.status_code == 200:
                        winners[book_id] = (n, response)
                    else:
                        assert response.json() == {"detail": PRECONDITION_FAILED}
                per_book = CLIENTS // RACED_BOOKS
                assert outcomes == {b: Counter({200: 1, 412: per_book - 1}) for b in raced}, rnd
                # The winner's write is the stored one, seen through the other instance,
                # and its new tag is the one the next round races with.
                for book_id in raced:
                    n, response = winners[book_id]
                    other = via[(n + 1) % 2]
                    got = await other.get(f"/books/{book_id}/", headers=auth[f"client-{n}"])
                    assert got.json()["title"] == f"won-r{rnd}-c{n}"
                    assert got.headers["etag"] == response.headers["etag"] != tags[book_id]
                    tags[book_id] = response.headers["etag"]

            # 3. Unconditional writes by everyone at once, each to its own book, through the
            # instance it did not create it on: all land.
            own = {n: created[n * CREATES_EACH].json()["id"] for n in range(CLIENTS)}

            async def patcher(n: int) -> httpx.Response:
                return await via[(n + 1) % 2].patch(
                    f"/books/{own[n]}/", json={"price": f"{n}.25"}, headers=auth[f"client-{n}"]
                )

            patched = await asyncio.gather(*map(patcher, range(CLIENTS)))
            assert [r.status_code for r in patched] == [200] * CLIENTS
            stored = {row["id"]: row for row in await _list_all(via[0], auth["audit"])}
            assert [stored[own[n]]["price"] for n in range(CLIENTS)] == [
                f"{n}.25" for n in range(CLIENTS)
            ]

            # 4. Revoked through the CLI: refused by both instances, at once. A revoked
            # token's requests are rate-limited by address: these come from a loopback
            # address of their own, whose budget no other test (or session) has touched.
            victim = auth["client-0"]
            revoked = run_cli("token", "revoke", "client-0", env={"DATABASE_URL": postgres.url})
            assert revoked.returncode == 0, revoked.stderr
            address = f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.9"
            for server in (servers[1], servers[0]):
                transport = httpx.AsyncHTTPTransport(local_address=address)
                async with httpx.AsyncClient(transport=transport, base_url=server.url) as own:
                    refused = await own.post("/books/", json=book(1), headers=victim)
                assert refused.status_code == 401, refused.text
                assert refused.json() == {"detail": INVALID_TOKEN}

            # 5. One rate budget across both instances: of 2 * RATE requests of one token,
            # alternating between them, exactly RATE pass.
            burst = await asyncio.gather(
                *(via[i % 2].get("/books/?limit=1", headers=auth["burst"]) for i in range(2 * RATE))
            )
            statuses = Counter(r.status_code for r in burst)
            assert statuses == Counter({200: RATE, 429: RATE})
            refused_by = {i % 2 for i, r in enumerate(burst) if r.status_code == 429}
            assert refused_by == {0, 1}
            assert all(int(r.headers["retry-after"]) >= 1 for r in burst if r.status_code == 429)
