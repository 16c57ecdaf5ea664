"""Rate limiting: DRF's 429 body with Retry-After, per token else per IP, one budget per
instance (shared memory across workers) or per cluster (Redis), surviving Redis outages.
The workers of a real server sharing one budget: tests/e2e/test_ratelimit_workers.py."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from api import Settings
from api.errors import THROTTLED
from api.ratelimit import LocalBudget, RedisBudget
from api.settings import RateLimit
from db import tokens
from tests.conftest import app_client

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, rate_limit=RateLimit(3, 60))
    async with app_client(settings) as c:
        yield c


async def test_over_the_limit_is_429_with_drf_body_and_retry_after(
    limited: httpx.AsyncClient,
) -> None:
    statuses = [(await limited.get("/books/")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = await limited.get("/books/")
    assert response.status_code == 429
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 20  # one request per 20 s refills at 3/min
    assert response.json() == {"detail": THROTTLED.format(n=wait)}
    assert response.headers["x-request-id"]


async def test_ops_routes_are_not_limited(limited: httpx.AsyncClient) -> None:
    for _ in range(6):
        assert (await limited.get("/healthz")).status_code == 200


async def test_a_valid_token_has_its_own_budget_and_a_bad_one_does_not(
    limited: httpx.AsyncClient,
) -> None:
    key = await tokens.create_token(name="limited")
    for _ in range(3):
        assert (await limited.get("/books/")).status_code == 200
    assert (await limited.get("/books/")).status_code == 429
    # A valid token is a different client than the IP it comes from...
    good = {"Authorization": f"Token {key}"}
    assert (await limited.get("/books/", headers=good)).status_code == 200
    # ...but a made-up token does not buy a fresh budget.
    bad = {"Authorization": "Token made-up-key"}
    assert (await limited.get("/books/", headers=bad)).status_code == 429


def test_local_budget_allows_a_burst_then_one_per_interval() -> None:
    budget = LocalBudget()
    rate = RateLimit(5, 1)
    waits = [budget.take("k", rate) for _ in range(6)]
    assert waits[:5] == [0.0] * 5
    assert 0 < waits[5] <= 0.2 + 1e-6
    assert budget.take("other", rate) == 0.0


def test_local_budget_survives_a_full_table() -> None:
    budget = LocalBudget()
    rate = RateLimit(1, 3600)
    for i in range(20_000):
        budget.take(f"client-{i}", rate)
    assert budget.take("late-comer", rate) == 0.0
    assert budget.take("late-comer", rate) > 0


@needs_redis
async def test_redis_budget_is_shared_between_instances() -> None:
    assert REDIS_URL
    rate = RateLimit(4, 60)
    key = f"test-{os.getpid()}-{id(rate)}"
    first = RedisBudget(REDIS_URL, LocalBudget())
    second = RedisBudget(REDIS_URL, LocalBudget())
    try:
        waits = [await (first if i % 2 else second).take(key, rate) for i in range(5)]
    finally:
        await first.close()
        await second.close()
    assert waits[:4] == [0.0] * 4
    assert waits[4] > 0


async def test_redis_down_keeps_serving_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 9: every call fails fast, the local budget takes over.
    budget = RedisBudget("redis://127.0.0.1:9/0", LocalBudget())
    rate = RateLimit(2, 60)
    with caplog.at_level(logging.WARNING, logger="bookshelf.ratelimit"):
        waits = [await budget.take("k", rate) for _ in range(3)]
        budget.down_until = 0.01  # retry now: still down, but already reported
        await budget.take("k2", rate)
    await budget.close()
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
