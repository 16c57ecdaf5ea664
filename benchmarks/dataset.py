"""The data a run works on: a seeded database per row count, a token, and what the
scenarios draw from (authors that exist, search terms, cursors from real ``next`` links).

On SQLite the rows are seeded once into a template file and every target gets its own
copy, so one target's writes never change what another reads. A given ``--database-url``
is seeded in place (its book table is replaced) and shared.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from benchmarks.scenarios import Target
from benchmarks.servers import ROOT, http_get
from db import sqlite_path
from db.seed import SEARCH_TERMS, book_for

CURSOR_DEPTHS: Final = (0.25, 0.5, 0.75)
_PROGRESS: Final = re.compile(r"seeding: ([\d,]+)/")


@dataclass(frozen=True)
class Dataset:
    rows: int
    url: str
    owned: bool  # a template file of ours, copied per target
    token: str
    authors: tuple[str, ...]
    terms: tuple[str, ...]
    seed_seconds: float


class MainPyError(RuntimeError):
    """``python main.py ARGS`` exited with an error: its exit code and its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(
            f"main.py {' '.join(args)} failed ({returncode}):\n{stderr.strip()[-3000:]}"
        )
        self.returncode = returncode
        self.stderr = stderr


def main_py(args: list[str], database_url: str, timeout: float = 600) -> str:
    """Run ``python main.py ARGS`` on ``database_url``; its stdout."""
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise MainPyError(args, done.returncode, done.stderr)
    return done.stdout


def seed_timeout(rows: int) -> float:
    """How long a seed of ``rows`` may take before it is stopped: ten minutes plus a
    millisecond a row (PostgreSQL seeds about 20,000 rows/s on a busy 2-core machine, so
    10,000,000 rows take minutes, well inside the 3 hours allowed)."""
    return 600 + rows / 1000


