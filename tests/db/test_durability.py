"""A write is acknowledged only once it is on disk: every connection that writes commits
with ``synchronous=FULL`` unless SQLITE_SYNCHRONOUS trades it for speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings, SettingsError
from db import close_db, open_db

LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


async def synchronous_of(url: str, level: str | None) -> tuple[str, str]:
    """The level of the worker's connection and of the connection that counts."""
    backend = await open_db(url, synchronous=level, pool_min=1, pool_max=1)
    try:
        own = (await backend.fetch("PRAGMA synchronous"))[0][0]
        counter = await backend._open_counter()  # type: ignore[attr-defined]
        async with counter.execute("PRAGMA synchronous") as cursor:
            counted = (await cursor.fetchone())[0]
    finally:
        await close_db()
    return LEVELS[own], LEVELS[counted]


async def test_connections_commit_with_full_by_default(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'db.sqlite3'}"
    assert await synchronous_of(url, None) == ("FULL", "FULL")
    assert await synchronous_of(url, Settings().sqlite_synchronous) == ("FULL", "FULL")


async def test_normal_on_request(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'db.sqlite3'}"
    level = Settings.from_env({"SQLITE_SYNCHRONOUS": " normal "}).sqlite_synchronous
    assert await synchronous_of(url, level) == ("NORMAL", "NORMAL")


def test_a_bad_level_is_one_line() -> None:
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"SQLITE_SYNCHRONOUS": "fast"})
    assert str(bad.value) == "SQLITE_SYNCHRONOUS: 'fast' is not full or normal"


def test_db_check_is_quick_by_default_and_one_line_when_bad() -> None:
    assert Settings().db_check == "quick"
    assert Settings.from_env({"DB_CHECK": "FULL"}).db_check == "full"
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"DB_CHECK": "deep"})
    assert str(bad.value) == "DB_CHECK: 'deep' is not quick, full or off"
