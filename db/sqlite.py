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
row (``_gathered``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import importlib
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import aiosqlite
import orjson
from tortoise import connections
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from db import query, schema
from db.backend import (
    BOUNDED_COUNT,
    COUNT_EXACT_UP_TO,
    COUNT_SCAN_LIMIT,
    Backend,
    Row,
    is_open,
)
from db.errors import DatabaseUnavailableError, StatementTimeoutError
from db.query import BookFilter, BookJSON, Page, PageQuery

# Each kind of field as SQL that gives its JSON value. Prices are never negative (the API
# refuses them).
_JSON_OF_KIND: Final = {
    "int": "{c}",
    "text": "{c}",
    "date": "{c}",  # stored as ISO text
    "cents": "printf('%d.%02d', {c} / 100, {c} % 100)",
}


def _json_object(fields: Sequence[str]) -> str:
    pairs = ", ".join(
        f"'{name}', "
        + _JSON_OF_KIND[schema.BY_NAME[name].kind].format(c=schema.BY_NAME[name].column)
        for name in fields
    )
    return f"json_object({pairs})"


@functools.lru_cache(maxsize=64)
def _json_select(fields: tuple[str, ...], ordering: query.Ordering) -> str:
    keys = ", ".join(dict.fromkeys(query.columns(ordering)))
    return f"{keys}, {_json_object(fields)} AS json"


# Separates the rows of a page gathered into one value (``_gathered``): the record
# separator, a control character, which JSON text never holds unescaped (json_object
# writes it inside a string as \u001e), so it can only stand between two rows.
_RS: Final = "\x1e"


@functools.lru_cache(maxsize=256)
def _gathered(page_sql: str, ordering: query.Ordering) -> str:
    """One row for a whole page: its books' JSON forms and their keyset positions, each
    joined by ``_RS`` in the page statement's order.

    Twenty rows each came back through sqlite3 and aiosqlite's thread as a row object of
    its own, each step handing the GIL over; one row per page took an author's page at a
    million rows from 61 to 43 µs with 64 pages in flight on one aiosqlite connection.

    group_concat takes the rows in the order the page's ORDER BY … LIMIT subquery yields
    them: SQLite runs it as a co-routine feeding the aggregate in that order (before 3.44
    SQLite has no ORDER BY inside an aggregate). tests/api/test_cursors.py walks every ordering
    both ways to hold it to that.
    """
    keys = ", ".join(query.columns(ordering))
    return (
        "SELECT group_concat(json, char(30)) AS json,"
        f" group_concat(json_array({keys}), char(30)) AS keys FROM ({page_sql})"
    )


# A search reads the books through their matches in the trigram index, in id order
# (``hit`` is the book's id): a page stops at its last row instead of gathering every
# match first, which at a million rows was 7 ms a page and 30 ms a count.
_FTS_SOURCE: Final = (
    "(SELECT rowid AS hit FROM book_search WHERE book_search MATCH ?) JOIN book ON id = hit"
)
# A search's count is exact up to this many matches and estimated above it from how far
# into the ids the first of them reach.
SEARCH_EXACT_COUNT: Final = COUNT_EXACT_UP_TO
# SQLite calls a connection's progress handler every _STEPS virtual-machine instructions
# of a statement (some 0.1-0.5 ms of work): a list page or a detail read takes fewer and
# never calls it. A bounded count may run _COUNT_BUDGET of those periods (counting 10,000
# entries of an index takes some 70,000 instructions) before it is stopped and estimated.
_STEPS: Final = 10_000
_COUNT_BUDGET: Final = 20
# The connection that counts exactly (``Prefer: count=exact``) keeps a smaller page cache
# than the main one: its scans read from the OS page cache.
_COUNTER_PRAGMAS: Final = {"cache_size": -2000, "query_only": "ON"}

_BOOK_JSON: Final = (
    f"SELECT id, version, {_json_object(schema.NAMES)} AS json FROM book WHERE id = ?"
)
# The triggers migration 0002 puts on ``book``, and what restores their work after a seed.
_TRIGGERS: Final = (
    "book_search_ai",
    "book_search_ad",
    "book_search_au",
    "book_count_ai",
    "book_count_ad",
    "book_author_count_ai",
    "book_author_count_ad",
    "book_author_count_au",
)
# The statements migration 0003 counts each author's books with (a module name that starts
# with a digit is imported by name).
_AUTHOR_COUNT_REFILL: Final = importlib.import_module(
    "db.migrations.0003_author_count_cover"
).REFILL
_SEED_CACHE_KIB: Final = -1_048_576  # 1 GiB at most, used only as the seed needs it
_SEED_INSERT: Final = (
    "INSERT INTO book (id, title, author, published_date, price_cents, version) "
    "VALUES (?, ?, ?, ?, ?, 1)"
)


class _OverBudgetError(Exception):
    """A bounded statement did more work than its budget allowed (it was stopped)."""


class _Guard:
    """A connection's progress handler, and what aiosqlite's thread runs each statement
    through (``run``): a statement is stopped once past its deadline, or once it has
    used its budget of progress-handler periods.

    Its state is the statement's, set and reset in the connection's own thread around
    each statement (aiosqlite runs one at a time), so it needs no lock.
    """

    __slots__ = ("budget", "deadline", "installed", "stopped")

    def __init__(self) -> None:
        self.deadline = math.inf
        self.budget = -1  # periods left; -1: no budget
        self.stopped = ""
        self.installed: sqlite3.Connection | None = None

    def __call__(self) -> int:
        if self.budget >= 0:
            self.budget -= 1
            if self.budget < 0:
                self.stopped = "budget"
                return 1
        if time.monotonic() > self.deadline:
            self.stopped = "time"
            return 1
        return 0

    def run(
        self,
        conn: sqlite3.Connection,
        deadline: float,
        budget: int,
        timeout: float | None,
        sql: str,
        values: Sequence[Any],
    ) -> list[Any]:
        if self.installed is not conn:  # a new connection (Tortoise opened it again)
            conn.set_progress_handler(self, _STEPS)
            self.installed = conn
        self.deadline, self.budget, self.stopped = deadline, budget, ""
        try:
            return conn.execute(sql, values).fetchall()
        except sqlite3.OperationalError:
            if self.stopped == "time":
                raise StatementTimeoutError(timeout) from None
            if self.stopped == "budget":
                raise _OverBudgetError() from None
            raise
        finally:
            self.deadline, self.budget = math.inf, -1


def _fts_phrase(flt: BookFilter) -> str | None:
    """The FTS5 query a search reads its candidates from, or None.

    A quoted FTS5 phrase on the trigram index narrows the rows to candidates (three
    characters at least: a trigram). The trigram tokenizer folds the case of every Unicode
    letter, LIKE only of ASCII ones: the LIKE of ``query.where`` decides, so a search means
    the same at every length and on both backends. With an ``author`` the author's index
    finds the rows faster: no phrase.
    """
    search = flt.search
    if not search or len(search) < 3 or flt.author is not None:
        return None
    return '"' + search.replace('"', '""') + '"'


def _iso(value: dt.date) -> str:
    # Tortoise stores a DateField as ISO text on SQLite.
    return value.isoformat()


class SqliteBackend(Backend):
    name = "sqlite"
    like = "LIKE"

    def date_param(self, value: dt.date) -> Any:
        return value.isoformat()

    def _client(self) -> Any:
        return (self._handler or connections).get("default")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = _Guard()
        self._counter: aiosqlite.Connection | None = None
        self._counter_guard = _Guard()
        self._counter_opening = asyncio.Lock()

    def _deadline(self) -> float:
        timeout = self.statement_timeout
        return math.inf if timeout is None else time.monotonic() + timeout

    async def fetch(self, sql: str, values: Sequence[Any] = (), budget: int = -1) -> Sequence[Row]:
        """Rows of one statement, stopped past the statement time limit; with a
        ``budget`` (progress-handler periods), _OverBudgetError once it has used it."""
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
                # connection's queue, through the guard. sqlite3's errors become
                # Tortoise's, as its own translate_exceptions does.
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
                for pragma, value in {**client.pragmas, **_COUNTER_PRAGMAS}.items():
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

    async def bounded_count(self, where: str, values: Sequence[Any]) -> int | None:
        """Counted on the worker's connection, stopped once it has used _COUNT_BUDGET:
        what bounds it is the work done, whichever index the plan reads (a price range
        alone reads only the matches from its index; two filters may read many rows that
        fail the second)."""
        try:
            rows = await self.fetch(
                BOUNDED_COUNT.format(where=where),
                [*values, COUNT_SCAN_LIMIT + 1],
                budget=_COUNT_BUDGET,
            )
        except _OverBudgetError:
            return None
        return int(rows[0]["n"])

    async def exact_count(self, where: str, values: Sequence[Any]) -> int:
        return await self._exact(f"SELECT count(*) AS n FROM book WHERE {where}", values)

    async def _exact(self, sql: str, values: Sequence[Any]) -> int:
        try:
            rows = await self._fetch_counting(sql, values)
        except StatementTimeoutError as exc:
            raise StatementTimeoutError(exc.seconds, counting=True) from exc
        return int(rows[0]["n"])

    async def count(self, q: PageQuery, clauses: list[str], values: list[Any]) -> tuple[int, bool]:
        phrase = _fts_phrase(q.filter)
        if phrase is None:
            return await super().count(q, clauses, values)
        found = await self._search_count(phrase, clauses, values, q.exact_count)
        if found is not None:
            return found
        where = " AND ".join(clauses)  # the index finds too many rows that fail the rest
        if q.exact_count:
            return await self.exact_count(where, values), True
        return await self.estimate_count(where, values)

    async def _search_count(
        self, phrase: str, clauses: list[str], values: list[Any], exact: bool
    ) -> tuple[int, bool] | None:
        """The count of a search read through the trigram index (``_FTS_SOURCE``); None
        when the matches the index finds mostly fail the other filters, too many to read
        within the budget.

        Exact up to SEARCH_EXACT_COUNT matches (and with ``exact``). Above it, estimated
        from how far into the ids the first SEARCH_EXACT_COUNT + 1 matches reach, taking
        the matches to be spread evenly over the ids: counting every match of a common
        word costs time in proportion to the table. One bounded statement either way.
        """
        over = SEARCH_EXACT_COUNT + 1
        where = " AND ".join(clauses)
        exact_sql = f"SELECT count(*) AS n FROM {_FTS_SOURCE} WHERE {where}"
        if len(clauses) == 1:  # the search's own LIKE: the index alone bounds the count
            capped = "SELECT rowid AS hit FROM book_search WHERE book_search MATCH ? ORDER BY rowid"
            capped_values = [phrase]
            exact_now = f"({exact_sql})"
            exact_values = [phrase, *values]
        else:
            capped = f"SELECT hit FROM {_FTS_SOURCE} WHERE {where} ORDER BY hit"
            capped_values = [phrase, *values]
            exact_now, exact_values = "n", []
        try:
            rows = await self.fetch(
                f"SELECT CASE WHEN n < ? THEN {exact_now} END AS exact, r,"
                " (SELECT min(id) FROM book) AS lo, (SELECT max(id) FROM book) AS hi,"
                " (SELECT n FROM book_count WHERE id = 1) AS total"
                f" FROM (SELECT count(*) AS n, max(hit) AS r FROM ({capped} LIMIT ?))",
                [over, *exact_values, *capped_values, over],
                budget=_COUNT_BUDGET,
            )
        except _OverBudgetError:
            return None
        row = rows[0]
        if row["exact"] is not None:
            return int(row["exact"]), True
        if exact:
            return await self._exact(exact_sql, [phrase, *values]), True
        lo, hi, reached = row["lo"], row["hi"], row["r"]
        estimate = round(over * (hi - lo + 1) / (reached - lo + 1))
        return max(over, min(int(row["total"] or 0), estimate)), False

    async def list_books(self, q: PageQuery) -> Page:
        clauses, values = query.where(q.filter, self.like, _iso)
        phrase = _fts_phrase(q.filter)
        count: int | None = None
        exact = True
        if q.with_count:
            count, exact = await self.count(q, clauses, values)
        source, id_column = (_FTS_SOURCE, "hit") if phrase else ("book", "id")
        params = [phrase, *values] if phrase else values
        if q.after is not None:
            params += query.keyset_values(q.after, q.ordering, _iso)
        statement = query.page_sql(
            _json_select(q.fields, q.ordering),
            source,
            id_column,
            tuple(clauses),
            q.ordering,
            q.backwards,
            q.after is not None,
        )
        params += [q.limit + 1, q.offset]
        rows = await self.fetch(_gathered(statement, q.ordering), params)
        page = _split_page(rows[0], q, count)
        if not exact:
            page.count_exact = False
        return page

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
        rows: Callable[[int, int, bool], Any],
        progress: Callable[[int, int], None] | None,
    ) -> tuple[int, int]:
        client = self._client()
        _, found = await client.execute_query("PRAGMA cache_size")
        cache_size = int(found[0][0])
        # Four secondary indexes on random keys: with the served page cache, a large seed
        # spills pages to the WAL over and over. Give this connection room, then restore.
        await client.execute_script(f"PRAGMA cache_size = {_SEED_CACHE_KIB}")
        try:
            return await _seed_transaction(count, replace, batch_size, rows, progress)
        finally:
            await client.execute_script(f"PRAGMA cache_size = {cache_size}")


