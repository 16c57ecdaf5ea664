"""The real server with WORKERS=2 on one SQLite file: 64 concurrent writers, no write lost,
and the If-Match race decided once across processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from helpers import book
from server_process import run_cli, running_server

WRITERS = 64
POSTS_EACH = 3


async def _writer(client: httpx.AsyncClient, n: int, auth: dict[str, str]) -> list[httpx.Response]:
    responses = []
    for i in range(POSTS_EACH):
        if i == POSTS_EACH - 1 and n % 8 == 0:
            # Some writers send a small bulk create as their last write.
            data: object = [book(n * 100 + i, title=f"w{n}-{i}-{j}") for j in range(3)]
        else:
            data = book(n * 100 + i, title=f"w{n}-{i}")
        responses.append(await client.post("/books/", json=data, headers=auth))
    return responses


@pytest.mark.server
async def test_64_concurrent_writers_on_two_workers(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'server.sqlite3'}"
    created = run_cli("token", "create", "load", env={"DATABASE_URL": db_url})
    assert created.returncode == 0, created.stderr
    auth = {"Authorization": f"Token {created.stdout.strip()}"}

    with running_server(tmp_path, {"WORKERS": "2", "DATABASE_URL": db_url}) as server:
        limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS)
        async with httpx.AsyncClient(
            base_url=server.url, limits=limits, timeout=httpx.Timeout(60.0)
        ) as client:
            results = await asyncio.gather(*(_writer(client, n, auth) for n in range(WRITERS)))
            responses = [r for batch in results for r in batch]
            failures = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 201]
            assert failures == []
            assert not any("locked" in r.text for r in responses)

            acknowledged: list[int] = []
            for r in responses:
                body = r.json()
                acknowledged += [b["id"] for b in body] if isinstance(body, list) else [body["id"]]
            expected = WRITERS * POSTS_EACH + (WRITERS // 8) * 2
            assert len(acknowledged) == len(set(acknowledged)) == expected

            # Every acknowledged write is in the database, seen by both workers.
            count = (await client.get("/books/")).json()["count"]
            assert count == expected
            stored: list[int] = []
            url: str | None = "/books/?limit=100"
            while url:
                page = (await client.get(url)).json()
                stored += [b["id"] for b in page["results"]]
                url = page["next"]
            assert sorted(stored) == sorted(acknowledged)
            gets = await asyncio.gather(
                *(client.get(f"/books/{i}/") for i in acknowledged[:: max(1, expected // 64)])
            )
            assert all(g.status_code == 200 for g in gets)

            # 20 PATCHes with the same current tag, spread over both workers: one wins.
            first = acknowledged[0]
            tag = (await client.get(f"/books/{first}/")).headers["etag"]
            race = await asyncio.gather(
                *(
                    client.patch(
                        f"/books/{first}/",
                        json={"title": f"race {n}"},
                        headers={**auth, "If-Match": tag},
                    )
                    for n in range(20)
                )
            )
            assert sorted(r.status_code for r in race) == [200] + [412] * 19
            (winner,) = [r for r in race if r.status_code == 200]
            assert (await client.get(f"/books/{first}/")).json() == winner.json()

            # A revocation by the CLI is seen at once by every worker.
            assert run_cli("token", "revoke", "load", env={"DATABASE_URL": db_url}).returncode == 0
            refused = await asyncio.gather(
                *(client.post("/books/", json=book(1), headers=auth) for _ in range(8))
            )
            assert [r.status_code for r in refused] == [401] * 8
        assert "database is locked" not in server.log()
