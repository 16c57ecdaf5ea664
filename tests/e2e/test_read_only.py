"""``read_only`` is reported only when a write would fail: a file or folder made read-only
under a server that has the file open leaves its connection writing (the writes are
stored, /readyz answers 200); a file system that goes read-only fails the writes, and
/readyz says so (tests/e2e/test_ext4_errors.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
from faults import read_only, without_dac_override
from server_process import BOOK, Server, launch_server, make_token, readyz, stop, wait_ready


@contextlib.contextmanager
def server_as(tmp_path: Path, url: str, prefix: tuple[str, ...]) -> Iterator[Server]:
    """``main.py serve`` run through ``prefix`` (a user held to file modes)."""
    server = launch_server(tmp_path, {"DATABASE_URL": url}, prefix)
    try:
        wait_ready(server, 1)
        yield server
    finally:
        stop(server.process)


def stored(path: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM book")}


def writes(server: Server, auth: dict[str, str]) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
        created = [client.post("/books/", json=BOOK) for _ in range(5)]
        book = created[0].json()["id"]
        created.append(client.patch(f"/books/{book}/", json={"price": "2.00"}))
    return created


def test_a_folder_bind_mounted_read_only_keeps_the_open_file_writable(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "db.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    with server_as(tmp_path, url, ()) as server:
        with read_only(folder):
            answers = writes(server, auth)
            body = readyz(server, 200)
    assert [a.status_code for a in answers] == [201] * 5 + [200], [a.text for a in answers]
    assert {a.json()["id"] for a in answers} <= stored(path)
    assert body["database"] == "ok"


def test_a_file_and_folder_made_read_only_keep_the_open_file_writable(tmp_path: Path) -> None:
    prefix = without_dac_override()  # root would write whatever the modes
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "db.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    with server_as(tmp_path, url, prefix) as server:
        path.chmod(0o444)
        folder.chmod(0o555)
        try:
            answers = writes(server, auth)
            body = readyz(server, 200)
        finally:
            folder.chmod(0o755)
            path.chmod(0o644)
    assert [a.status_code for a in answers] == [201] * 5 + [200], [a.text for a in answers]
    assert {a.json()["id"] for a in answers} <= stored(path)
    assert body["database"] == "ok"
