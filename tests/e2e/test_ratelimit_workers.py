"""The workers of one real server instance share one rate-limit budget (shared memory)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.server_process import running_server


@pytest.mark.server
def test_workers_of_one_instance_share_one_budget(tmp_path: Path) -> None:
    env = {"WORKERS": "2", "RATE_LIMIT": "20/min"}
    with running_server(tmp_path, env) as server:
        # Fresh connections land on both workers; together they get 20, not 40.
        async def burst() -> list[int]:
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.url, limits=no_reuse, timeout=30) as c:
                responses = await asyncio.gather(*(c.get("/books/") for _ in range(40)))
            return [r.status_code for r in responses]

        statuses = asyncio.run(burst())
    # /readyz polling at start-up is exempt, so exactly 20 fit the budget.
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 20
