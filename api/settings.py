"""Settings: one frozen object read from the environment in one place, validated up front."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from db import DEFAULT_CONNECT_TIMEOUT, check_url
from db.preflight import DB_CHECKS
from db.sqlite import SYNCHRONOUS_LEVELS

DEFAULT_DATABASE_URL: Final = "sqlite://./data/bookshelf.sqlite3"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RATE_RE: Final = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS: Final = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}


class SettingsError(ValueError):
    """A bad environment variable; the message names it and says what is allowed."""


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period_seconds: int


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    access_log: bool = False
    rate_limit: RateLimit | None = None
    redis_url: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    request_timeout: float = 30.0
    response_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    graceful_shutdown_timeout: float = 15.0
    db_pool_min: int = 1
    db_pool_max: int = 10
    # Apply pending migrations when a worker starts (safe with several workers at once).
    migrate_on_start: bool = True
    # The deepest ``offset`` of a list (deeper pages: the cursor of the ``next`` links).
    max_offset: int = 100_000
    # Seconds a database statement may run before it is stopped (answered 503).
    statement_timeout: float = 5.0
    # Seconds a worker's event loop may go without showing the main process it runs; past
    # it the worker is killed and replaced (api.workers).
    worker_heartbeat_timeout: float = 5.0
    # SQLite's ``synchronous`` pragma: FULL (a write is answered once it is on disk) or
    # NORMAL (faster; the last commits can be lost to a power cut or an OS crash).
    sqlite_synchronous: str = "FULL"
    # What ``serve`` checks of the database's pages before it starts (``db.preflight``).
    db_check: str = "quick"
    # Seconds to open a database connection (PostgreSQL: TCP, TLS and its start-up answer).
    db_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kw: dict[str, object] = {}
        if "DATABASE_URL" in env:
            url = env["DATABASE_URL"].strip()
            try:
                check_url(url)
            except ValueError as exc:
                raise SettingsError(
                    f"DATABASE_URL: {exc}; use sqlite://PATH or postgres://USER@HOST/DB"
                ) from None
            if url.startswith("sqlite://") and url[len("sqlite://") :].split("?")[0] in (
                "",
                ":memory:",
            ):
                raise SettingsError(
                    "DATABASE_URL: an in-memory SQLite database cannot be shared by workers; "
                    "use sqlite://PATH"
                )
            kw["database_url"] = url
        if "HOST" in env:
            kw["host"] = env["HOST"].strip() or _fail("HOST", "must not be empty")
        kw.update(_int(env, "PORT", "port", 1, 65535))
        kw.update(_workers(env))
        kw.update(
            _choice(env, "LOG_LEVEL", "log_level", LOG_LEVELS, f"one of {', '.join(LOG_LEVELS)}")
        )
        kw.update(_bool(env, "ACCESS_LOG", "access_log"))
        if env.get("RATE_LIMIT", "").strip():
            match = _RATE_RE.match(env["RATE_LIMIT"])
            if not match or int(match.group(1)) < 1:
                _fail(
                    "RATE_LIMIT", f"{env['RATE_LIMIT']!r} is not like 100/s, 600/min or 5000/hour"
                )
            assert match
            kw["rate_limit"] = RateLimit(int(match.group(1)), _PERIODS[match.group(2)])
        if env.get("REDIS_URL", "").strip():
            redis_url = env["REDIS_URL"].strip()
            if not redis_url.startswith(("redis://", "rediss://", "unix://")):
                _fail("REDIS_URL", f"{redis_url!r} is not a redis:// URL")
            kw["redis_url"] = redis_url
        kw.update(_int(env, "MAX_BODY_BYTES", "max_body_bytes", 1024, 1 << 30))
        if "CORS_ORIGINS" in env:
            origins = tuple(o.strip() for o in env["CORS_ORIGINS"].split(",") if o.strip())
            for origin in origins:
                if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                    _fail(
                        "CORS_ORIGINS", f"{origin!r} is not * or an origin like https://example.com"
                    )
            kw["cors_origins"] = origins
        kw.update(_float(env, "REQUEST_TIMEOUT", "request_timeout"))
        kw.update(_float(env, "RESPONSE_TIMEOUT", "response_timeout"))
        kw.update(_float(env, "KEEP_ALIVE_TIMEOUT", "keep_alive_timeout"))
        kw.update(_float(env, "GRACEFUL_SHUTDOWN_TIMEOUT", "graceful_shutdown_timeout"))
        kw.update(_int(env, "DB_POOL_MIN", "db_pool_min", 1, 1000))
        kw.update(_int(env, "DB_POOL_MAX", "db_pool_max", 1, 1000))
        kw.update(_bool(env, "MIGRATE_ON_START", "migrate_on_start"))
        kw.update(_int(env, "MAX_OFFSET", "max_offset", 0, 10**12))
        kw.update(_float(env, "STATEMENT_TIMEOUT", "statement_timeout"))
        kw.update(_float(env, "WORKER_HEARTBEAT_TIMEOUT", "worker_heartbeat_timeout"))
        kw.update(
            _choice(
                env,
                "SQLITE_SYNCHRONOUS",
                "sqlite_synchronous",
                SYNCHRONOUS_LEVELS,
                "full or normal",
            )
        )
        kw.update(_choice(env, "DB_CHECK", "db_check", DB_CHECKS, "quick, full or off", str.lower))
        kw.update(_float(env, "DB_CONNECT_TIMEOUT", "db_connect_timeout"))
        settings = cls(**kw)  # type: ignore[arg-type]
        if settings.db_pool_min > settings.db_pool_max:
            _fail("DB_POOL_MIN", "must not exceed DB_POOL_MAX")
        return settings


def _fail(name: str, why: str) -> str:
    raise SettingsError(f"{name}: {why}")


def _choice(
    env: Mapping[str, str],
    name: str,
    attr: str,
    choices: tuple[str, ...],
    names: str,
    case: Callable[[str], str] = str.upper,
) -> dict[str, str]:
    """``{attr: value}`` when ``name`` is set to one of ``choices`` (in ``case``), else
    SettingsError saying which values it takes (``names``)."""
    if name not in env:
        return {}
    value = case(env[name].strip())
    if value not in choices:
        _fail(name, f"{env[name]!r} is not {names}")
    return {attr: value}


def _int(env: Mapping[str, str], name: str, attr: str, lo: int, hi: int) -> dict[str, int]:
    if name not in env:
        return {}
    raw = env[name].strip()
    if not re.fullmatch(r"\d+", raw) or not lo <= int(raw) <= hi:
        _fail(name, f"{env[name]!r} is not a whole number from {lo} to {hi}")
    return {attr: int(raw)}


def _float(env: Mapping[str, str], name: str, attr: str) -> dict[str, float]:
    if name not in env:
        return {}
    try:
        value = float(env[name])
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        _fail(name, f"{env[name]!r} is not a number of seconds from 0 to 3600")
    return {attr: value}


def _bool(env: Mapping[str, str], name: str, attr: str) -> dict[str, bool]:
    if name not in env:
        return {}
    raw = env[name].strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return {attr: True}
    if raw in ("0", "false", "no", "off", ""):
        return {attr: False}
    _fail(name, f"{env[name]!r} is not one of true, false, 1, 0, yes, no, on, off")
    return {}


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (containers)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        try:
            with open(quota_file) as fh:
                parts = fh.read().split()
            if period_file is None:
                quota, period = parts[0], parts[1]
            else:
                with open(period_file) as fh:
                    quota, period = parts[0], fh.read().strip()
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            return max(1, min(n, int(quota) // int(period)))
    return n


def _workers(env: Mapping[str, str]) -> dict[str, int]:
    if "WORKERS" not in env:
        return {}
    raw = env["WORKERS"].strip().lower()
    if raw == "auto":
        return {"workers": usable_cpus()}
    return _int(env, "WORKERS", "workers", 1, 256)
