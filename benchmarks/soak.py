"""A bounded soak of the real server: ``python -m benchmarks.soak --help``.

Starts ``python main.py serve`` with ``WORKERS=2`` on 127.0.0.1 (a free port) on a freshly
seeded SQLite file (or a given PostgreSQL database), runs a mixed load of reads and
acknowledged writes for ``--minutes``, SIGKILLs one worker every ``--kill-every`` seconds
(taking turns), samples every process's RSS each second, stops the server with SIGTERM
while the load goes on, and then reads the database directly to check that every
acknowledged write is stored as it was answered.

Writes are made so that each has one possible outcome: a client writes only books it
created itself, one request at a time, and stops writing to a book once a write to it went
unanswered (a timeout, a dropped connection, a 5xx: its outcome is unknown). So the stored
state of each book is known exactly, or is one of two states.

Results: ``benchmarks/results/soak_<n>.json``, ``.md`` (summary and per-minute tables)
and ``.png`` (RSS per process, requests/s, 5xx and errors over time, kills marked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS_DIR: Final = ROOT / "benchmarks" / "results"
INSTALL: Final = "install the bench extra: pip install -e '.[bench]'"
WORKERS: Final = 2
# Sanic names each serving process in its environment (sanic/worker/process.py); its
# other children (the multiprocessing manager, the resource tracker) have no such name.
WORKER_ENV: Final = "SANIC_WORKER_NAME"
FIELDS: Final = ("requests", "ok", "c4xx", "c5xx", "errors", "timeouts")
READ_SHARE: Final = 0.7

try:
    import httpx
    import psutil
except ImportError as exc:  # reported by main() in one line
    MISSING: str | None = exc.name
else:
    MISSING = None


class SoakError(Exception):
    """A problem a person can fix: printed as one line."""


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # noqa: T201


# --- the command line ------------------------------------------------------------------


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive number")
        return value

    return parse


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 (no kills) or a positive number")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Soak the real server (WORKERS=2) on 127.0.0.1 with mixed reads and "
        "writes, kill -9 a worker at intervals, stop it with SIGTERM, then check the "
        "database holds every acknowledged write. Results: benchmarks/results/"
        "soak_<n>.{json,md,png}.",
    )
    p.add_argument(
        "--minutes", type=_positive(float), default=10.0, help="load duration (default 10)"
    )
    p.add_argument(
        "--kill-every",
        type=_not_negative,
        default=60.0,
        metavar="SECONDS",
        help="kill -9 one worker (taking turns) this often; 0: never (default 60)",
    )
    p.add_argument(
        "--clients", type=_positive(int), default=16, help="concurrent clients (default 16)"
    )
    p.add_argument(
        "--database-url",
        help="a PostgreSQL database to soak (its book table is REPLACED by the seed); "
        "default: a fresh SQLite file under benchmarks/results/tmp/",
    )
    p.add_argument(
        "--rows", type=_positive(int), default=10_000, help="rows seeded first (default 10000)"
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        help="seconds a request may take before it counts as a timeout (default 10)",
    )
    p.add_argument(
        "--stop-timeout",
        type=_positive(float),
        default=30.0,
        help="seconds the server gets to exit after SIGTERM before it is killed (default 30)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the rows and the requests")
    p.add_argument(
        "--out",
        type=Path,
        help="path prefix of the results (default benchmarks/results/soak_<n>)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=RESULTS_DIR / "tmp",
        help="where the SQLite file and the server log go (default benchmarks/results/tmp)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return p


@dataclass(frozen=True)
class Config:
    minutes: float
    kill_every: float
    clients: int
    database_url: str | None
    rows: int
    timeout: float
    stop_timeout: float
    seed: int
    out: Path | None
    work_dir: Path
    plot: bool

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def check(self) -> None:
        if self.database_url is not None:
            scheme = urlsplit(self.database_url).scheme
            if scheme not in ("postgres", "postgresql", "psycopg", "asyncpg"):
                raise SoakError(
                    f"--database-url {self.database_url!r}: give a postgres:// URL "
                    "(leave it out to soak a fresh SQLite file)"
                )

    def public(self) -> dict[str, Any]:
        out = {
            "minutes": self.minutes,
            "kill_every_s": self.kill_every,
            "clients": self.clients,
            "workers": WORKERS,
            "rows": self.rows,
            "timeout_s": self.timeout,
            "stop_timeout_s": self.stop_timeout,
            "seed": self.seed,
            "database": "sqlite",
        }
        if self.database_url:
            parts = urlsplit(self.database_url)
            out["database"] = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        return out


# --- the database: seed, token, and the final check --------------------------------------


def _main_py(args: list[str], database_url: str, timeout: float = 600) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    try:
        done = subprocess.run(
            [sys.executable, "main.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SoakError(
            f"main.py {args[0]} took over {timeout:.0f} s; is the database up?"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["(no output)"]
        command = " ".join(a for a in args[:2] if not a.startswith("-"))
        raise SoakError(f"main.py {command} failed ({done.returncode}): {lines[-1]}")
    return done.stdout


def _sqlite_files(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", ".migrate-lock")]


def _pg_options(url: str) -> dict[str, Any]:
    from db import build_config

    credentials = dict(build_config(url)["connections"]["default"]["credentials"])
    schema = credentials.pop("schema", None)
    for key in ("minsize", "maxsize", "application_name"):
        credentials.pop(key, None)
    if schema:
        credentials["server_settings"] = {"search_path": schema}
    return credentials


@dataclass
class Stored:
    rows: dict[int, tuple[str, str, str, int]]  # id -> title, author, date, cents (new rows)
    count: int
    book_count: int | None
    author_counts_ok: bool
    integrity: str | None  # SQLite's integrity_check; None on PostgreSQL


_ROWS_SQL: Final = "SELECT id, title, author, published_date, price_cents FROM book WHERE id > "
_AUTHORS_SQL: Final = "SELECT author, count(*) FROM book GROUP BY author"


def _read_sqlite(path: Path, seeded: int) -> Stored:
    con = sqlite3.connect(path, timeout=30)
    try:
        integrity = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
        rows = {
            r[0]: (r[1], r[2], str(r[3]), r[4]) for r in con.execute(_ROWS_SQL + "?", (seeded,))
        }
        count = con.execute("SELECT count(*) FROM book").fetchone()[0]
        book_count = con.execute("SELECT n FROM book_count WHERE id = 1").fetchone()
        authors = dict(con.execute(_AUTHORS_SQL).fetchall())
        kept = dict(con.execute("SELECT author, n FROM book_author_count WHERE n > 0").fetchall())
    finally:
        con.close()
    return Stored(rows, count, book_count[0] if book_count else None, authors == kept, integrity)


async def _read_postgres(url: str, seeded: int) -> Stored:
    import asyncpg

    con = await asyncpg.connect(**_pg_options(url))
    try:
        rows = {
            r[0]: (r[1], r[2], r[3].isoformat(), r[4])
            for r in await con.fetch(_ROWS_SQL + "$1", seeded)
        }
        count = await con.fetchval("SELECT count(*) FROM book")
        book_count = await con.fetchval("SELECT n FROM book_count WHERE id = 1")
        authors = dict(await con.fetch(_AUTHORS_SQL))
        kept = dict(await con.fetch("SELECT author, n FROM book_author_count WHERE n > 0"))
    finally:
        await con.close()
    return Stored(rows, count, book_count, authors == kept, None)


# --- the load ------------------------------------------------------------------------------


@dataclass
class Book:
    """A book one client created: what the server acknowledged, and a write whose outcome
    is unknown (after which the client leaves the book alone)."""

    id: int
    title: str
    author: str
    date: str
    cents: int
    deleted: bool = False
    pending: tuple[str, str | None] | None = None  # ("patch", title) or ("delete", None)


@dataclass
class Tally:
    """Requests counted by the second they finished in, since the load began."""

    t0: float
    seconds: dict[int, Counter[str]] = field(default_factory=dict)
    latency: dict[int, list[float]] = field(default_factory=dict)  # by minute, answered only
    unexpected: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, started: float, now: float) -> None:
        second = int(now - self.t0)
        row = self.seconds.setdefault(second, Counter())
        row["requests"] += 1
        row[kind] += 1
        if kind in ("ok", "c4xx", "c5xx"):
            self.latency.setdefault(second // 60, []).append(now - started)


@dataclass
class Writes:
    acked: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    bad_answers: int = 0  # a success status whose body is not what was written
    stale_reads: int = 0  # a GET of an acknowledged book that did not show its last write


@dataclass
class Load:
    url: str
    token: str
    rows: int
    timeout: float
    seed: int
    tally: Tally
    writes: Writes = field(default_factory=Writes)
    books: list[Book] = field(default_factory=list)
    running: bool = True


def _kind(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if 400 <= status < 500:
        return "c4xx"
    if status >= 500:
        return "c5xx"
    return "other"


async def _client(n: int, load: Load) -> None:
    rng = random.Random(load.seed * 1_000_003 + n)
    mine: list[Book] = []  # created, not deleted, no unanswered write
    auth = {"Authorization": f"Token {load.token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=load.url, limits=limits, timeout=httpx.Timeout(load.timeout)
    ) as http:
        k = 0
        while load.running:
            k += 1
            method, path, body, book, label = "GET", "", None, None, ""
            roll = rng.random()
            if roll < READ_SHARE:
                pick = rng.random()
                if pick < 0.55:
                    path, label = f"/books/{rng.randint(1, load.rows)}/", "GET detail"
                elif pick < 0.75:
                    path, label = "/books/?limit=20", "GET list"
                elif pick < 0.9:
                    offset = rng.randint(0, max(0, load.rows - 20))
                    path, label = f"/books/?limit=20&offset={offset}", "GET list offset"
                elif mine:
                    book = rng.choice(mine)
                    path, label = f"/books/{book.id}/", "GET own"
                else:
                    path, label = "/books/?limit=5&ordering=-id", "GET list newest"
            else:
                pick = rng.random()
                if not mine or pick < 0.5:
                    cents = rng.randint(100, 99_999)
                    body = {
                        "title": f"soak c{n} #{k}",
                        "author": f"Soak Author {n % 8}",
                        "published_date": f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{k % 10}",
                        "price": f"{cents // 100}.{cents % 100:02d}",
                    }
                    method, path, label = "POST", "/books/", "POST"
                elif pick < 0.8:
                    book = rng.choice(mine)
                    body = {"title": f"soak c{n} #{k} patched"}
                    method, path, label = "PATCH", f"/books/{book.id}/", "PATCH"
                else:
                    book = rng.choice(mine)
                    method, path, label = "DELETE", f"/books/{book.id}/", "DELETE"
            started = time.monotonic()
            status: int | None = None
            answer: Any = None
            try:
                async with asyncio.timeout(load.timeout):
                    response = await http.request(
                        method, path, json=body, headers=auth if method != "GET" else None
                    )
                status = response.status_code
                if response.content and status != 204:
                    with contextlib.suppress(ValueError):
                        answer = response.json()
                kind = _kind(status)
            except (TimeoutError, httpx.TimeoutException):
                kind = "timeouts"
            except httpx.TransportError:
                kind = "errors"
            now = time.monotonic()
            load.tally.add(kind, started, now)
            if status is None:
                # A dropped connection: a killed worker, or a server going away. A short
                # pause keeps a refused port from turning into a busy loop.
                await asyncio.sleep(0.05)
            _settle(load, n, method, body, book, status, answer, label, mine)


def _settle(
    load: Load,
    n: int,
    method: str,
    body: dict[str, Any] | None,
    book: Book | None,
    status: int | None,
    answer: Any,
    label: str,
    mine: list[Book],
) -> None:
    """Record what the answer acknowledged (or that a write's outcome is unknown)."""
    w = load.writes
    if status is not None and method == "GET":
        if status != 200:
            load.tally.unexpected[f"{label} {status}"] += 1
        elif book is not None and isinstance(answer, dict) and answer.get("title") != book.title:
            w.stale_reads += 1
        return
    if method == "GET":
        return
    op = method.lower()
    expected = {"POST": 201, "PATCH": 200, "DELETE": 204}[method]
    if status == expected:
        w.acked[op] += 1
        if method == "POST":
            assert body is not None
            got = answer if isinstance(answer, dict) else {}
            if not isinstance(got.get("id"), int) or any(got.get(f) != v for f, v in body.items()):
                w.bad_answers += 1
                return
            cents = int(body["price"].replace(".", ""))
            new = Book(got["id"], body["title"], body["author"], body["published_date"], cents)
            load.books.append(new)
            mine.append(new)
        elif method == "PATCH":
            assert book is not None and body is not None
            if not isinstance(answer, dict) or answer.get("title") != body["title"]:
                w.bad_answers += 1
            book.title = body["title"]
        else:
            assert book is not None
            book.deleted = True
            mine.remove(book)
        return
    # Anything else: a write that may or may not have happened.
    w.unknown[op] += 1
    if status is not None:
        load.tally.unexpected[f"{method} {status}"] += 1
    if book is not None:
        book.pending = (op, body["title"] if body else None)
        mine.remove(book)


def verify(load: Load, stored: Stored, seeded: int) -> dict[str, Any]:
    """Compare every acknowledged write with the stored rows."""
    lost_creates, lost_updates, resurrected, wrong_fields = [], [], [], []
    known: set[int] = set()
    for b in load.books:
        known.add(b.id)
        row = stored.rows.get(b.id)
        pending_op, pending_title = b.pending or (None, None)
        if b.deleted:
            if row is not None:
                resurrected.append(b.id)
            continue
        if row is None:
            if pending_op != "delete":
                lost_creates.append(b.id)
            continue
        title, author, date, cents = row
        if (author, date, cents) != (b.author, b.date, b.cents):
            wrong_fields.append(b.id)
        if title != b.title and not (pending_op == "patch" and title == pending_title):
            lost_updates.append(b.id)
    extra = sorted(set(stored.rows) - known)
    unknown_creates = load.writes.unknown["post"]
    lost = len(lost_creates) + len(lost_updates) + len(resurrected)
    report = {
        "acknowledged": {
            "create": load.writes.acked["post"],
            "patch": load.writes.acked["patch"],
            "delete": load.writes.acked["delete"],
            "total": sum(load.writes.acked.values()),
        },
        "unknown_outcome": {
            "create": unknown_creates,
            "patch": load.writes.unknown["patch"],
            "delete": load.writes.unknown["delete"],
        },
        "lost_writes": lost,
        "lost_creates": lost_creates[:20],
        "lost_updates": lost_updates[:20],
        "deleted_but_present": resurrected[:20],
        "wrong_fields": len(wrong_fields),
        "bad_answers": load.writes.bad_answers,
        "stale_reads": load.writes.stale_reads,
        "stored_without_answer": len(extra),
        "unexplained_rows": max(0, len(extra) - unknown_creates),
        "integrity_check": stored.integrity,
        "book_count": stored.book_count,
        "count": stored.count,
        "counter_ok": stored.book_count == stored.count,
        "author_counts_ok": stored.author_counts_ok,
        "seeded_rows": seeded,
    }
    report["ok"] = (
        lost == 0
        and not wrong_fields
        and report["bad_answers"] == 0
        and report["stale_reads"] == 0
        and report["unexplained_rows"] == 0
        and stored.integrity in (None, "ok")
        and report["counter_ok"]
        and stored.author_counts_ok
    )
    return report


# --- the server's processes ----------------------------------------------------------------


@dataclass
class Watch:
    """The server's main process and its workers, by pid, sampled once a second."""

    main: Any  # psutil.Process
    t0: float = 0.0
    workers: dict[int, tuple[Any, str]] = field(default_factory=dict)  # pid -> (proc, name)
    others: dict[int, Any] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def discover(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in self.main.children():
                if child.pid in self.workers or child.pid in self.others:
                    continue
                try:
                    name = child.environ().get(WORKER_ENV, "")
                except psutil.Error:
                    continue
                if "-Server-" in name:
                    self.workers[child.pid] = (child, name)
                    self.first_seen[child.pid] = round(time.monotonic() - self.t0, 2)
                else:
                    self.others[child.pid] = child

    @staticmethod
    def _alive(proc: Any) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def alive(self) -> list[tuple[Any, str]]:
        return sorted(
            ((p, name) for p, name in self.workers.values() if self._alive(p)),
            key=lambda item: item[1],
        )

    @staticmethod
    def _rss(proc: Any) -> float | None:
        try:
            return round(proc.memory_info().rss / 2**20, 1)
        except psutil.Error:
            return None

    def sample(self) -> dict[str, Any]:
        self.discover()
        row = {
            "t": round(time.monotonic() - self.t0, 2),
            "main_rss_mb": self._rss(self.main) if self._alive(self.main) else None,
            "workers": {
                str(p.pid): {"name": name, "rss_mb": self._rss(p)} for p, name in self.alive()
            },
            "others_rss_mb": round(
                sum(r for p in self.others.values() if self._alive(p) and (r := self._rss(p))), 1
            ),
        }
        self.samples.append(row)
        return row

    def everything(self) -> list[Any]:
        return [self.main, *(p for p, _ in self.workers.values()), *self.others.values()]


def _kill_one(watch: Watch, last_slot: str | None, t: float) -> dict[str, Any]:
    """SIGKILL a live worker, another slot than the last one killed when there is one."""
    alive = watch.alive()
    if not alive:
        return {"t": round(t, 2), "pid": None, "worker": None, "skipped": "no live worker"}
    slot = {name: name.rsplit("-", 1)[0] for _, name in alive}
    proc, name = next(((p, n) for p, n in alive if slot[n] != last_slot), alive[0])
    try:
        proc.send_signal(signal.SIGKILL)  # psutil checks the pid is still this process
    except psutil.Error as exc:
        return {"t": round(t, 2), "pid": proc.pid, "worker": name, "skipped": str(exc)}
    return {"t": round(t, 2), "pid": proc.pid, "worker": name}


def _replacements(kills: list[dict[str, Any]], watch: Watch, start_pids: set[int]) -> None:
    """Pair each kill with the first worker that appeared after it (Sanic replacing it)."""
    new = sorted((t, pid) for pid, t in watch.first_seen.items() if pid not in start_pids)
    for kill in kills:
        if kill.get("skipped"):
            continue
        match = next(((t, pid) for t, pid in new if t >= kill["t"]), None)
        if match:
            new.remove(match)
            kill["replaced_by"] = match[1]
            kill["replaced_after_s"] = round(match[0] - kill["t"], 2)
        else:
            kill["replaced_by"] = None
            kill["replaced_after_s"] = None


# --- one soak -------------------------------------------------------------------------------


def _log_tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(empty log)"


def _wait_ready(server: Any, watch: Watch, timeout: float = 120.0) -> None:
    """Until both workers have said they are ready and /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SoakError(
                f"the server exited on start-up ({server.process.returncode}): "
                f"{_log_tail(server.log_path)} (log: {server.log_path})"
            )
        watch.discover()
        log = server.log_path.read_text(errors="replace")
        if log.count("Worker ready") >= WORKERS and len(watch.alive()) >= WORKERS:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=5.0).status_code == 200:
                    return
        time.sleep(0.2)
    raise SoakError(
        f"the server was not ready after {timeout:.0f} s: {_log_tail(server.log_path)} "
        f"(log: {server.log_path})"
    )


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


async def _drive(
    config: Config, server: Any, watch: Watch, load: Load, t0: float
) -> dict[str, Any]:
    clients = [asyncio.create_task(_client(n, load)) for n in range(config.clients)]
    kills: list[dict[str, Any]] = []
    next_kill = config.kill_every if config.kill_every > 0 else math.inf
    next_progress = 10.0
    last_slot: str | None = None
    stop: dict[str, Any] = {}
    try:
        while True:
            await asyncio.sleep(1.0 - ((time.monotonic() - t0) % 1.0))
            t = time.monotonic() - t0
            row = watch.sample()
            if t >= next_kill and t < config.seconds:
                kill = _kill_one(watch, last_slot, t)
                kills.append(kill)
                if kill.get("worker"):
                    last_slot = kill["worker"].rsplit("-", 1)[0]
                _say(
                    f"soak {t:5.0f} s: kill -9 skipped: {kill['skipped']}"
                    if kill.get("skipped")
                    else f"soak {t:5.0f} s: kill -9 {kill['worker']} (pid {kill['pid']})"
                )
                next_kill += config.kill_every
            if t >= next_progress:
                next_progress += 10.0
                seconds = load.tally.seconds
                recent = sum(
                    seconds.get(s, Counter())["requests"] for s in range(int(t) - 10, int(t))
                )
                total: Counter[str] = sum(seconds.values(), Counter())
                workers = "/".join(_mb(w["rss_mb"]) for w in row["workers"].values()) or "-"
                _say(
                    f"soak {t:5.0f} s: {recent / 10:6.1f} req/s; so far 5xx {total['c5xx']}, "
                    f"errors {total['errors']}, timeouts {total['timeouts']}; workers "
                    f"{len(row['workers'])}/{WORKERS}; RSS MB main {_mb(row['main_rss_mb'])}, "
                    f"workers {workers}"
                )
            if t >= config.seconds:
                break
            if server.process.poll() is not None:
                _say(f"soak {t:5.0f} s: the server exited by itself ({server.process.returncode})")
                break
        # SIGTERM while the clients keep going: an operator's stop under load.
        stop = await _terminate(config, server, watch, load, t0)
    finally:
        load.running = False
        await asyncio.gather(*clients, return_exceptions=True)
    stop["kills"] = kills
    return stop


async def _terminate(
    config: Config, server: Any, watch: Watch, load: Load, t0: float
) -> dict[str, Any]:
    sent = time.monotonic()
    stop: dict[str, Any] = {
        "t": round(sent - t0, 2),
        "by_itself": server.process.poll() is not None,
    }
    server.process.send_signal(signal.SIGTERM)  # nothing when it has exited by itself
    next_sample = sent + 1.0
    while server.process.poll() is None and time.monotonic() - sent < config.stop_timeout:
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_sample:
            next_sample += 1.0
            watch.sample()
    stop["exited"] = server.process.poll() is not None
    stop["seconds"] = round(time.monotonic() - sent, 2)
    stop["exit_code"] = server.process.returncode
    load.running = False  # the clients finish the requests they have sent
    if stop["exited"]:
        # Workers still running a second after the main process exited are orphans.
        await asyncio.sleep(1.0)
    stop["workers_left"] = [p.pid for p, _ in watch.alive()]
    return stop


def _cleanup(watch: Watch | None, server: Any) -> None:
    """SIGKILL whatever of the server is still running (psutil checks each pid)."""
    procs = watch.everything() if watch else []
    with contextlib.suppress(psutil.Error):
        procs += psutil.Process(server.process.pid).children(recursive=True)
    alive = [p for p in procs if Watch._alive(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(5)


def soak(config: Config) -> dict[str, Any]:
    from benchmarks import machine, servers
    from benchmarks.scenarios import SERVICE

    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config.work_dir.mkdir(parents=True, exist_ok=True)
    db_path: Path | None = None
    if config.database_url:
        url = config.database_url
    else:
        db_path = config.work_dir / f"soak-{secrets.token_hex(4)}.sqlite3"
        url = f"sqlite://{db_path}"
    try:
        _say(f"soak: seeding {config.rows:,} rows")
        _main_py(
            ["seed", "--count", str(config.rows), "--seed", str(config.seed), "--replace"], url
        )
        token = _main_py(["token", "create", f"soak-{secrets.token_hex(4)}"], url).strip()
        server = servers.start(SERVICE, workers=WORKERS, database_url=url, log_dir=config.work_dir)
        watch: Watch | None = None
        try:
            watch = Watch(psutil.Process(server.process.pid), t0=time.monotonic())
            _wait_ready(server, watch)
            start_pids = set(watch.workers)
            t0 = time.monotonic()
            watch.t0 = t0
            watch.first_seen = dict.fromkeys(watch.first_seen, 0.0)
            watch.sample()
            load = Load(server.url, token, config.rows, config.timeout, config.seed, Tally(t0))
            plan = f"kill -9 every {config.kill_every:g} s" if config.kill_every else "no kills"
            _say(
                f"soak: {config.minutes:g} min, {config.clients} clients, {WORKERS} workers "
                f"(pids {', '.join(map(str, sorted(start_pids)))}), {plan}; "
                f"server log {server.log_path}"
            )
            stop = asyncio.run(_drive(config, server, watch, load, t0))
        finally:
            _cleanup(watch, server)
        kills = stop.pop("kills")
        _replacements(kills, watch, start_pids)
        _say("soak: checking the database")
        if db_path is not None:
            stored = _read_sqlite(db_path, config.rows)
        else:
            stored = asyncio.run(_read_postgres(url, config.rows))
        check = verify(load, stored, config.rows)
    finally:
        if db_path is not None:
            for path in _sqlite_files(db_path):
                path.unlink(missing_ok=True)
    return {
        "kind": "soak",
        "config": config.public(),
        "machine": machine.describe(),
        "started_at": started_at,
        "server_log": str(server.log_path),
        "start_workers": sorted(start_pids),
        "kills": kills,
        "stop": stop,
        "verify": check,
        "unexpected_statuses": dict(load.tally.unexpected.most_common()),
        "seconds": _per_second(load.tally, watch),
        "minutes": _per_minute(load.tally, watch, kills, stop["t"]),
        "totals": _totals(load.tally, stop["t"]),
        "rss": _rss_summary(watch, stop["t"]),
    }


# --- the report --------------------------------------------------------------------------


def _per_second(tally: Tally, watch: Watch) -> list[dict[str, Any]]:
    last = max([*tally.seconds, *(int(s["t"]) for s in watch.samples)], default=0)
    by_second: dict[int, dict[str, Any]] = {}
    for s in watch.samples:
        by_second.setdefault(int(s["t"]), s)
    rows = []
    for second in range(last + 1):
        counts = tally.seconds.get(second, Counter())
        sample = by_second.get(second, {})
        rows.append(
            {
                "t": second,
                **{k: counts[k] for k in FIELDS},
                "workers": len(sample.get("workers", {})) if sample else None,
                "main_rss_mb": sample.get("main_rss_mb"),
                "worker_rss_mb": {pid: w["rss_mb"] for pid, w in sample.get("workers", {}).items()},
            }
        )
    return rows


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _per_minute(
    tally: Tally, watch: Watch, kills: list[dict[str, Any]], stop_t: float
) -> list[dict[str, Any]]:
    end = int(stop_t)  # the load's last whole second; the stop is counted apart
    minutes = max(1, math.ceil(end / 60))
    rows = []
    for m in range(minutes):
        counts: Counter[str] = Counter()
        for second in range(m * 60, min((m + 1) * 60, end)):
            counts.update(tally.seconds.get(second, Counter()))
        span = min(60, end - m * 60)
        samples = [s for s in watch.samples if m * 60 <= s["t"] < min((m + 1) * 60, end)]
        alive = [len(s["workers"]) for s in samples]
        mains = [s["main_rss_mb"] for s in samples if s["main_rss_mb"] is not None]
        wrss = [w["rss_mb"] for s in samples for w in s["workers"].values() if w["rss_mb"]]
        rows.append(
            {
                "minute": m + 1,
                **{k: counts[k] for k in FIELDS},
                "rps": round(counts["requests"] / span, 1) if span > 0 else None,
                "p50_ms": _pct(tally.latency.get(m, []), 0.5),
                "p99_ms": _pct(tally.latency.get(m, []), 0.99),
                "workers_min": min(alive, default=None),
                "workers_max": max(alive, default=None),
                "kills": sum(1 for k in kills if m * 60 <= k["t"] < (m + 1) * 60 and k["pid"]),
                "main_rss_mb": mains[-1] if mains else None,
                "worker_rss_max_mb": max(wrss, default=None),
            }
        )
    return rows


def _totals(tally: Tally, stop_t: float) -> dict[str, Any]:
    load: Counter[str] = Counter()
    during_stop: Counter[str] = Counter()
    for second, counts in tally.seconds.items():
        (load if second < int(stop_t) else during_stop).update(counts)
    return {
        "load": {k: load[k] for k in FIELDS}
        | {"rps": round(load["requests"] / max(1, int(stop_t)), 1)},
        "during_stop": {k: during_stop[k] for k in FIELDS},
    }


def _rss_summary(watch: Watch, stop_t: float) -> dict[str, Any]:
    samples = [s for s in watch.samples if s["t"] <= stop_t]
    mains = [s["main_rss_mb"] for s in samples if s["main_rss_mb"] is not None]
    per_worker: dict[str, list[float]] = {}
    names: dict[str, str] = {}
    for s in samples:
        for pid, w in s["workers"].items():
            if w["rss_mb"]:
                per_worker.setdefault(pid, []).append(w["rss_mb"])
                names[pid] = w["name"]
    return {
        "main": {
            "first_mb": mains[0] if mains else None,
            "last_mb": mains[-1] if mains else None,
            "peak_mb": max(mains, default=None),
        },
        "workers": {
            pid: {"name": names[pid], "first_mb": v[0], "last_mb": v[-1], "peak_mb": max(v)}
            for pid, v in per_worker.items()
        },
    }


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def summary_rows(doc: dict[str, Any]) -> list[list[Any]]:
    c, v, stop, tot = doc["config"], doc["verify"], doc["stop"], doc["totals"]["load"]
    kills = [k for k in doc["kills"] if not k.get("skipped")]
    replaced = [k for k in kills if k.get("replaced_by")]
    after = [k["replaced_after_s"] for k in replaced]
    rss = doc["rss"]
    workers = ", ".join(
        f"{w['name']} (pid {pid}) {w['first_mb']:.0f}→{w['last_mb']:.0f} (peak {w['peak_mb']:.0f})"
        for pid, w in rss["workers"].items()
    )
    ack, unknown = v["acknowledged"], v["unknown_outcome"]
    return [
        [
            "load",
            f"{c['minutes']:g} min, {c['clients']} clients, {c['workers']} workers, "
            f"{c['database']}, {c['rows']:,} seeded rows",
        ],
        ["requests", f"{tot['requests']:,} ({tot['rps']:,.1f}/s)"],
        ["2xx / 4xx / 5xx", f"{tot['ok']:,} / {tot['c4xx']:,} / {tot['c5xx']:,}"],
        ["connection errors / timeouts", f"{tot['errors']:,} / {tot['timeouts']:,}"],
        ["workers killed (kill -9)", f"{len(kills)} (skipped: {len(doc['kills']) - len(kills)})"],
        [
            "workers replaced",
            f"{len(replaced)} of {len(kills)}"
            + (f", after {min(after):.1f}–{max(after):.1f} s" if after else ""),
        ],
        [
            "acknowledged writes",
            f"{ack['total']:,} (create {ack['create']:,}, "
            f"patch {ack['patch']:,}, delete {ack['delete']:,})",
        ],
        [
            "writes with unknown outcome",
            f"{sum(unknown.values()):,} (create {unknown['create']}, "
            f"patch {unknown['patch']}, delete {unknown['delete']})",
        ],
        ["**lost writes**", f"**{v['lost_writes']}**"],
        [
            "stored without an answer",
            f"{v['stored_without_answer']} (unexplained: {v['unexplained_rows']})",
        ],
        [
            "wrong fields / bad answers / stale reads",
            f"{v['wrong_fields']} / {v['bad_answers']} / {v['stale_reads']}",
        ],
        ["integrity_check", v["integrity_check"] or "n/a (PostgreSQL)"],
        [
            "book_count = count(*)",
            f"{v['book_count']} = {v['count']}: "
            f"{'yes' if v['counter_ok'] else 'NO'}; per author: "
            f"{'yes' if v['author_counts_ok'] else 'NO'}",
        ],
        [
            "RSS main MB (first→last, peak)",
            f"{_mb(rss['main']['first_mb'])}→"
            f"{_mb(rss['main']['last_mb'])} (peak {_mb(rss['main']['peak_mb'])})",
        ],
        ["RSS workers MB", workers or "-"],
        [
            "SIGTERM under load",
            (
                f"not sent: the server had exited by itself, exit code {stop['exit_code']}"
                if stop.get("by_itself")
                else f"exit code {stop['exit_code']} after {stop['seconds']:.1f} s"
                if stop["exited"]
                else f"did not exit within {stop['seconds']:.0f} s (killed)"
            )
            + (f"; workers left running: {stop['workers_left']}" if stop["workers_left"] else ""),
        ],
        [
            "answers during the stop",
            "{ok:,} 2xx, {c5xx:,} 5xx, {errors:,} errors, {timeouts:,} timeouts".format(
                **doc["totals"]["during_stop"]
            ),
        ],
        ["data verified", "yes" if v["ok"] else "**NO**"],
    ]


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Soak, {doc['started_at']}", ""]
    lines += _table(["", "value"], summary_rows(doc))
    lines += ["", "## Per minute", ""]
    lines += _table(
        [
            "minute",
            "requests",
            "req/s",
            "2xx",
            "4xx",
            "5xx",
            "errors",
            "timeouts",
            "p50 ms",
            "p99 ms",
            "workers",
            "kills",
            "RSS main MB",
            "RSS worker max MB",
        ],
        [
            [
                m["minute"],
                m["requests"],
                m["rps"],
                m["ok"],
                m["c4xx"],
                m["c5xx"],
                m["errors"],
                m["timeouts"],
                m["p50_ms"],
                m["p99_ms"],
                f"{m['workers_min']}–{m['workers_max']}" if m["workers_min"] is not None else "-",
                m["kills"],
                m["main_rss_mb"],
                m["worker_rss_max_mb"],
            ]
            for m in doc["minutes"]
        ],
    )
    if doc["kills"]:
        lines += ["", "## Kills", ""]
        lines += _table(
            ["t (s)", "worker", "pid", "replaced by", "after (s)"],
            [
                [
                    k["t"],
                    k.get("worker"),
                    k.get("pid"),
                    k.get("skipped") or k.get("replaced_by"),
                    k.get("replaced_after_s"),
                ]
                for k in doc["kills"]
            ],
        )
    if doc["unexpected_statuses"]:
        lines += [
            "",
            "Unexpected statuses: "
            + ", ".join(f"{k}: {n}" for k, n in doc["unexpected_statuses"].items()),
        ]
    lines += [
        "",
        f"Command: `python -m benchmarks.soak --minutes {doc['config']['minutes']:g} "
        f"--kill-every {doc['config']['kill_every_s']:g} --clients "
        f"{doc['config']['clients']}`",
        "",
    ]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = doc["seconds"]
    ts = [s["t"] for s in seconds]
    fig, (ax_rss, ax_rps, ax_err) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    ax_rss.plot(ts, [s["main_rss_mb"] for s in seconds], label="main", color="black")
    pids = sorted({pid for s in seconds for pid in s["worker_rss_mb"]}, key=int)
    names = {pid: w["name"] for pid, w in doc["rss"]["workers"].items()}
    for pid in pids:
        ax_rss.plot(
            ts,
            [s["worker_rss_mb"].get(pid) for s in seconds],
            label=f"{names.get(pid, 'worker').replace('Sanic-', '')} pid {pid}",
        )
    ax_rss.set_ylabel("RSS (MB)")
    ax_rss.legend(loc="upper left", fontsize="small", ncol=2)
    answered = [s["requests"] - s["errors"] - s["timeouts"] for s in seconds]
    ax_rps.plot(ts, answered, label="answered", color="#1f77b4")
    ax_rps.plot(ts, [s["ok"] for s in seconds], label="2xx", color="#2ca02c", linewidth=0.8)
    ax_rps.set_ylabel("answers/s")
    ax_rps.legend(loc="upper left", fontsize="small")
    ax_err.plot(ts, [s["c5xx"] for s in seconds], label="5xx", color="#d62728")
    ax_err.plot(
        ts,
        [s["errors"] + s["timeouts"] for s in seconds],
        label="errors + timeouts",
        color="#ff7f0e",
    )
    ax_err.set_ylabel("per second")
    ax_err.set_xlabel("seconds since the load began")
    ax_err.legend(loc="upper left", fontsize="small")
    for ax in (ax_rss, ax_rps, ax_err):
        for k in doc["kills"]:
            if k.get("pid"):
                ax.axvline(k["t"], color="#d62728", linestyle="--", linewidth=0.8)
        ax.axvline(doc["stop"]["t"], color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    ax_rss.set_title(
        "Soak: red dashes = kill -9 of a worker, dotted = SIGTERM; "
        f"lost writes {doc['verify']['lost_writes']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def next_prefix(out: Path) -> Path:
    numbers = [
        int(p.stem.split("_", 1)[1])
        for p in out.glob("soak_*.json")
        if p.stem.split("_", 1)[1].isdigit()
    ]
    return out / f"soak_{max(numbers, default=0) + 1}"


def write(doc: dict[str, Any], prefix: Path, with_plot: bool) -> list[Path]:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")]
    paths[0].write_text(json.dumps(doc, indent=1) + "\n")
    paths[1].write_text(markdown(doc))
    if with_plot:
        paths.append(prefix.with_name(prefix.name + ".png"))
        plot(doc, paths[-1])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if MISSING is not None:
        _say(f"soak: {MISSING} is not installed; {INSTALL}")
        return 2
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _say(f"soak: matplotlib is not installed (or pass --no-plot); {INSTALL}")
            return 2
    config = Config(
        minutes=args.minutes,
        kill_every=args.kill_every,
        clients=args.clients,
        database_url=args.database_url,
        rows=args.rows,
        timeout=args.timeout,
        stop_timeout=args.stop_timeout,
        seed=args.seed,
        out=args.out,
        work_dir=args.work_dir,
        plot=not args.no_plot,
    )
    try:
        config.check()
        prefix = config.out or next_prefix(RESULTS_DIR)
        for folder in (prefix.parent, config.work_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise SoakError(f"{folder} is not writable; choose another --out/--work-dir")
        doc = soak(config)
        paths = write(doc, prefix, config.plot)
    except SoakError as exc:
        _say(f"soak: {exc}")
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _say(f"soak: {exc.strerror or exc}{where}; check --out and --work-dir")
        return 2
    except KeyboardInterrupt:
        _say("soak: interrupted; the server was stopped, no results written")
        return 130
    print("\n".join(_table(["", "value"], summary_rows(doc))))  # noqa: T201
    print(f"results: {', '.join(str(p) for p in paths)}")  # noqa: T201
    if not doc["verify"]["ok"]:
        _say("soak: the database does not hold what was acknowledged (see 'verify' in the JSON)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
