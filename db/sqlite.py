"""SQLite: statements on Tortoise's one aiosqlite connection, books' JSON made by SQLite.

Statements go through Tortoise's own client, so connection set-up, transactions and
exception translation stay Tortoise's. That client guards its one connection with an
``asyncio.Lock`` that every statement takes, transaction or not, so 64 concurrent requests
ran their statements one at a time, each waiting for the last one's round trip through
aiosqlite's thread. The lock is there for transactions (``in_transaction`` holds it from
``BEGIN`` to ``COMMIT``). When nobody holds it, a statement goes straight onto the same
connection's queue instead: aiosqlite runs its queue in order on one thread, and the
statement is queued before this coroutine first yields, so it runs before any later
``BEGIN``, in autocommit mode, outside every transaction, just as it would have under the
lock. When the lock is held, the statement waits for it as before. This halved the CPU
time of a detail read.

A book's JSON form is made by SQLite's ``json_object`` inside the statement that reads it
(a page's or a detail read's): building dicts and ``sqlite3.Row`` objects in Python was the
largest share of a list page's CPU time above the raw baseline's. A page comes back as one
row (``gathered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

import aiosqlite
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from db import health, preflight, query, schema, sqlite_seed
from db.backend import (
    _SPAN,
    ASIDE_FROM,
    BOUNDED_COUNT,
    COUNT_EXACT_UP_TO,
    COUNT_SCAN_LIMIT,
    DEFAULT_CONNECT_TIMEOUT,
    KEPT_SECONDS,
    Backend,
    Kept,
    Progress,
    Row,
    RowBatches,
    is_open,
)
from db.errors import DatabaseUnavailableError, OutcomeUnknownError, StatementTimeoutError
from db.idempotency import Fetch
from db.query import BookFilter, BookJSON, Page, PageQuery
from db.sqlite_guard import COUNT_BUDGET, COUNTER_PRAGMAS, Guard, OverBudgetError
from db.sqlite_json import gathered, json_object, json_select, split_page

# Pragmas for concurrent use by several worker processes: WAL lets readers run beside
# the one writer; the busy timeout makes a writer wait for the lock instead of failing
# with "database is locked".
# ``synchronous``: FULL makes every commit fsync the write-ahead log before it returns, so
# a write is acknowledged only once it is on disk. NORMAL (SQLITE_SYNCHRONOUS=normal)
# fsyncs only at checkpoints: a commit survives a crash of the process, but the commits
# since the last checkpoint can be lost to a power cut, an OS crash or a file system that
# fails and goes read-only (an ext4 image failing under 16 writers, errors=remount-ro:
# every one of 60-80 acknowledged writes lost under NORMAL; under FULL, in about 1 run in
# 10, the last write whose fsync ext4 reported done as its journal aborted, which
# ``health.confirm_write`` answers "may have been stored" instead of 201:
# tests/e2e/test_ext4_errors.py). No pragma changes that fsync (EXTRA adds nothing to a
# WAL commit; checkpoint_fullfsync matters on macOS only).
# A 5 MiB page cache per worker (SQLite's default is 2 MiB): at 16 MiB a worker serving a
# million rows peaked at 78-85 MB RSS, over the 80 MB a worker may use, and at 8 MiB one
# serving ten million (its second connection busier, with pages that read many rows)
# peaked at 81 MB; at 6 MiB, 79-80.6 MB, and at 5 MiB 77 MB with the same throughput.
# Pages it misses come from the OS page cache, read in aiosqlite's thread.
SQLITE_PRAGMAS: Final = {
    "journal_mode": "WAL",
    "busy_timeout": 30000,
    "synchronous": "FULL",
    "cache_size": -5000,
    "temp_store": "MEMORY",
}
# The values SQLITE_SYNCHRONOUS takes (SQLite's own names for them).
SYNCHRONOUS_LEVELS: Final = ("FULL", "NORMAL")


def _unknown_if_io_error(exc: OperationalError) -> OutcomeUnknownError | None:
    """OutcomeUnknownError when SQLite's I/O failed (at a commit, the write may have
    reached the log); None when the write was refused (a full disk, a read-only file)."""
    fault = health.fault_of(exc, record=False)
    if fault is not None and fault.reason == health.IO_ERROR:
        return OutcomeUnknownError(str(exc), reason=health.IO_ERROR)
    return None


def sqlite_path(url: str) -> str | None:
    """The file path of an ``sqlite://`` URL, else None."""
    if not url.startswith("sqlite://"):
        return None
    return url[len("sqlite://") :].split("?", 1)[0]


