"""The soak's clients: a mix of reads and acknowledged writes, each request tallied by the
second it finished in, each write's outcome recorded so the database can be checked.

Every create carries an ``Idempotency-Key`` and is retried with it until it has a definite
answer: after a connection that dropped or timed out, a 503, or a 409 (the first attempt
still in flight). A share of the creates (``CUT_SHARE``) cut their first attempt's
connection on purpose, a few milliseconds after sending it, as a client whose network
failed would. The database afterwards must hold each of them once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

FIELDS: Final = ("requests", "ok", "c4xx", "c5xx", "errors", "timeouts")
READ_SHARE: Final = 0.7
# Creates whose first attempt is cut by the client after CUT_AFTER seconds.
CUT_SHARE: Final = 0.05
CUT_AFTER: Final = (0.001, 0.02)
# A create is retried with its key, RETRY_PAUSE seconds apart, for RETRY_FOR seconds at
# most and while the load runs (at the stop, one still without an answer counts as unknown).
RETRY_FOR: Final = 30.0
RETRY_PAUSE: Final = 0.25


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
    cut: int = 0  # creates whose first attempt the client cut on purpose
    retried: int = 0  # creates answered only after one or more retries with their key
    retries: Counter[str] = field(default_factory=Counter)  # why a create was retried
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


class Session:
    """One client's connection (httpx, one connection at most), made anew after a request
    that timed out or was cut: httpcore's pool could be left holding the cancelled
    request's connection, and every later request of the client then waited for the pool
    until it timed out too, as if the server had stopped answering."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.http = self._open()

    def _open(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncClient(
            base_url=self.url, limits=limits, timeout=httpx.Timeout(self.timeout)
        )

    async def renew(self) -> None:
        old, self.http = self.http, self._open()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await old.aclose()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.http.aclose()


def _kind(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if 400 <= status < 500:
        return "c4xx"
    if status >= 500:
        return "c5xx"
    return "other"


async def client(n: int, load: Load) -> None:
    rng = random.Random(load.seed * 1_000_003 + n)
    mine: list[Book] = []  # created, not deleted, no unanswered write
    auth = {"Authorization": f"Token {load.token}"}
    http = Session(load.url, load.timeout)
    try:
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
            headers = auth if method != "GET" else None
            if method == "POST":
                headers = {**auth, "Idempotency-Key": f"soak-{load.seed}-{n}-{k}"}
                cut = rng.uniform(*CUT_AFTER) if rng.random() < CUT_SHARE else None
                status, answer = await _create(http, load, path, body, headers, cut)
            else:
                status, answer = await _send(http, load, method, path, body, headers)
            _settle(load, n, method, body, book, status, answer, label, mine)
    finally:
        await http.close()


async def _send(
    http: Session,
    load: Load,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None,
    timeout: float | None = None,
) -> tuple[int | None, Any]:
    """One request, tallied: its status and JSON body, or (None, None) when no answer
    came (a dropped connection, a timeout: ``timeout`` cuts it sooner on purpose)."""
    started = time.monotonic()
    status: int | None = None
    answer: Any = None
    try:
        async with asyncio.timeout(timeout or load.timeout):
            response = await http.http.request(method, path, json=body, headers=headers)
        status = response.status_code
        if response.content and status != 204:
            with contextlib.suppress(ValueError):
                answer = response.json()
        kind = _kind(status)
    except (TimeoutError, httpx.TimeoutException):
        kind = "timeouts"
        await http.renew()
    except httpx.TransportError:
        kind = "errors"
    if timeout is None:  # a cut on purpose is not the server's doing
        load.tally.add(kind, started, time.monotonic())
    if status is None:
        # A dropped connection: a killed worker, or a server going away. A short pause
        # keeps a refused port from turning into a busy loop.
        await asyncio.sleep(0.05)
    return status, answer


async def _create(
    http: Session,
    load: Load,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    cut: float | None,
) -> tuple[int | None, Any]:
    """A create sent until it has a definite answer, with the same Idempotency-Key each
    time; the first attempt cut after ``cut`` seconds when given."""
    w = load.writes
    status, answer = await _send(http, load, "POST", path, body, headers, cut)
    if cut is not None:
        w.cut += 1
    tries = 0
    until = time.monotonic() + RETRY_FOR
    while (status is None or status >= 500 or status == 409) and load.running:
        if time.monotonic() >= until:
            break
        if tries == 0:
            w.retried += 1
        w.retries["no answer" if status is None else str(status)] += 1
        tries += 1
        await asyncio.sleep(RETRY_PAUSE)
        status, answer = await _send(http, load, "POST", path, body, headers)
    return status, answer


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
