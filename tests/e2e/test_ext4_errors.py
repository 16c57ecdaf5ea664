"""An ext4 file system that fails while writes flow (``errors=remount-ro``): every write
answered 201 is in the database afterwards, and /readyz answers 503 once it is read-only.

A real loop-mounted ext4 image, a real server (two workers), 16 keep-alive writers. With
``SQLITE_SYNCHRONOUS=normal`` a commit is answered before the write-ahead log reaches the
disk, and the writes since the last checkpoint are lost with the file system.

ext4 itself reports a commit's fsync done when its journal aborts during that fsync (1
write in about 1 run in 10 under FULL, the last one acknowledged): the log's new
blocks reach the disk, but their extents stay in the transaction the abort discards, and
the next mount cuts the log back to its length before the commit. The server asks the
file system for a change after every commit (``db.health.confirm_write``), refused from
the journal's abort on, so such a write is answered 503 ("may have been stored"), not 201:
every write answered 201 must be stored, and none sent after the failure ended may be.
The writes in flight while the file system failed (``racing``) are reported apart.

The report's figure (acknowledged against stored, run after run)::

    python tests/e2e/test_ext4_errors.py --runs 10 [--synchronous normal]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

if __name__ == "__main__":  # run as a script: the test helpers and the project importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parents[2])]

from faults import Ext4, a_database, ext4
from server_process import BOOK, make_token, readyz, running_server

from db import health
from db.errors import OutcomeUnknownError

WRITERS = 16
# Writes acknowledged before the file system fails, and how long writers go on after it.
BEFORE_FAULT = 60
AFTER_FAULT = 2.0


@dataclass
class Outcome:
    acknowledged: set[int]
    stored: set[int]
    answers: dict[int, int]  # status -> how many
    ready: dict[str, object]
    racing: set[int]  # acknowledged, sent before the failure ended and answered after it began
    late: set[int]  # acknowledged, sent after the failure ended

    @property
    def lost(self) -> set[int]:
        return self.acknowledged - self.stored


async def write_until(
    url: str, auth: dict[str, str], disk: Ext4, acknowledged: set[int], answers: dict[int, int]
) -> tuple[set[int], set[int]]:
    """16 keep-alive writers; the file system fails once BEFORE_FAULT writes are
    acknowledged; they stop AFTER_FAULT seconds later (or after 60 s in all). The writes
    acknowledged while the failure happened (``Outcome.racing``), and after it."""
    failed_at: list[float] = []
    failure: list[float] = []  # when the failing began and ended
    sent_answered: dict[int, tuple[float, float]] = {}
    deadline = time.monotonic() + 60

    async def writer() -> None:
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as client:
            while time.monotonic() < deadline:
                if failed_at and time.monotonic() > failed_at[0] + AFTER_FAULT:
                    return
                sent = time.monotonic()
                try:
                    answer = await client.post("/books/", json=BOOK)
                except httpx.HTTPError:
                    answers[0] = answers.get(0, 0) + 1
                    continue
                answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
                if answer.status_code == 201:
                    acknowledged.add(answer.json()["id"])
                    sent_answered[answer.json()["id"]] = (sent, time.monotonic())
                if not failed_at and len(acknowledged) >= BEFORE_FAULT:
                    failed_at.append(time.monotonic())
                    await asyncio.to_thread(disk.fail)
                    failure[:] = [failed_at[0], time.monotonic()]

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    began, ended = failure
    racing = {i for i, (s, a) in sent_answered.items() if s < ended and a > began}
    late = {i for i, (s, _) in sent_answered.items() if s >= ended}
    return racing, late


def run_once(folder: Path, synchronous: str = "full") -> Outcome:
    with ext4(folder) as disk:
        path = disk.mount_point / "db.sqlite3"
        url = f"sqlite://{path}"
        auth = make_token(url)
        env = {"DATABASE_URL": url, "WORKERS": "2", "SQLITE_SYNCHRONOUS": synchronous}
        acknowledged: set[int] = set()
        answers: dict[int, int] = {}
        with running_server(folder, env) as server:
            racing, late = asyncio.run(write_until(server.url, auth, disk, acknowledged, answers))
            ready = readyz(server, 503)
        disk.remount()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            stored = {row[0] for row in conn.execute("SELECT id FROM book")}
    return Outcome(acknowledged, stored, answers, ready, racing, late)


def test_no_acknowledged_write_is_lost_when_ext4_fails(tmp_path: Path) -> None:
    outcome = run_once(tmp_path)
    assert len(outcome.acknowledged) >= BEFORE_FAULT
    # Every write answered 201 is stored, the ones in flight as ext4 failed too; none sent
    # after the failure ended is answered 201.
    assert outcome.lost == set(), (sorted(outcome.lost), sorted(outcome.racing))
    assert outcome.late == set(), sorted(outcome.late)
    # Writes after the failure are refused (the ones in flight then may have gone through).
    assert outcome.answers.get(503, 0) > 0, outcome.answers
    assert set(outcome.answers) <= {201, 503}, outcome.answers
    assert outcome.ready["database"] in ("read_only", "io_error"), outcome.ready


def test_readyz_says_read_only_once_ext4_fails_without_a_write(tmp_path: Path) -> None:
    with ext4(tmp_path) as disk:
        url = f"sqlite://{disk.mount_point / 'db.sqlite3'}"
        make_token(url)
        with running_server(tmp_path, {"DATABASE_URL": url, "WORKERS": "2"}) as server:
            disk.fail()
            bodies = [readyz(server, 503) for _ in range(4)]
    assert {body["database"] for body in bodies} == {"read_only"}, bodies


def test_a_commit_that_returns_once_ext4_has_failed_is_not_acknowledged(tmp_path: Path) -> None:
    """The check after every commit (``health.confirm_write``): once ext4's journal has
    aborted, a write whose commit returned all the same may be lost, and is not confirmed."""
    with ext4(tmp_path) as disk:
        path = disk.mount_point / "db.sqlite3"
        a_database(path)
        health.watch(f"sqlite://{path}")
        try:
            health.confirm_write()  # a healthy file system: confirmed
            disk.fail()
            with pytest.raises(OutcomeUnknownError) as caught:
                health.confirm_write()
        finally:
            health.watch(None)
    assert caught.value.reason == health.READ_ONLY, caught.value.reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    args = parser.parse_args()
    print(f"SQLITE_SYNCHRONOUS={args.synchronous}, {WRITERS} writers, WORKERS=2")  # noqa: T201
    print(  # noqa: T201
        "| run | acknowledged (201) | stored | lost | of them in flight while ext4 failed"
        " | answers | /readyz |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")  # noqa: T201
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            o = run_once(Path(folder), args.synchronous)
        stored = len(o.acknowledged & o.stored)
        extra = len(o.stored - o.acknowledged)
        print(  # noqa: T201
            f"| {run} | {len(o.acknowledged)} | {stored} (+{extra} not acknowledged) "
            f"| {len(o.lost)} | {len(o.lost & o.racing)} of {len(o.racing)} "
            f"| {dict(sorted(o.answers.items()))} | 503 {o.ready['database']} |"
        )


if __name__ == "__main__":
    main()
