"""Pages corrupted while serving: the first statement that reads a bad page stops every
write of the instance at once (503 in every worker, nothing stored) and /readyz says
``corrupt``; a restart on the file refuses it with one line (``db.preflight``).

A real server with two workers; the file's bytes overwritten under it. The pages written
to are left intact, so writes would go on succeeding if nothing stopped them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import httpx
from faults import ROWS, corrupt, with_books
from server_process import BOOK, make_token, readyz, running_server


def fresh(url: str, method: str, path: str, **kw: object) -> httpx.Response:
    """One request on a connection of its own (either worker may take it)."""
    with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as client:
        return client.request(method, path, **kw)  # type: ignore[arg-type]


def test_a_corrupt_page_stops_writes_in_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    url = f"sqlite://{path}"
    auth = make_token(url)
    damaged = with_books(path)
    with running_server(tmp_path, {"DATABASE_URL": url, "WORKERS": "2"}) as server:
        before = fresh(server.url, "POST", "/books/", json=BOOK, headers=auth)
        corrupt(path, damaged)
        read = fresh(server.url, "GET", "/books/1/")
        writes = [
            fresh(server.url, "POST", "/books/", json=BOOK, headers=auth) for _ in range(20)
        ]
        patch = fresh(server.url, "PATCH", f"/books/{ROWS}/", json={"price": "3.00"}, headers=auth)
        ready = [fresh(server.url, "GET", "/readyz") for _ in range(10)]
        body = readyz(server, 503)
        log = server.log()
    assert before.status_code == 201, before.text
    assert read.status_code == 503, read.text
    assert "corrupt" in read.json()["detail"]
    for answer in [*writes, patch]:
        assert answer.status_code == 503, answer.text
        assert "corrupt" in answer.json()["detail"]
    assert {r.status_code for r in ready} == {503}
    assert {r.json()["database"] for r in ready} == {"corrupt"}
    assert body["database"] == "corrupt"
    assert "Traceback" not in log
    with contextlib.closing(sqlite3.connect(path)) as conn:
        newest = conn.execute("SELECT max(id) FROM book").fetchone()[0]
    assert newest == before.json()["id"]  # nothing written after the first bad page
