"""The data layer's face: one ``Backend`` per open database, chosen when it is opened
(``db.open_db``) and held by whoever serves (the app's ``ctx.db``).

A backend owns what differs between databases: how a statement is sent, how a date and a
case-insensitive match are written, how a list page is fetched, counted and rendered, and
how the seed is bulk-loaded. What is the same on both lives here and in ``db.query``:
writes are single statements (or two on a miss, to tell 401 from 404 from 412), so a
write is atomic without an explicit transaction: the version check of a conditional write
is in the ``UPDATE``'s own ``WHERE``, which closes the race between checking a tag and
writing. A write given a token digest checks the token in that same ``WHERE``
(``ACTIVE_TOKEN``): authenticating a write costs no statement of its own. A write sent
whose answer was lost raises ``OutcomeUnknownError`` (``write``); one that failed
otherwise stored nothing. A write under an ``Idempotency-Key`` (``once``) runs in a
transaction with its stored answer (``write_transaction``, ``db.idempotency``).

Every read returns JSON made here, never a driver's row: ``Page.json`` for a list,
``BookJSON`` for a book.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

import orjson
from tortoise import connections
from tortoise.connection import ConnectionHandler
from tortoise.exceptions import OperationalError

from db import health, idempotency, query, schema
from db.errors import (
    DatabaseUnavailableError,
    NotFoundError,
    PreconditionFailedError,
    StatementTimeoutError,
    TokenRejectedError,
)
from db.query import BookFilter, BookJSON, BookValues, Page, PageQuery
from db.tokens import ACTIVE_TOKEN, LAST_USED_RESOLUTION, hash_key

V = TypeVar("V")
Row = Any  # a driver's row, indexable by column name; never leaves db/
# The seed's batches: (first id, how many, dates as ISO text?) -> rows of new books.
RowBatches = Callable[[int, int, bool], Any]
Progress = Callable[[int, int], None]  # (rows done, rows asked)

# An author's count is kept by triggers (migration 0003): one look-up, not a read of every
# book of the author (hundreds at a million rows).
_AUTHOR_COUNT: Final = "SELECT n FROM book_author_count WHERE author = ?"
_TOTAL_COUNT: Final = "SELECT n FROM book_count WHERE id = 1"
_BOOK_ROW: Final = f"SELECT {schema.COLUMNS} FROM book WHERE id = ?"
_INSERT: Final = "INSERT INTO book (title, author, published_date, price_cents, version)"

# A filtered list's ``count`` (``Backend.count``) is exact when counting it costs little:
# its matches are counted up to COUNT_SCAN_LIMIT + 1 (on SQLite under a budget of work,
# whatever the plan reads; a search through its trigram index up to COUNT_EXACT_UP_TO + 1).
# So a filter with at most COUNT_EXACT_UP_TO matches is counted exactly whenever an index
# finds its matches without reading many rows that fail it (every single filter but a
# search of one or two characters, which no index serves). Above, the count is an
# estimate (``estimate_count``; a search's: ``db.sqlite``). ``Prefer: count=exact``
# asks for every match, however long it takes up to the statement time limit.
COUNT_EXACT_UP_TO: Final = 1_000
COUNT_SCAN_LIMIT: Final = 10_000
# A statement planned to read more than this many index entries' worth (a millisecond or
# more) is costly: it runs beside the cheap ones, one at a time per worker (SQLite: on the
# worker's second connection; PostgreSQL: ``PostgresBackend._costly``).
ASIDE_FROM: Final = 2_000
# Estimates (``Backend.count``) and the counts plans are made from (``Backend.planned``)
# are kept this long per filter in a process: a plan does not need a count to the row.
KEPT_SECONDS: Final = 30.0
# Seconds to open a connection to a database server (DB_CONNECT_TIMEOUT): asyncpg's own
# default, 60 s, left every command and start-up silent for a minute when PostgreSQL
# accepted TCP and never answered.
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
SAMPLE_BLOCKS: Final = 100
SAMPLE_ROWS: Final = 10_000
BOUNDED_COUNT: Final = (
    "SELECT count(*) AS n FROM (SELECT 1 FROM {source} WHERE {where} LIMIT ?) AS m"
)
# Each of min and max in a subquery of its own: SQLite reads one end of the primary key
# for a lone min() or max(), but scans the table for both together.
_SPAN: Final = (
    "SELECT (SELECT min(id) FROM book) AS lo, (SELECT max(id) FROM book) AS hi,"
    " (SELECT n FROM book_count WHERE id = 1) AS total"
)
_SAMPLE: Final = (
    "WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < ?)"
    " SELECT count(*) AS e, count(CASE WHEN {where} THEN 1 END) AS m"
    " FROM s JOIN book ON book.id >= ? + s.k * ? AND book.id < ? + s.k * ? + ?"
)


class Kept(Generic[V]):
    """Values kept ``seconds`` each by key, up to ``most`` keys (past it, all are dropped
    at once: a worker's filters in use come back within seconds)."""

    __slots__ = ("_items", "most", "seconds")

    def __init__(self, seconds: float, most: int = 4096) -> None:
        self._items: dict[Any, tuple[V, float]] = {}
        self.seconds = seconds
        self.most = most

    def get(self, key: Any) -> V | None:
        item = self._items.get(key)
        return item[0] if item is not None and item[1] > time.monotonic() else None

    def put(self, key: Any, value: V) -> None:
        if len(self._items) >= self.most:
            self._items.clear()
        self._items[key] = (value, time.monotonic() + self.seconds)


def _position(row: Row, columns: Sequence[str]) -> list[Any]:
    """The keyset position of ``row``: its ordering columns' values as JSON values."""
    out = []
    for col in columns:
        value = row[col]
        out.append(value if isinstance(value, (int, str)) else value.isoformat())
    return out


def is_open(client: Any) -> bool:
    """Whether Tortoise's client holds its SQLite connection or its PostgreSQL pool."""
    return (
        getattr(client, "_connection", None) is not None
        or getattr(client, "_pool", None) is not None
    )


class Backend:
    """What both databases share; ``db.sqlite.SqliteBackend`` and
    ``db.postgres.PostgresBackend`` fill in the rest."""

    name: ClassVar[str]
    # A search's condition (``query.where``): the title, or the author, holds the pattern.
    search_sql: ClassVar[str]
    short_search_sql: ClassVar[str | None] = None  # for one or two characters, if another
    # A row of a multi-row VALUES list of new books (PostgreSQL types a bare VALUES list
    # from its values: it is told the columns' types).
    values_row: ClassVar[str] = "(?, ?, ?, ?, 1)"
    # The estimate's sample (``estimate_count``), SAMPLE_BLOCKS runs of ids.
    sample_sql: ClassVar[str] = _SAMPLE

    def __init__(self, handler: ConnectionHandler) -> None:
        # Tortoise's connection handler of the context the database was opened in: asked
        # for the connection directly, not through ``tortoise.connections``, which looks
        # the context up again on every statement.
        self._handler: ConnectionHandler | None = handler
        self._touched: dict[str, float] = {}  # token digest -> when to refresh it again
        self._estimates: Kept[int] = Kept(KEPT_SECONDS)  # filter -> its estimated count
        self._planned: Kept[int] = Kept(KEPT_SECONDS)  # filter -> its count, for plans
        self._total_seen = 0
        self._total_until = -math.inf
        self._full_render = schema.render
        # Seconds a statement may run before it is stopped (None: no limit); the server
        # sets it from STATEMENT_TIMEOUT.
        self.statement_timeout: float | None = None

    # -- what each backend provides ------------------------------------------------------

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
        """Tortoise's connection entry (engine and credentials) for ``url``;
        ``synchronous``: SQLite's pragma of that name (SQLITE_SYNCHRONOUS), None for its
        default; opening a connection takes at most ``connect_timeout`` seconds where
        there is one to open."""
        raise NotImplementedError

    @classmethod
    def prepare(cls, url: str, check: str = "off") -> None:
        """Before Tortoise opens ``url``: raise when it cannot be used as it is;
        ``check``: how much of the stored data to check first ("quick", "full", "off";
        DB_CHECK), where the backend can."""

    @classmethod
    def migration_lock(
        cls, url: str, connection: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """A lock that every process migrating this database takes for the whole run."""
        raise NotImplementedError

    async def fetch(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        """Rows of one statement (``?`` placeholders), each indexable by column name."""
        raise NotImplementedError

    def date_param(self, value: dt.date) -> Any:
        raise NotImplementedError

    async def list_books(self, q: PageQuery) -> Page:
        """The page ``q`` asks for, its ``count`` when ``q.with_count``."""
        raise NotImplementedError

    async def book_json(self, book_id: int) -> BookJSON:
        """The book's JSON form and version; NotFoundError when there is none."""
        raise NotImplementedError

    async def bulk_load(
        self,
        count: int,
        replace: bool,
        batch_size: int,
        rows: RowBatches,
        progress: Progress | None,
    ) -> tuple[int, int]:
        """Insert ``count`` seeded books after the highest id, in one transaction: (first
        id, rows afterwards). ``rows(first_id, n, dates_as_text)`` makes a batch."""
        raise NotImplementedError

    async def check_counts(self, *, thorough: bool = False) -> tuple[int, int, int | None]:
        """(rows, the kept count, rows in the search index or None when it keeps none)."""
        rows = await self.fetch("SELECT count(*) AS n FROM book")
        counter = await self.fetch(_TOTAL_COUNT)
        return int(rows[0]["n"]), int(counter[0]["n"]) if counter else 0, None

    def _client(self) -> Any:
        """Tortoise's client of the default connection (a transaction's, inside one)."""
        return (self._handler or connections).get("default")

    def forget_connections(self) -> None:
        """The database is closing: statements no longer reach it through this object."""
        self._handler = None

    async def close(self) -> None:
        """Close what the backend opened beside Tortoise's connections."""

    # -- shared ---------------------------------------------------------------------------

    async def ping(self) -> None:
        try:
            await self.fetch("SELECT 1")
        except OperationalError as exc:
            raise DatabaseUnavailableError(str(exc)) from exc

    def render_json(self, row: Row) -> bytes:
        return orjson.dumps(self._full_render(row))

    async def count(self, q: PageQuery, clauses: list[str], values: list[Any]) -> tuple[int, bool]:
        """``q``'s count and whether it is exact (see ``COUNT_EXACT_UP_TO``).

        An estimate is kept KEPT_SECONDS per filter in this process and given
        again meanwhile: a filter estimated once matches too many rows to count, and
        estimating it again cost a sample of the table per request (a third of a
        two-character search's time at ten million rows). An exact count is never kept.
        """
        if not q.exact_count:
            kept = self._estimates.get(q.filter)
            if kept is not None:
                return kept, False
        n, exact = await self._count(q, clauses, values)
        if not exact:
            self._estimates.put(q.filter, n)
        return n, exact

    def where(self, flt: BookFilter, unindexed: bool = False) -> tuple[list[str], list[Any]]:
        """``flt``'s conditions and values as this backend writes them (``query.where``)."""
        return query.where(flt, self.search_sql, self.date_param, self.short_search_sql, unindexed)

    async def planned(self, flt: BookFilter, known: int | None = None) -> int:
        """About how many rows ``flt`` matches, for a plan: ``known`` (the page's own
        count) when there is one, else the count a list would give (bounded; an estimate
        when large); kept KEPT_SECONDS, so a cursor page plans with its first page's."""
        if known is None:
            known = self._planned.get(flt)
            if known is not None:
                return known
            clauses, values = self.where(flt)
            known, _ = await self.count(PageQuery(filter=flt), clauses, values)
        self._planned.put(flt, known)
        return known

    async def total_rows(self) -> int:
        """The table's row count for plans: kept by triggers, read at most once a second."""
        now = time.monotonic()
        if now >= self._total_until:
            rows = await self.fetch(_TOTAL_COUNT)
            self._total_seen = int(rows[0]["n"]) if rows else 0
            self._total_until = now + 1.0
        return self._total_seen

    async def _count(
        self, q: PageQuery, clauses: list[str], values: list[Any], source: str = "book"
    ) -> tuple[int, bool]:
        """``count`` as counted now; ``source``: the FROM that finds the matches (a
        backend may name the index to read)."""
        flt = q.filter
        if flt.is_empty():
            rows = await self.fetch(_TOTAL_COUNT)
            return (int(rows[0]["n"]) if rows else 0), True
        if flt.is_author_only():
            rows = await self.fetch(_AUTHOR_COUNT, [flt.author])
            return (int(rows[0]["n"]) if rows else 0), True
        where = " AND ".join(clauses)
        n = await self.bounded_count(where, values, source)
        if n is not None and n <= COUNT_SCAN_LIMIT:
            return n, True
        if q.exact_count:
            return await self.exact_count(where, values, source), True
        return await self.estimate_count(where, values, at_least=0 if n is None else n)

    async def bounded_count(
        self, where: str, values: Sequence[Any], source: str = "book"
    ) -> int | None:
        """The matches of ``where`` up to COUNT_SCAN_LIMIT + 1; None when counting them
        would cost more than a list page may (the backend decides)."""
        rows = await self.fetch(
            BOUNDED_COUNT.format(source=source, where=where), [*values, COUNT_SCAN_LIMIT + 1]
        )
        return int(rows[0]["n"])

    async def _costly(self, sql: str, values: Sequence[Any]) -> Sequence[Row]:
        """Rows of a statement planned to read many rows (past ASIDE_FROM): run beside the
        cheap ones where the backend can (``PostgresBackend._costly``)."""
        return await self.fetch(sql, values)

    async def exact_count(self, where: str, values: Sequence[Any], source: str = "book") -> int:
        """Every match of ``where``, however long it takes up to the statement time limit
        (``StatementTimeoutError`` past it), as a costly statement (``_costly``)."""
        try:
            rows = await self._costly(f"SELECT count(*) AS n FROM {source} WHERE {where}", values)
        except StatementTimeoutError as exc:
            raise StatementTimeoutError(exc.seconds, counting=True) from exc
        return int(rows[0]["n"])

    async def estimate_count(
        self, where: str, values: Sequence[Any], *, at_least: int = 0
    ) -> tuple[int, bool]:
        """The matches of ``where`` estimated from a sample of the table whose size does
        not grow with the table, and whether the answer happens to be exact.

        The sample is SAMPLE_BLOCKS runs of consecutive ids spread evenly from the lowest
        id to the highest, SAMPLE_ROWS ids in all, each run read by one seek of the
        primary key (a recursive CTE makes the runs' starts): the estimate is the table's
        kept row count times the share of sampled rows that match. A table whose ids span
        no more than SAMPLE_ROWS is counted in full instead (exactly). The estimate is
        kept between ``at_least`` (matches already counted) and the table's row count.
        """
        rows = await self.fetch(_SPAN)
        lo, hi, total = rows[0]["lo"], rows[0]["hi"], int(rows[0]["total"] or 0)
        if lo is None:
            return 0, True
        span = hi - lo + 1
        if span <= SAMPLE_ROWS:
            rows = await self.fetch(f"SELECT count(*) AS n FROM book WHERE {where}", values)
            return int(rows[0]["n"]), True
        step, width = span // SAMPLE_BLOCKS, SAMPLE_ROWS // SAMPLE_BLOCKS
        rows = await self.fetch(
            self.sample_sql.format(where=where),
            [SAMPLE_BLOCKS, *values, lo, step, lo, step, width],
        )
        examined, matched = int(rows[0]["e"]), int(rows[0]["m"])
        estimate = round(total * matched / examined) if examined else 0
        return max(at_least, min(total, estimate)), False

    def _rows_page(
        self, rows: list[Row], q: PageQuery, count: int | None, exact: bool = True
    ) -> Page:
        """A page from up to ``q.limit + 1`` driver rows in the order of travel."""
        has_more = len(rows) > q.limit
        rows = rows[: q.limit]
        if q.backwards:
            rows.reverse()
        render = schema.renderer(q.fields)
        text = orjson.dumps([render(row) for row in rows])
        if not rows:
            return Page(json=text, count=count, has_more=has_more, count_exact=exact)
        cols = query.columns(q.ordering)
        first, last = _position(rows[0], cols), _position(rows[-1], cols)
        return Page(text, count, has_more, first, last, exact)

    async def _book_row(self, book_id: int, statement: str = _BOOK_ROW) -> Row:
        if not 0 < book_id <= schema.INT_MAX:
            raise NotFoundError(book_id)
        rows = await self.fetch(statement, (book_id,))
        if not rows:
            raise NotFoundError(book_id)
        return rows[0]

    def _saved(self, row: Row) -> BookJSON:
        return BookJSON(row["id"], row["version"], self.render_json(row))

    def _insert(self, items: Sequence[BookValues], token: str | None) -> tuple[str, list[Any]]:
        values: list[Any] = []
        for item in items:
            values += [item.title, item.author, self.date_param(item.published_date), item.price]
        rows_sql = ", ".join([self.values_row] * len(items))
        if token is None:
            statement = f"{_INSERT} VALUES {rows_sql}"
        else:
            statement = f"{_INSERT} SELECT * FROM (VALUES {rows_sql}) AS v WHERE {ACTIVE_TOKEN}"
            values.append(token)
        return f"{statement} RETURNING {schema.COLUMNS}", values

    def _created(self, rows: Sequence[Row], token: str | None) -> list[BookJSON]:
        if token is not None and not rows:
            raise TokenRejectedError()
        # Ids are assigned in VALUES order; RETURNING's own order is unspecified.
        return [self._saved(row) for row in sorted(rows, key=lambda row: row["id"])]

    async def create_books(
        self, items: Sequence[BookValues], *, token: str | None = None
    ) -> list[BookJSON]:
        """Insert all items in one statement: all of them are created, or none.

        With ``token`` (a key's digest), only if that token is active, else
        TokenRejectedError.
        """
        if not items:
            return []
        books = self._created(await self.write(*self._insert(items, token)), token)
        if token is not None:
            await self.touch_token(token)
        health.confirm_write()  # not acknowledged if the file was deleted or replaced
        return books

    async def create_books_once(
        self,
        items: Sequence[BookValues],
        once: idempotency.Once,
        answer: Callable[[list[BookJSON]], idempotency.Outcome],
        *,
        token: str | None = None,
    ) -> idempotency.Outcome:
        """``create_books`` under an Idempotency-Key (``once``): the answer ``answer``
        makes of the books, stored with them, or the one stored by the key's first
        request (``db.idempotency``)."""

        ran = False

        async def work(fetch: idempotency.Fetch) -> idempotency.Outcome:
            nonlocal ran
            ran = True
            sql, values = self._insert(items, token)
            return answer(self._created(await fetch(sql, values), token))

        outcome = await self.once(once, work)
        if token is not None:
            if not ran:
                # A stored answer is given only to a token still active, as a write is.
                await self._check_token(token)
            await self.touch_token(token)
        return outcome

    async def once(
        self,
        once: idempotency.Once,
        work: Callable[[idempotency.Fetch], Awaitable[idempotency.Outcome]],
    ) -> idempotency.Outcome:
        """Run ``work`` (statements on the fetch it is given, in one transaction) at most
        once for ``once``'s key, its outcome stored in that transaction; or give the
        outcome stored by the key's first request (``db.idempotency``).

        Shielded: a client that hangs up does not stop it halfway (on SQLite, with the
        connection's lock held and its transaction open).
        """
        run = idempotency.run(self.fetch, self.write_transaction, self.hold_key, once, work)
        return await asyncio.shield(run)

    async def hold_key(self, fetch: idempotency.Fetch, once: idempotency.Once) -> bool:
        """Inside ``write_transaction``: hold ``once``'s key until it ends, so no other
        request with the key runs meanwhile; False when another transaction holds it
        now. (SQLite: its transaction already holds the only write lock.)"""
        return True

    def write_transaction(self) -> contextlib.AbstractAsyncContextManager[idempotency.Fetch]:
        """A transaction of writes: the fetch it gives runs statements inside it; it
        commits when the block ends, rolls back when it raises. A failure before the
        COMMIT stored nothing; one of the COMMIT whose answer was lost raises
        OutcomeUnknownError. (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: one pooled
        connection.)"""
        raise NotImplementedError

    async def write(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        """Rows of one writing statement (autocommit): a failure that leaves its outcome
        unknown (sent, and the answer lost) raises OutcomeUnknownError."""
        return await self.fetch(sql, values)

    async def _check_token(self, token: str | None) -> None:
        if token is not None and not await self.digest_is_active(token):
            raise TokenRejectedError()

    async def _miss(self, book_id: int, token: str | None) -> None:
        """Tell why a write touched no row: 401 for a token no longer active, 404, or 412
        for a stale version."""
        await self._check_token(token)
        rows = await self.fetch("SELECT version FROM book WHERE id = ?", [book_id])
        if not rows:
            raise NotFoundError(book_id)
        raise PreconditionFailedError(book_id)

    @staticmethod
    def _guards(if_versions: Sequence[int] | None, token: str | None) -> tuple[str, list[Any]]:
        sql, values = "", []
        if if_versions is not None:
            sql += f" AND version IN ({', '.join('?' * len(if_versions))})"
            values += list(if_versions)
        if token is not None:
            sql += f" AND {ACTIVE_TOKEN}"
            values.append(token)
        return sql, values

    async def update_book(
        self,
        book_id: int,
        changes: dict[str, Any],
        *,
        if_versions: Sequence[int] | None,
        token: str | None = None,
    ) -> BookJSON:
        """Apply ``changes`` (field name -> value, the price in cents) and bump the
        version, in one statement. ``token`` as for create_books."""
        if not 0 < book_id <= schema.INT_MAX:
            await self._check_token(token)
            raise NotFoundError(book_id)
        if not changes:
            await self._check_token(token)
            row = await self._book_row(book_id)
            if if_versions is not None and row["version"] not in if_versions:
                raise PreconditionFailedError(book_id)
            if token is not None:
                await self.touch_token(token)
            return self._saved(row)
        sets = [f"{schema.BY_NAME[name].column} = ?" for name in changes]
        sets.append("version = version + 1")
        values = [self.date_param(v) if isinstance(v, dt.date) else v for v in changes.values()]
        guard, guard_values = self._guards(if_versions, token)
        rows = await self.write(
            f"UPDATE book SET {', '.join(sets)} WHERE id = ?{guard} RETURNING {schema.COLUMNS}",
            [*values, book_id, *guard_values],
        )
        if not rows:
            await self._miss(book_id, token)
        if token is not None:
            await self.touch_token(token)
        health.confirm_write()
        return self._saved(rows[0])

    async def delete_book(
        self, book_id: int, *, if_versions: Sequence[int] | None, token: str | None = None
    ) -> None:
        """Delete the book, in one statement; ``token`` as for create_books."""
        if not 0 < book_id <= schema.INT_MAX:
            await self._check_token(token)
            raise NotFoundError(book_id)
        guard, guard_values = self._guards(if_versions, token)
        rows = await self.write(
            f"DELETE FROM book WHERE id = ?{guard} RETURNING id", [book_id, *guard_values]
        )
        if not rows:
            await self._miss(book_id, token)
        if token is not None:
            await self.touch_token(token)
        health.confirm_write()

    # -- tokens on the request path -------------------------------------------------------

    async def token_is_active(self, key: str) -> bool:
        """True when ``key`` belongs to an unrevoked token (no last-use bookkeeping)."""
        return await self.digest_is_active(hash_key(key))

    async def digest_is_active(self, digest: str) -> bool:
        rows = await self.fetch(f"SELECT 1 AS ok WHERE {ACTIVE_TOKEN}", [digest])
        return bool(rows)

    async def touch_token(self, digest: str) -> None:
        """Record a write made with the token of ``digest``: refresh its last_used_at, at
        most once per LAST_USED_RESOLUTION in this process."""
        now = time.monotonic()
        if self._touched.get(digest, 0.0) > now:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[digest] = now + LAST_USED_RESOLUTION.total_seconds()
        # Fixed SQL, not the ORM: an ORM statement takes Tortoise's SQLite connection
        # lock, and while it is held every other request's statement queues behind it
        # (db.sqlite). Under load the queue never drained: one refresh a minute serialised
        # all statements after it. (Tortoise registers the sqlite3 adapter that stores a
        # datetime as it would.) Bookkeeping after a write that went through: its failure
        # (the database gone a moment later) must not turn the write's 2xx into an error.
        with contextlib.suppress(Exception):
            await self.fetch(
                "UPDATE api_token SET last_used_at = ? WHERE key_hash = ?",
                [dt.datetime.now(dt.UTC), digest],
            )
