"""An SQLite file moved away while a real server writes to it, then put back: the write
that found it gone went into it, so its answer says it may have been stored (not "not
stored"); the writes after it are refused before they start (nothing stored) until a
restart; and after the restart a retry with the same Idempotency-Key gives the stored
answer instead of writing a duplicate."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import httpx
from server_process import BOOK, make_token, running_server

from api.errors import IDEMPOTENCY_MISMATCH


def titles(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT title FROM book ORDER BY id")]


def test_writes_to_a_file_moved_away_and_back_are_replayed_not_duplicated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    away = tmp_path / "away.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    keyed = {**auth, "Idempotency-Key": "moved-1"}
    moved = dict(BOOK, title="written while moved")
    with running_server(tmp_path, {"DATABASE_URL": url}) as server:
        first = httpx.post(f"{server.url}/books/", json=BOOK, headers=auth, timeout=10)
        assert first.status_code == 201, first.text
        os.rename(path, away)
        answer = httpx.post(f"{server.url}/books/", json=moved, headers=keyed, timeout=10)
        bare = httpx.post(f"{server.url}/books/", json=BOOK, headers=auth, timeout=10)
        os.rename(away, path)
    assert answer.status_code == 503, answer.text
    assert "may have been stored" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "30"
    assert bare.status_code == 503, bare.text
    assert "nothing was stored" in bare.json()["detail"]
    # The first was: it went into the file, which is back; the second was refused.
    assert titles(path) == ["T", "written while moved"]
    with running_server(tmp_path, {"DATABASE_URL": url}) as server:
        retry = httpx.post(f"{server.url}/books/", json=moved, headers=keyed, timeout=10)
        other = httpx.post(f"{server.url}/books/", json=BOOK, headers=keyed, timeout=10)
    assert retry.status_code == 201, retry.text
    assert retry.json()["title"] == "written while moved"
    assert retry.headers["location"].endswith(f"/books/{retry.json()['id']}/")
    assert other.status_code == 422 and other.json() == {"detail": IDEMPOTENCY_MISMATCH}
    assert titles(path) == ["T", "written while moved"]  # no duplicate