# A search's matches (``_search_source``): the books whose title holds the text, through
# the trigram index of titles (migration 0007), and the books of the authors that hold it,
# through the trigram index of the distinct authors and then the author index (one index
# of both columns read lists of an author's trigrams that each covered hundreds of
# authors' books: 22 ms for an author's name at ten million rows). ``hit`` is the id.
_AUTHORS_HOLDING: Final = (
    "SELECT author FROM book_author_search WHERE book_author_search MATCH ?"
    " AND author LIKE ? ESCAPE '\\'"
)
_MATCH_COLUMNS: Final = "book.title, book.author, book.published_date, book.price_cents"


@functools.lru_cache(maxsize=64)
def _search_source(others: tuple[str, ...] = ()) -> str:
    """The matches of a search and ``others`` (the filter's other conditions), found
    through the search's two sides, which share no book: the books whose title holds the
    text (the LIKE decides) and whose author does not, and the books of the authors that
    hold it, whose conditions are tested inside the author index. Its values: the
    titles' FTS5 query, the pattern twice, the others' values, the authors' FTS5 query,
    the pattern, the others' values again (``SqliteBackend._search_through``).

    Each match comes with every column a filter or an ordering reads: the author side
    reads them from the author index, which holds them all, so an author's 2,400 books at
    ten million rows are not looked up in the table one by one (6.7 ms a page, 0.5 ms
    without); a page of them looks up its own rows only (``SqliteBackend._page``). The
    two sides share no book, so they are not compared with each other (a UNION that
    removed duplicates took 2.2 ms of it).
    """
    extra = "".join(f" AND {clause}" for clause in others)
    return (
        f"(SELECT book.id AS hit, {_MATCH_COLUMNS} FROM book_search"
        " JOIN book ON book.id = book_search.rowid WHERE book_search MATCH ?"
        " AND book.title LIKE ? ESCAPE '\\' AND NOT book.author LIKE ? ESCAPE '\\'"
        f"{extra} UNION ALL SELECT id, {_MATCH_COLUMNS} FROM book INDEXED BY book_author_cover"
        f" WHERE author IN ({_AUTHORS_HOLDING}){extra}) AS found"
    )


# The title side alone, for counting it.
_TITLE_SOURCE: Final = (
    "(SELECT rowid AS hit FROM book_search WHERE book_search MATCH ?) JOIN book ON id = hit"
)
_AUTHORS_ROWS: Final = (
    f"SELECT coalesce(sum(n), 0) FROM book_author_count WHERE author IN ({_AUTHORS_HOLDING})"
)
# A source's FROM and the values of its placeholders (before the WHERE's).
Through = tuple[str, tuple[Any, ...]]
# A page that walks its ordering's index (``SqliteBackend._walks``), by the ordering's
# first field: the rowid itself for id, else the field's (field, id) index.
_WALK: Final = {
    "id": "book NOT INDEXED",
    "title": "book INDEXED BY book_title_cover",
    "author": "book INDEXED BY book_author_cover",
    "published_date": "book INDEXED BY book_published_cover",
    "price": "book INDEXED BY book_price_cover",
}
# An author's books in the order of another field: ``(author, field)`` and the rowid
# (migration 0005), the rest of each row looked up in the table.
_AUTHOR_WALK: Final = {
    "title": "book INDEXED BY book_author_title",
    "published_date": "book INDEXED BY book_author_published",
    "price": "book INDEXED BY book_author_price",
}
# A walk stops after this many progress-handler periods (some 40,000 index entries read
# and filtered, about 30 ms) and the page is read through its narrowest filter instead.
WALK_BUDGET: Final = 40
# A long search asks the trigram index for this many of its trigrams (``_fts_phrase``),
# ranked by how many rows of a sample (TRIGRAM_SAMPLE_BLOCKS runs of TRIGRAM_SAMPLE_RUN
# ids spread over the table) hold them, a sample each worker takes again after
# TRIGRAM_STATS_SECONDS.
FTS_TERMS: Final = 3
FTS_ROW_COST: Final = 16
TRIGRAM_SAMPLE_BLOCKS: Final = 100
TRIGRAM_SAMPLE_RUN: Final = 40
TRIGRAM_STATS_SECONDS: Final = 600.0
_TRIGRAM_SAMPLE: Final = (
    "WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < ?)"
    " SELECT title FROM s JOIN book ON book.id >= ? + s.k * ? AND book.id < ? + s.k * ? + ?"
)


