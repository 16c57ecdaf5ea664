"""Configuration: every variable validated at start-up, one clear line, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from api.settings import RateLimit, Settings, SettingsError
from tests.server_process import ROOT


def test_defaults_serve_sqlite_under_data() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite://./data/")
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.rate_limit is None and settings.access_log is False


def test_good_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://app@db:5432/books",
            "PORT": "9000",
            "WORKERS": "4",
            "LOG_LEVEL": "debug",
            "ACCESS_LOG": "yes",
            "RATE_LIMIT": "100/s",
            "REDIS_URL": "redis://cache:6379/0",
            "MAX_BODY_BYTES": "65536",
            "CORS_ORIGINS": "https://a.example, http://b.example:8080",
            "REQUEST_TIMEOUT": "2.5",
        }
    )
    assert settings.port == 9000 and settings.workers == 4 and settings.log_level == "DEBUG"
    assert settings.access_log is True
    assert settings.rate_limit == RateLimit(100, 1)
    assert settings.cors_origins == ("https://a.example", "http://b.example:8080")
    assert settings.request_timeout == 2.5


def test_workers_auto_is_the_cpu_count() -> None:
    assert Settings.from_env({"WORKERS": "auto"}).workers >= 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "sqlite://:memory:"),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("WORKERS", "0"),
        ("WORKERS", "-2"),
        ("LOG_LEVEL", "LOUD"),
        ("ACCESS_LOG", "maybe"),
        ("RATE_LIMIT", "fast"),
        ("RATE_LIMIT", "0/s"),
        ("RATE_LIMIT", "10/fortnight"),
        ("REDIS_URL", "http://cache"),
        ("MAX_BODY_BYTES", "10"),
        ("MAX_BODY_BYTES", "1MB"),
        ("CORS_ORIGINS", "example.com"),
        ("REQUEST_TIMEOUT", "-1"),
        ("KEEP_ALIVE_TIMEOUT", "soon"),
        ("DB_POOL_MAX", "0"),
        ("MAX_OFFSET", "-1"),
        ("MAX_OFFSET", "1e5"),
        ("STATEMENT_TIMEOUT", "0"),
        ("STATEMENT_TIMEOUT", "5s"),
        ("WORKER_HEARTBEAT_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "0"),
        ("DB_CONNECT_TIMEOUT", "forever"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_offset_depth_and_statement_time_limit() -> None:
    assert (Settings().max_offset, Settings().statement_timeout) == (100_000, 5.0)
    settings = Settings.from_env({"MAX_OFFSET": "5000", "STATEMENT_TIMEOUT": "0.25"})
    assert (settings.max_offset, settings.statement_timeout) == (5000, 0.25)


def test_connect_timeout() -> None:
    assert Settings().db_connect_timeout == 5.0
    assert Settings.from_env({"DB_CONNECT_TIMEOUT": "0.5"}).db_connect_timeout == 0.5


def test_pool_min_above_max_is_refused() -> None:
    with pytest.raises(SettingsError, match="^DB_POOL_MIN: "):
        Settings.from_env({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"})


@pytest.mark.parametrize("command", [["serve"], ["token", "list"], ["migrate"]])
def test_main_exits_2_with_one_line_on_bad_configuration(command: list[str]) -> None:
    env = {**os.environ, "PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "main.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PORT" in lines[0]
    assert result.stdout == ""