def seed_rows(rows: int, *, seed: int, database_url: str, log: Callable[[str], None]) -> None:
    """``python main.py seed --count ROWS --replace`` on ``database_url``, its progress
    logged at every tenth of the rows; stopped after ``seed_timeout(rows)`` seconds."""
    args = ["seed", "--count", str(rows), "--seed", str(seed), "--replace"]
    env = {**os.environ, "DATABASE_URL": database_url}
    with subprocess.Popen(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            process.kill()

        watchdog = threading.Timer(seed_timeout(rows), stop)
        watchdog.start()
        tail: list[str] = []
        step, shown = max(1, rows // 10), 0
        try:
            assert process.stderr is not None
            for line in process.stderr:
                tail = [*tail[-60:], line]
                match = _PROGRESS.match(line.strip())
                if match:
                    done = int(match[1].replace(",", ""))
                    if done >= shown + step or done >= rows:
                        shown = done
                        log(f"rows={rows:,}: {line.strip()}")
            returncode = process.wait()
        finally:
            watchdog.cancel()
    if returncode != 0:
        if stopped.is_set():
            tail.append(f"stopped after {seed_timeout(rows):.0f} s\n")
        raise MainPyError(args, returncode, "".join(tail))


def url_for(database_url: str | None, rows: int) -> str | None:
    """The database of ``rows`` rows: ``{rows}`` in a URL is the row count (a file or a
    schema per row count, seeded once and used again by later runs)."""
    return database_url.replace("{rows}", str(rows)) if database_url else None


def already_seeded(database_url: str, rows: int, seed: int, probes: int = 64) -> bool:
    """Whether ``database_url`` holds exactly the ``rows`` books ``main.py seed --count
    ROWS --seed SEED --replace`` writes: ids 1..ROWS, every kept count in step, and the
    books at ``probes`` ids spread over them as the seed makes them."""
    import asyncio

    from db import close_db, open_db
    from db.backend import Backend

    async def check() -> bool:
        db: Backend = await open_db(database_url)
        try:
            span = await db.fetch(
                "SELECT (SELECT count(*) FROM book) AS n, (SELECT max(id) FROM book) AS hi,"
                " (SELECT n FROM book_count WHERE id = 1) AS kept"
            )
            n, hi, kept = span[0]["n"], span[0]["hi"], span[0]["kept"]
            if (n, hi, kept) != (rows, rows, rows):
                return False
            ids = sorted({1, rows, *range(1, rows + 1, max(1, rows // probes))})
            marks = ", ".join("?" * len(ids))
            found = await db.fetch(
                f"SELECT id, title, author, published_date, price_cents FROM book"
                f" WHERE id IN ({marks})",
                ids,
            )
            have = {
                r["id"]: (r["title"], r["author"], str(r["published_date"]), r["price_cents"])
                for r in found
            }
            for i in ids:
                title, author, day, cents = book_for(i, seed=seed)
                if have.get(i) != (title, author, day.isoformat(), cents):
                    return False
            return True
        finally:
            await close_db()

    return asyncio.run(check())


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".migrate-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def prepare(
    rows: int,
    *,
    seed: int,
    database_url: str | None,
    work_dir: Path,
    log: Callable[[str], None] = print,
) -> Dataset:
    owned = database_url is None
    if database_url is None:
        path = work_dir / f"template-{rows}.sqlite3"
        _remove_sqlite(path)
        work_dir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite://{path}"
    started = time.perf_counter()
    if not owned and already_seeded(database_url, rows, seed):
        # Ten million rows take minutes to seed: a database that holds exactly what the
        # seed would write is used as it is (a run's writes, if any, make it differ).
        log(f"rows={rows:,}: {database_url} holds these rows already (seed {seed}); not seeded")
    else:
        seed_rows(rows, seed=seed, database_url=database_url, log=log)
    seconds = time.perf_counter() - started
    token = main_py(["token", "create", f"bench-{secrets.token_hex(4)}"], database_url).strip()
    step = max(1, rows // 64)
    authors = tuple(dict.fromkeys(book_for(i, seed=seed)[1] for i in range(1, rows + 1, step)))
    return Dataset(rows, database_url, owned, token, authors, SEARCH_TERMS, seconds)


def database_for(target: Target, dataset: Dataset, work_dir: Path) -> str | None:
    """The database URL ``target`` serves from: its own copy of our template."""
    if not target.needs_database:
        return None
    if target.sqlite_only and not dataset.url.startswith("sqlite://"):
        raise ValueError(f"{target.name} runs on SQLite only")
    if not dataset.owned:
        return dataset.url
    template = Path(sqlite_path(dataset.url) or "")
    copy = work_dir / f"{target.name}-{dataset.rows}.sqlite3"
    _remove_sqlite(copy)
    shutil.copyfile(template, copy)
    if Path(f"{template}-wal").exists():
        shutil.copyfile(f"{template}-wal", f"{copy}-wal")
    return f"sqlite://{copy}"


def remove(url: str | None) -> None:
    path = sqlite_path(url or "")
    if path:
        _remove_sqlite(Path(path))


def deep_cursors(
    base_url: str, rows: int, depths: tuple[float, ...] = CURSOR_DEPTHS, timeout: float = 300
) -> tuple[str, ...]:
    """Cursors from the ``next`` links met while walking the list from its first page,
    at each of ``depths`` (fractions of the table). Only the public API is used."""
    limit = max(1, min(100, rows // 8))
    wanted = sorted({max(1, int(rows * d)) for d in depths})
    url: str | None = f"{base_url}/books/?limit={limit}"
    seen, found, first = 0, [], None
    deadline = time.monotonic() + timeout
    while url and wanted and time.monotonic() < deadline:
        status, body = http_get(url)
        if status != 200:
            raise RuntimeError(f"GET {url} answered {status}: {body[:300]!r}")
        page = json.loads(body)
        seen += len(page["results"])
        url = page["next"]
        if not url:
            break
        cursor = parse_qs(urlsplit(url).query)["cursor"][0]
        first = first or cursor
        while wanted and seen >= wanted[0]:
            found.append(cursor)
            wanted.pop(0)
    if not found and first:
        found.append(first)
    return tuple(dict.fromkeys(found))