def _through(part: BookFilter) -> Through:
    """The FROM that finds ``part``'s matches (of an author, a date or a price) through
    its own index (a search's: ``SqliteBackend._search_through``)."""
    if part.author is not None:
        return "book INDEXED BY book_author_cover", ()
    if part.narrows("published_date"):
        return "book INDEXED BY book_published_cover", ()
    return "book INDEXED BY book_price_cover", ()


def _search_values(flt: BookFilter, phrase: str, others: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The values of ``_search_source`` for ``flt``'s search and the values of the other
    conditions (``others``): the titles' FTS5 query (``phrase``), the authors' (the whole
    search: their index is small), the search's LIKE pattern."""
    search = flt.search or ""
    pattern = f"%{query.escape_like(search)}%"
    return (phrase, pattern, pattern, *others, _quoted(search), pattern, *others)


def _cost(rows: int, through: Through) -> float:
    """What reading ``rows`` matches through ``through`` costs, in index entries read in
    order: the covering indexes hold every column a filter or a page reads; a match the
    trigram index or an ``(author, field)`` index finds is a look-up of the table, at a
    place of its own in the file (about 16 index entries' time at ten million rows: an
    author's 2,500 books took 45 ms through the trigram index, 1 ms through the author's
    covering index)."""
    if through[1] or through[0] in _AUTHOR_WALK.values():
        return rows * FTS_ROW_COST
    return rows


def _walk_of(q: PageQuery) -> str:
    """The FROM of a page that walks its ordering's index and filters as it goes."""
    first = q.ordering[0][0]
    if q.filter.author is not None and first in _AUTHOR_WALK:
        return _AUTHOR_WALK[first]
    return _WALK[first]


def _author_ranges(flt: BookFilter) -> list[tuple[BookFilter, Through]]:
    """The author of ``flt`` with each of its ranges, and the ``(author, field)`` index
    that finds exactly those rows."""
    if flt.author is None:
        return []
    return [
        (
            BookFilter(
                author=flt.author,
                published_after=flt.published_after if field == "published_date" else None,
                published_before=flt.published_before if field == "published_date" else None,
                min_cents=flt.min_cents if field == "price" else None,
                max_cents=flt.max_cents if field == "price" else None,
            ),
            (_AUTHOR_WALK[field], ()),
        )
        for field in ("published_date", "price")
        if flt.narrows(field)
    ]


# A search's count is exact up to this many matches and estimated above it from how far
# into the ids the first of them reach.
SEARCH_EXACT_COUNT: Final = COUNT_EXACT_UP_TO
_BOOK_JSON: Final = (
    f"SELECT id, version, {json_object(schema.NAMES)} AS json FROM book WHERE id = ?"
)


def _fts_phrase(flt: BookFilter, shares: Mapping[str, int] | None = None) -> str | None:
    """The FTS5 query a search reads its title side's candidates from, or None.

    The trigram index of titles narrows the rows to candidates (three characters at
    least: a trigram; the author side is found through the authors, ``_search_source``).
    The trigram tokenizer folds the case of every Unicode letter, LIKE only of ASCII
    ones: the LIKE of ``query.where`` decides, so a search means the same at every length
    and on both backends. With an ``author`` the author's index finds the rows faster: no
    query.

    A search of up to FTS_TERMS trigrams is asked for as a phrase. A longer one is asked
    for as the rarest trigram of each of FTS_TERMS stretches of it (``shares``: how many
    titles of a sample hold each one; ``SqliteBackend._trigram_shares``) joined by AND,
    which finds every row the phrase finds and a few more, which the LIKE drops: an
    author's full name is a phrase of 10 trigrams, some of them in a large share of the
    rows ("ine", "es "), and FTS5 reads the whole list of each trigram it is asked for.
    """
    search = flt.search
    if not search or len(search) < 3 or flt.author is not None:
        return None
    grams = [search[i : i + 3] for i in range(len(search) - 2)]
    if len(set(grams)) <= FTS_TERMS or not shares:
        return _quoted(search)
    # The rarest of each of FTS_TERMS stretches of the search: the rarest three overall
    # can all come from one word ("Zhou" of "Mila Zhou", shared by every Zhou).
    size = len(grams) / FTS_TERMS
    picked: list[str] = []
    for k in range(FTS_TERMS):
        stretch = [g for g in grams[round(k * size) : round((k + 1) * size)] if g not in picked]
        if stretch:
            picked.append(min(stretch, key=lambda g: (shares.get(g.lower(), 0), g)))
    return " AND ".join(_quoted(g) for g in picked)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _trigram_shares(rows: Sequence[Row]) -> dict[str, int]:
    """How many of ``rows`` (titles) hold each trigram, case folded as far as Python's
    lower() folds it (close enough to rank trigrams by rarity)."""
    shares: dict[str, int] = {}
    for row in rows:
        low = row[0].lower()
        for gram in {low[i : i + 3] for i in range(len(low) - 2)}:
            shares[gram] = shares.get(gram, 0) + 1
    return shares


class SqliteBackend(Backend):
    name = "sqlite"
    search_sql = "(title LIKE ? ESCAPE '\\' OR author LIKE ? ESCAPE '\\')"

    @classmethod
    def connection(
        cls,
        url: str,
        *,
        pool_min: int,
        pool_max: int,
        statement_timeout: float | None,
        synchronous: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> dict[str, Any]:
        # Query parameters of the URL become further pragmas; the time limit is kept by
        # the backend itself (a progress handler), not by SQLite. The connection that
        # counts (``_open_counter``) takes the same pragmas, and only reads. A file is
        # opened, not connected to: no connect timeout.
        extra = dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}
        pragmas = {**SQLITE_PRAGMAS, **({"synchronous": synchronous} if synchronous else {})}
        credentials = {"file_path": sqlite_path(url) or "", **pragmas, **extra}
        return {"engine": "tortoise.backends.sqlite", "credentials": credentials}

    @classmethod
    def prepare(cls, url: str, check: str = "off") -> None:
        path = sqlite_path(url) or ""
        if path in ("", ":memory:") or "mode=memory" in url:
            # Each worker (and each ASGI test request) would get its own empty database.
            raise ValueError("an in-memory SQLite database cannot be shared; use a file path")
        # Before Tortoise opens it: a file it cannot open would leave its lock held for ever.
        preflight.preflight_sqlite(path, check)

    @classmethod
    @contextlib.asynccontextmanager
    async def migration_lock(cls, url: str, connection: dict[str, Any]) -> AsyncIterator[None]:
        # Several processes start at once: one of them migrates, the others wait on the
        # lock (in a thread, so their event loops keep running), then find nothing to do.
        with open(f"{sqlite_path(url)}.migrate-lock", "a+") as fh:
            await asyncio.to_thread(fcntl.flock, fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def date_param(self, value: dt.date) -> Any:
        return value.isoformat()  # Tortoise stores a DateField as ISO text on SQLite

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = Guard()
        self._counter: aiosqlite.Connection | None = None
        self._counter_guard = Guard()
        self._counter_opening = asyncio.Lock()
        self._shares: dict[str, int] | None = None
        self._shares_until = -math.inf
        # (filter, ordering's first pair) of walks from the start stopped at WALK_BUDGET:
        # not tried again for a while, a walk's budget being spent before each of their
        # pages otherwise.
        self._overran: Kept[bool] = Kept(KEPT_SECONDS)

    def _deadline(self) -> float:
        timeout = self.statement_timeout
        return math.inf if timeout is None else time.monotonic() + timeout

    async def fetch(self, sql: str, values: Sequence[Any] = (), budget: int = -1) -> Sequence[Row]:
        """Rows of one statement, stopped past the statement time limit; with a
        ``budget`` (progress-handler periods), OverBudgetError once it has used it."""
        client = self._client()
        try:
            # Inside in_transaction(), get() gives the transaction's own client, never a
            # SqliteClient: its statements take Tortoise's path below.
            if (
                type(client) is SqliteClient
                and (conn := client._connection) is not None
                and not client._lock.locked()
            ):
                # Nobody holds the lock (see the module's docstring): straight onto the
                # connection's queue, through the guard.
                return await self._direct(conn, sql, values, budget)
            if budget >= 0:  # a transaction holds the connection: count beside it
                return await self._fetch_counting(sql, values, budget)
            call = client.execute_query(sql, list(values))
            # A statement that finds no connection makes Tortoise open it. Cancelled
            # halfway (a client hanging up cancels its request), that opening left a
            # connection that answered nothing, ever. Such a statement is shielded.
            if not is_open(client):
                call = asyncio.shield(call)
            return (await call)[1]
        except (DBConnectionError, ConnectionError, OSError) as exc:
            raise DatabaseUnavailableError(str(exc)) from exc

    async def _direct(
        self, conn: aiosqlite.Connection, sql: str, values: Sequence[Any], budget: int = -1
    ) -> Sequence[Row]:
        """One statement on ``conn``'s queue, through the guard. sqlite3's errors become
        Tortoise's, as its own translate_exceptions does."""
        try:
            return await conn._execute(
                self._guard.run,
                conn._conn,
                self._deadline(),
                budget,
                self.statement_timeout,
                sql,
                values,
            )
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc

    async def write(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        """An I/O error may come from the commit of the statement's own transaction (the
        log written, not synced): the write may have been stored."""
        try:
            return await self.fetch(sql, values)
        except OperationalError as exc:
            if (unknown := _unknown_if_io_error(exc)) is None:
                raise
            raise unknown from exc

    @contextlib.asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[Fetch]:
        """A transaction on the worker's connection, holding Tortoise's lock of it as its
        own transactions do (every other statement of the worker waits for the lock),
        begun with ``BEGIN IMMEDIATE``: it takes the write lock first, waiting for another
        process's writer within the busy timeout, rather than failing when a read
        snapshot cannot be upgraded (a deferred ``BEGIN``)."""
        client = self._client()
        async with client._lock:
            try:
                if client._connection is None:
                    await client.create_connection(with_db=True)
            except (DBConnectionError, ConnectionError, OSError) as exc:
                raise DatabaseUnavailableError(str(exc)) from exc
            conn = client._connection

            async def run(sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
                return await self._direct(conn, sql, values)

            await run("BEGIN IMMEDIATE")
            try:
                yield run
            except BaseException:
                with contextlib.suppress(Exception):
                    await run("ROLLBACK")
                raise
            try:
                await run("COMMIT")
            except OperationalError as exc:
                if conn._conn.in_transaction:  # a commit that failed whole: nothing stored
                    with contextlib.suppress(Exception):
                        await run("ROLLBACK")
                if (unknown := _unknown_if_io_error(exc)) is None:
                    raise
                raise unknown from exc
        health.confirm_write()  # the file moved or replaced: stored where, no one knows

    async def _fetch_counting(
        self, sql: str, values: Sequence[Any], budget: int = -1
    ) -> Sequence[Row]:
        """Rows of one statement on the connection that counts.

        A worker has one connection to serve its requests, and aiosqlite runs its
        statements one at a time: an exact count of a million matches there would hold up
        every request behind it until it ended. It runs on a second connection of its
        own (a thread of its own, reading only), opened when first needed, with the same
        pragmas; the deadline is counted from when the request asked, so a count that
        waited for another one is stopped as soon as its time is up.
        """
        deadline = self._deadline()
        conn = self._counter or await self._open_counter()
        try:
            return await conn._execute(
                self._counter_guard.run,
                conn._conn,
                deadline,
                budget,
                self.statement_timeout,
                sql,
                values,
            )
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc

    async def _open_counter(self) -> aiosqlite.Connection:
        async with self._counter_opening:
            if self._counter is None:
                client = self._client()
                conn = aiosqlite.connect(client.filename, isolation_level=None)
                # Its thread must not keep a process alive that never closed it.
                conn._thread.daemon = True
                await conn
                conn._conn.row_factory = sqlite3.Row
                for pragma, value in {**client.pragmas, **COUNTER_PRAGMAS}.items():
                    await conn.execute(f"PRAGMA {pragma}={value}")
                self._counter = conn
            return self._counter

    async def close(self) -> None:
        conn, self._counter = self._counter, None
        if conn is not None:
            conn._conn.interrupt()  # a count running now stops at once
            await conn.close()

    async def book_json(self, book_id: int) -> BookJSON:
        row = await self._book_row(book_id, _BOOK_JSON)
        return BookJSON(row[0], row[1], row[2].encode())

    async def bounded_count(
        self, where: str, values: Sequence[Any], source: str = "book"
    ) -> int | None:
        """Counted on the worker's connection, stopped once it has used COUNT_BUDGET:
        what bounds it is the work done, whichever index the plan reads (a price range
        alone reads only the matches from its index; two filters may read many rows that
        fail the second)."""
        try:
            rows = await self.fetch(
                BOUNDED_COUNT.format(source=source, where=where),
                [*values, COUNT_SCAN_LIMIT + 1],
                budget=COUNT_BUDGET,
            )
        except OverBudgetError:
            return None
        return int(rows[0]["n"])

    async def _costly(self, sql: str, values: Sequence[Any]) -> Sequence[Row]:
        return await self._fetch_counting(sql, values)

    async def _exact(self, sql: str, values: Sequence[Any]) -> int:
        try:
            rows = await self._fetch_counting(sql, values)
        except StatementTimeoutError as exc:
            raise StatementTimeoutError(exc.seconds, counting=True) from exc
        return int(rows[0]["n"])

    async def _count(
        self, q: PageQuery, clauses: list[str], values: list[Any], source: str = "book"
    ) -> tuple[int, bool]:
        """Counted through the index of the filter's narrowest part (``_narrowest``):
        SQLite's own choice read a price range of 40% of the rows to count a one-year
        date range within it (85 ms at a million rows, against 1 ms)."""
        await self._load_shares(q.filter)
        flt = q.filter
        parts = flt.parts()
        ranges = _author_ranges(flt)
        through: Through | None = None
        if parts == (flt,) and flt.search:
            through = self._search_through(flt)
        elif len(parts) == 2 and ranges and ranges[0][0] == flt:
            # An author and one range: its (author, field) index holds exactly the matches.
            source = ranges[0][1][0]
        elif len(parts) > 1:
            through = await self._narrowest(flt)
        if through is not None and not through[1]:
            source, through = through[0], None
        if through is None:
            return await super()._count(q, clauses, values, source)
        found = await self._search_count(through, clauses, values, q.exact_count)
        if found is not None:
            return found
        where = " AND ".join(clauses)  # the index finds too many rows that fail the rest
        if q.exact_count:
            return await self.exact_count(where, values), True
        return await self.estimate_count(where, values)

    async def _search_count(
        self, through: Through, clauses: list[str], values: list[Any], exact: bool
    ) -> tuple[int, bool] | None:
        """The count of a filter read through its search's matches (``through``, from
        ``_search_through``); None when the matches mostly fail the other filters, too
        many to read within the budget.

        A search alone is counted in two sides: the books of the authors that hold the
        text, from their kept counts (``book_author_count``), and the other books whose
        title holds it, through the trigram index of titles. Exact up to
        SEARCH_EXACT_COUNT matches of the title side (or of the filter, with others)
        and with ``exact``. Above it, estimated from how far into the ids the first
        SEARCH_EXACT_COUNT + 1 of them reach, taking them to be spread evenly over the
        ids: counting every match of a common word costs time in proportion to the
        table. One bounded statement either way.
        """
        over = SEARCH_EXACT_COUNT + 1
        if len(clauses) == 1:
            phrase, pattern, _, names, _ = through[1]
            where = "title LIKE ? ESCAPE '\\' AND NOT author LIKE ? ESCAPE '\\'"
            exact_sql = f"SELECT count(*) AS n FROM {_TITLE_SOURCE} WHERE {where}"
            every = [phrase, pattern, pattern]
            authors, authors_values = f"({_AUTHORS_ROWS})", [names, pattern]
            if '" AND "' not in phrase:
                # The whole phrase: the index alone bounds the count (asked for its
                # rarest trigrams, it finds rows the LIKE then drops).
                capped = (
                    "SELECT rowid AS hit FROM book_search WHERE book_search MATCH ? ORDER BY rowid"
                )
                capped_values = [phrase]
                exact_now, exact_values = f"({exact_sql})", every
            else:
                capped = f"SELECT hit FROM {_TITLE_SOURCE} WHERE {where} ORDER BY hit"
                capped_values, exact_now, exact_values = every, "n", []
        else:  # the source holds every condition
            exact_sql = f"SELECT count(*) AS n FROM {through[0]}"
            every = list(through[1])
            authors, authors_values = "0", []
            capped = f"SELECT hit FROM {through[0]} ORDER BY hit"
            capped_values, exact_now, exact_values = every, "n", []
        try:
            rows = await self.fetch(
                f"SELECT {authors} AS authors, CASE WHEN n < ? THEN {exact_now} END AS exact,"
                " r, (SELECT min(id) FROM book) AS lo, (SELECT max(id) FROM book) AS hi,"
                " (SELECT n FROM book_count WHERE id = 1) AS total"
                f" FROM (SELECT count(*) AS n, max(hit) AS r FROM ({capped} LIMIT ?))",
                [*authors_values, over, *exact_values, *capped_values, over],
                budget=COUNT_BUDGET,
            )
        except OverBudgetError:
            return None
        row = rows[0]
        by_authors = int(row["authors"])
        if row["exact"] is not None:
            return by_authors + int(row["exact"]), True
        if exact:
            return by_authors + await self._exact(exact_sql, every), True
        lo, hi, reached = row["lo"], row["hi"], row["r"]
        estimate = by_authors + round(over * (hi - lo + 1) / (reached - lo + 1))
        return max(by_authors + over, min(int(row["total"] or 0), estimate)), False

    async def _source(
        self, q: PageQuery, values_count: tuple[int, bool] | None
    ) -> tuple[Through | None, float]:
        """Where a filtered page reads its rows from, or None for SQLite's own choice:
        (the FROM of the page, the values it takes); and the rows it will read, in index
        entries (``_cost``).

        SQLite's planner has no statistics of value ranges (this build has no STAT4): it
        took a price range of 40% of the rows for a narrow one and sorted 400,000 rows at
        a million for a page ordered by date (a second). The choice is made here, by the
        rows each way would read, from counts of the filter and of each of its parts
        (bounded as the list's ``count`` is, and kept a while: ``planned``):
        - walking the index of the ordering's first field in order and filtering as it
          goes (``_WALK``) reads about (offset + limit + 1) * R / M rows, where M rows
          match and R is the rows the walk covers (the table, or the range a filter of
          that field leaves);
        - an author's books ordered by another field walk that field's ``(author,
          field)`` index (``_AUTHOR_WALK``) the same way, a look-up of the table a row;
        - finding the rows through one filter's own index (or an author's range through
          its ``(author, field)`` index) reads that filter's matches, which are then
          sorted.
        The page takes the cheapest. With the filters independent, no page reads more
        than about sqrt(limit * T) of T rows, whatever its filter (14,500 at ten million).
        """
        flt = q.filter
        parts = flt.parts()
        if not parts:
            return None, 0.0
        first = q.ordering[0][0]
        matches = await self.planned(flt, values_count[0] if values_count else None)
        throughs = self._throughs(flt)
        # Every part that narrows an ordering's field has an index: it is among these.
        rows = {sub: (await self.planned(sub) if sub != flt else matches) for sub, _ in throughs}
        choice: Through = (_walk_of(q), ())
        if choice[0] in _AUTHOR_WALK.values():
            narrowed = [sub for sub, _ in _author_ranges(flt) if sub.narrows(first)]
            author = BookFilter(author=flt.author)
            covered = min((rows[sub] for sub in narrowed), default=rows[author])
        else:
            narrowed = [part for part in parts if part.narrows(first)]
            covered = min((rows[part] for part in narrowed), default=await self.total_rows())
        best = _cost(round((q.offset + q.limit + 1) * covered / max(matches, 1)), choice)
        if q.after is None and self._overran.get((flt, q.ordering[0])):
            best = math.inf  # (a cursor page starts its walk at the cursor: tried)
        for sub, through in throughs:
            if _cost(rows[sub], through) < best:
                best, choice = _cost(rows[sub], through), through
        return choice, best

    def _throughs(self, flt: BookFilter) -> list[tuple[BookFilter, Through]]:
        """Each index that finds some of ``flt``'s matches, with the rows it finds: one
        per part that has one (``_through``), one per author's range (``_author_ranges``)."""
        found: list[tuple[BookFilter, Through]] = []
        for part in flt.parts():
            through = self._search_through(flt) if part.search else _through(part)
            if through is not None:
                found.append((part, through))
        return found + _author_ranges(flt)

    def _search_through(self, flt: BookFilter) -> Through | None:
        """The source of ``flt``'s matches through its search's (``_search_source``),
        ``flt``'s other conditions tested on the author side; None when no index finds
        them (a search of one or two characters)."""
        search = BookFilter(search=flt.search)
        phrase = _fts_phrase(search, self._shares)
        if phrase is None:
            return None
        clauses, values = self.where(dataclasses.replace(flt, search=None))
        return _search_source(tuple(clauses)), _search_values(search, phrase, values)

    async def _narrowest(self, flt: BookFilter) -> Through | None:
        """The FROM (and its values) through the index that finds ``flt``'s matches
        reading the fewest entries; None when no part has an index."""
        best: tuple[float, Through] | None = None
        for sub, through in self._throughs(flt):
            cost = _cost(await self.planned(sub), through)
            if best is None or cost < best[0]:
                best = (cost, through)
        return best[1] if best else None

    async def _load_shares(self, flt: BookFilter) -> None:
        """Take the trigram sample (``_fts_phrase``) when a search is long enough to need
        it and the last one is old."""
        if not flt.search or len(flt.search) <= FTS_TERMS + 2:
            return
        now = time.monotonic()
        if now < self._shares_until:
            return
        self._shares_until = now + TRIGRAM_STATS_SECONDS
        span = await self.fetch(_SPAN)
        lo, hi = span[0]["lo"], span[0]["hi"]
        if lo is None:
            self._shares = None
            return
        step = max(TRIGRAM_SAMPLE_RUN, (hi - lo + 1) // TRIGRAM_SAMPLE_BLOCKS)
        rows = await self.fetch(
            _TRIGRAM_SAMPLE,
            [TRIGRAM_SAMPLE_BLOCKS, lo, step, lo, step, TRIGRAM_SAMPLE_RUN],
        )
        self._shares = _trigram_shares(rows)

    async def list_books(self, q: PageQuery) -> Page:
        clauses, values = self.where(q.filter)
        await self._load_shares(q.filter)
        count: int | None = None
        exact = True
        if q.with_count:
            count, exact = await self.count(q, clauses, values)
            if count == 0 and exact:  # nothing to read again for the page
                return Page(json="[]", count=0, has_more=False)
        chosen, cost = await self._source(q, (count, exact) if count is not None else None)
        # Reading far more rows than a page shows (past ASIDE_FROM, by ``_cost``): on the
        # connection that counts, so the worker's own keeps answering the cheap requests
        # queued behind this one.
        aside = cost > ASIDE_FROM
        if chosen is None:  # no filter
            rows = await self._page(q, clauses, values, "book", (), aside=aside)
        elif chosen[0] != _walk_of(q):  # through a filter's index: read its matches
            rows = await self._page(q, clauses, values, *chosen, aside=aside)
        else:
            try:
                rows = await self._page(
                    q, clauses, values, *chosen, budget=WALK_BUDGET, aside=aside
                )
            except OverBudgetError:
                # The matches are not spread over the ordering as the estimate took them
                # to be (an author's name searched, ordered by author: all of them in one
                # stretch of the index, maybe half the table away).
                if q.after is None:
                    self._overran.put((q.filter, q.ordering[0]), True)
                through = await self._narrowest(q.filter)
                rows = await self._page(q, clauses, values, *(through or ("book", ())), aside=True)
        page = split_page(rows[0], q, count)
        if not exact:
            page.count_exact = False
        return page

    async def _page(
        self,
        q: PageQuery,
        clauses: list[str],
        values: list[Any],
        source: str,
        source_values: tuple[Any, ...],
        budget: int = -1,
        aside: bool = False,
    ) -> Sequence[Row]:
        """The gathered row of ``q``'s page read from ``source`` (``source_values``: the
        values it takes, a search's); OverBudgetError past ``budget``; ``aside``: on the
        connection that counts (``_fetch_counting``), not the worker's own.

        A search's matches (``_search_source``) carry every column the page's filter and
        ordering read: the page is chosen among them first, and only its own rows are
        then looked up in the table for their JSON.
        """
        keyset = q.after is not None
        after = query.keyset_values(q.after, q.ordering, self.date_param) if keyset else []
        select = json_select(q.fields, q.ordering)
        if source_values:  # a search's: the source holds every condition
            chosen = query.page_sql(
                "hit AS page_id", source, "hit", (), q.ordering, q.backwards, keyset
            )
            statement = query.page_sql(
                select,
                f"({chosen}) JOIN book ON id = page_id",
                "id",
                (),
                q.ordering,
                q.backwards,
                False,
            )
            params = [*source_values, *after, q.limit + 1, q.offset, q.limit + 1, 0]
        else:
            statement = query.page_sql(
                select, source, "id", tuple(clauses), q.ordering, q.backwards, keyset
            )
            params = [*values, *after, q.limit + 1, q.offset]
        if aside:
            return await self._fetch_counting(gathered(statement, q.ordering), params, budget)
        return await self.fetch(gathered(statement, q.ordering), params, budget=budget)

    async def check_counts(self, *, thorough: bool = False) -> tuple[int, int, int | None]:
        rows, counter, _ = await super().check_counts()
        # FTS5 keeps one docsize row per indexed document.
        docs = await self.fetch("SELECT count(*) AS n FROM book_search_docsize")
        if thorough:  # FTS5 compares its whole index with the table: a mismatch raises
            await self.fetch(
                "INSERT INTO book_search(book_search, rank) VALUES ('integrity-check', 1)"
            )
        return rows, counter, int(docs[0]["n"])

    async def bulk_load(
        self,
        count: int,
        replace: bool,
        batch_size: int,
        rows: RowBatches,
        progress: Progress | None,
    ) -> tuple[int, int]:
        return await sqlite_seed.bulk_load(
            self._client(), count, replace, batch_size, rows, progress
        )
