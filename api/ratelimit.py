"""Per-client rate limiting (``RATE_LIMIT=100/s``), GCRA, one budget per instance or cluster.

The client is its API token when the request carries a valid one, else its IP address
(an invalid token would otherwise buy a fresh budget per request). The budget lives in

- Redis when ``REDIS_URL`` is set: one Lua script per request, timed by the Redis
  server's clock, so every instance shares it;
- else shared memory made by the main process before the workers start (Sanic's
  ``shared_ctx``), so every worker of the instance shares it.

If Redis goes away, the instance keeps serving on its local budget, logs that once, and
tries Redis again a few seconds later.

GCRA keeps one "theoretical arrival time" per client: a burst of ``N`` requests is
allowed, then one every ``period / N``; a refusal says exactly when the next one fits.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import time
from typing import Any, Final

from sanic import Request

from api.auth import token_from_header
from api.errors import Throttled
from api.settings import RateLimit
from db import tokens

log = logging.getLogger("bookshelf.ratelimit")

SLOTS: Final = 1 << 16
PROBES: Final = 8
REDIS_RETRY_SECONDS: Final = 5.0
KNOWN_TOKEN_SECONDS: Final = 30.0
EXEMPT_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics", "/docs"})

_LUA: Final = """
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - period - now
if wait > 0.001 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return '0'
"""


def _hash64(key: str) -> int:
    # Python's hash() differs between worker processes; this one does not.
    return (
        int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        or 1
    )


class LocalBudget:
    """GCRA over a fixed table of (key hash, arrival time) slots.

    The table is a pair of ``multiprocessing`` arrays when the main process made them
    (every worker shares them), else plain process memory (tests, single process).
    """

    def __init__(self, keys: Any = None, tats: Any = None, lock: Any = None) -> None:
        self.keys = keys if keys is not None else [0] * SLOTS
        self.tats = tats if tats is not None else [0.0] * SLOTS
        self.lock = lock

    @classmethod
    def shared(cls) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        return {
            "rl_keys": ctx.RawArray("q", SLOTS),
            "rl_tats": ctx.RawArray("d", SLOTS),
            "rl_lock": ctx.Lock(),
        }

    def take(self, key: str, rate: RateLimit) -> float:
        """Seconds to wait before this request would fit; 0.0 when it is allowed."""
        h = _hash64(key)
        now = time.monotonic()  # CLOCK_MONOTONIC is system-wide: one clock for all workers
        interval = rate.period_seconds / rate.requests
        if self.lock is not None:
            with self.lock:
                return self._take(h, now, interval, rate.period_seconds)
        return self._take(h, now, interval, rate.period_seconds)

    def _take(self, h: int, now: float, interval: float, period: float) -> float:
        keys, tats = self.keys, self.tats
        start = h % SLOTS
        slot = -1
        oldest = start
        for i in range(PROBES):
            j = (start + i) % SLOTS
            if keys[j] == h:
                slot = j
                break
            if slot < 0 and (keys[j] == 0 or tats[j] <= now):
                slot = j  # free or expired; keep looking for this key's own slot
            if tats[j] < tats[oldest]:
                oldest = j
        if slot < 0:
            slot = oldest
        tat = tats[slot] if keys[slot] == h else now
        tat = max(tat, now)
        new_tat = tat + interval
        wait = new_tat - period - now
        if wait > 1e-6:  # not a rounding residue of (now + period) - period - now
            return wait
        keys[slot] = h
        tats[slot] = new_tat
        return 0.0


class RedisBudget:
    def __init__(self, url: str, fallback: LocalBudget) -> None:
        import redis.asyncio as redis

        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.25, health_check_interval=30
        )
        self.script = self.client.register_script(_LUA)
        self.fallback = fallback
        self.down_until = 0.0
        self.url = url

    async def take(self, key: str, rate: RateLimit) -> float:
        now = time.monotonic()
        if now < self.down_until:
            return self.fallback.take(key, rate)
        period_ms = rate.period_seconds * 1000
        try:
            result = await self.script(
                keys=[f"bookshelf:rl:{key}"], args=[period_ms, period_ms / rate.requests]
            )
        except Exception as exc:  # any Redis failure: serve on, limit locally
            if self.down_until == 0.0:
                log.warning(
                    "Redis unreachable, rate limit falls back to this instance's budget",
                    extra={"redis_url": self.url, "error": repr(exc)},
                )
            self.down_until = now + REDIS_RETRY_SECONDS
            return self.fallback.take(key, rate)
        if self.down_until:
            log.warning("Redis is back, rate limit shared again", extra={"redis_url": self.url})
            self.down_until = 0.0
        return float(result) / 1000

    async def close(self) -> None:
        await self.client.aclose()


class RateLimiter:
    def __init__(self, rate: RateLimit, budget: Any) -> None:
        self.rate = rate
        self.budget = budget
        self._known: dict[str, float] = {}

    async def client_key(self, request: Request) -> str:
        key = token_from_header(request.headers.get("authorization"))
        if key is not None:
            digest = tokens.hash_key(key)
            now = time.monotonic()
            # Only *who* is asking is cached here, never whether a write is allowed:
            # authentication itself always asks the database.
            if self._known.get(digest, 0.0) > now or await request.app.ctx.db.digest_is_active(
                digest
            ):
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[digest] = now + KNOWN_TOKEN_SECONDS
                return f"t:{digest}"
        return f"ip:{request.remote_addr or request.ip}"

    async def check(self, request: Request) -> None:
        path = request.path.rstrip("/") or "/"
        if path in EXEMPT_PATHS or path.startswith("/docs/"):
            return
        key = await self.client_key(request)
        taken = self.budget.take(key, self.rate)
        wait = await taken if not isinstance(taken, float) else taken
        if wait > 0:
            raise Throttled(max(1, math.ceil(wait)))


def register(app: Any) -> None:
    settings = app.ctx.settings
    if settings.rate_limit is None:
        return

    @app.main_process_start
    async def _make_shared_budget(app: Any) -> None:
        for name, value in LocalBudget.shared().items():
            setattr(app.shared_ctx, name, value)

    @app.before_server_start
    async def _make_limiter(app: Any) -> None:
        shared = app.shared_ctx
        local = (
            LocalBudget(shared.rl_keys, shared.rl_tats, shared.rl_lock)
            if hasattr(shared, "rl_keys")
            else LocalBudget()
        )
        budget = RedisBudget(settings.redis_url, local) if settings.redis_url else local
        app.ctx.rate_limiter = RateLimiter(settings.rate_limit, budget)

    @app.after_server_stop
    async def _close(app: Any) -> None:
        budget = app.ctx.rate_limiter.budget
        if isinstance(budget, RedisBudget):
            await budget.close()

    async def _throttle(request: Request) -> None:
        await request.app.ctx.rate_limiter.check(request)

    app.register_middleware(_throttle, "request")