def _split_page(row: Row, q: PageQuery, count: int | None) -> Page:
    """The page of ``_gathered``'s one row: up to ``q.limit + 1`` rows in the order of
    travel, the last of them only there to tell whether there are more."""
    text, keys = row["json"], row["keys"]
    if text is None:  # no rows
        return Page(json="[]", count=count, has_more=False)
    n = keys.count(_RS) + 1
    has_more = n > q.limit
    if has_more:
        text, keys = text[: text.rindex(_RS)], keys[: keys.rindex(_RS)]
    first, last = keys.partition(_RS)[0], keys.rpartition(_RS)[2]
    if q.backwards:  # the rows came last first
        first, last = last, first
        items = ",".join(reversed(text.split(_RS)))
    else:
        items = text.replace(_RS, ",")
    return Page(
        json="[" + items + "]",
        count=count,
        has_more=has_more,
        first=orjson.loads(first),
        last=orjson.loads(last),
    )


async def _seed_transaction(
    count: int,
    replace: bool,
    batch_size: int,
    make_rows: Callable[[int, int, bool], Any],
    progress: Callable[[int, int], None] | None,
) -> tuple[int, int]:
    """The seed's one transaction: the triggers dropped, the rows inserted in batches, the
    triggers' work redone in bulk (search index, counts), the triggers put back."""
    async with in_transaction("default") as conn:
        _, rows = await conn.execute_query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'book'"
        )
        dropped = [(r["name"], r["sql"]) for r in rows if r["name"] in _TRIGGERS]
        for name, _ in dropped:
            await conn.execute_query(f'DROP TRIGGER "{name}"')
        if replace:
            await conn.execute_query("DELETE FROM book")
            await conn.execute_query("DELETE FROM sqlite_sequence WHERE name = 'book'")
        _, rows = await conn.execute_query("SELECT coalesce(max(id), 0) AS top FROM book")
        first = int(rows[0]["top"]) + 1
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            await conn.execute_many(_SEED_INSERT, list(make_rows(first + done, size, True)))
            done += size
            if progress:
                progress(done, count)
        names = {name for name, _ in dropped}
        if names & {"book_search_ai", "book_search_ad", "book_search_au"}:
            if replace:
                await conn.execute_query("INSERT INTO book_search(book_search) VALUES ('rebuild')")
            else:
                await conn.execute_query(
                    "INSERT INTO book_search(rowid, title, author) "
                    "SELECT id, title, author FROM book WHERE id >= ?",
                    [first],
                )
        if names & {"book_count_ai", "book_count_ad"}:
            await conn.execute_query(
                "UPDATE book_count SET n = (SELECT count(*) FROM book) WHERE id = 1"
            )
        if names & {"book_author_count_ai", "book_author_count_ad"}:
            for statement in _AUTHOR_COUNT_REFILL:
                await conn.execute_query(statement)
        for _, statement in dropped:
            await conn.execute_query(statement)
        _, rows = await conn.execute_query("SELECT count(*) AS n FROM book")
        total = int(rows[0]["n"])
    return first, total
