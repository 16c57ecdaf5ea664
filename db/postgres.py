"""PostgreSQL: statements on Tortoise's asyncpg pool, books' JSON made in Python.

Statements are written once with ``?`` placeholders (``db.query``, ``db.backend``);
asyncpg wants ``$1``-style ones: the text is rewritten once per distinct statement and
cached. A search is ``ILIKE`` over the ``pg_trgm`` indexes (migrations 0002, 0006). A
statement past the statement time limit is stopped by the server: ``statement_timeout``
is set on every connection of the pool (``db.build_config``). Statements planned to read
many rows, and exact counts, take turns, one at a time per worker (``_costly``); the
cheap ones run beside them on the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg
import orjson
from tortoise.exceptions import DBConnectionError

from db import idempotency, query, schema
from db.backend import (
    ASIDE_FROM,
    BOUNDED_COUNT,
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
from db.errors import (
    ConnectTimeoutError,
    DatabaseUnavailableError,
    OutcomeUnknownError,
    StatementTimeoutError,
)
from db.idempotency import Fetch
from db.query import BookFilter, BookJSON, Page, PageQuery

_log = logging.getLogger(__name__)

# The connection failed, not the statement: the server unreachable, restarting or failing
# over, an administrator ending the session (asyncpg then reports AdminShutdownError, or an
# InternalClientError/InterfaceError from the broken connection), too many connections, a
# statement cancelled. The client gets 503 with Retry-After, not an opaque 500; the pool
# replaces the connection.
_UNAVAILABLE: Final = (
    DBConnectionError,
    ConnectionError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.InterfaceError,
)
# A statement (or COMMIT) was sent and no answer came: the connection closed under it
# (asyncpg's ConnectionDoesNotExistError, a reset), or a client-side time limit ran out.
# Whether the server committed it is unknown.
_ANSWER_LOST: Final = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# One key per database: every instance's migrations (whatever its schema) queue on it,
# which also serialises CREATE EXTENSION, a database-wide catalog change.
MIGRATION_LOCK_KEY: Final = 727274
# Credentials Tortoise consumes itself, and create_pool()'s own ``connect``; the rest are
# asyncpg connect() options.
_TORTOISE_ONLY: Final = (
    "minsize",
    "maxsize",
    "schema",
    "application_name",
    "server_settings",
    "connect",
)
_COLUMNS: Final = ["id", "title", "author", "published_date", "price_cents", "version"]
# A match found through a search's trigram index and sorted costs about this many index
# entries walked (its row is fetched from the table; ``PostgresBackend._sorts``).
SORTED_ROW_COST: Final = 16
# A search of one or two characters is counted (up to COUNT_SCAN_LIMIT) in a table of
# at most this many rows, which it reads whole (some 20 ms); above, it is estimated.
SCAN_UP_TO: Final = 50_000
# The sample's runs, each read by its own range scan of the primary key (LATERAL): joined
# on a range, PostgreSQL scanned the whole table for them (110 ms at ten million rows).
_SAMPLE: Final = (
    "WITH RECURSIVE s(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM s WHERE k + 1 < ?)"
    " SELECT count(*) AS e, count(CASE WHEN {where} THEN 1 END) AS m FROM s CROSS JOIN"
    " LATERAL (SELECT * FROM book WHERE book.id >= ? + s.k * ? AND book.id < ? + s.k * ? + ?)"
    " AS book"
)

# The indexes of ``book`` that no constraint owns (not the primary key's), as the seed
# drops and creates them again.
_SECONDARY_INDEXES: Final = (
    "SELECT i.relname AS name, pg_get_indexdef(i.oid) AS sql FROM pg_index x"
    " JOIN pg_class i ON i.oid = x.indexrelid"
    " WHERE x.indrelid = 'book'::regclass"
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
)

# The count of a search alone (``PostgresBackend._count``): the books of the authors that
# hold the text, from their kept counts, plus the other books whose title holds it (up to
# a bound). An author's name at ten million rows: one look-up of its count, not 2,500
# books read from the table (12 ms).
_SEARCH_COUNT: Final = (
    "SELECT (SELECT coalesce(sum(n), 0) FROM book_author_count"
    " WHERE author ILIKE ? ESCAPE '\\') AS authors,"
    " (SELECT count(*) FROM (SELECT 1 FROM book WHERE title ILIKE ? ESCAPE '\\'"
    " AND NOT author = ANY (ARRAY(SELECT author FROM book_author_count"
    " WHERE author ILIKE ? ESCAPE '\\')) LIMIT ?) AS m) AS titles"
)


async def connect(*args: Any, timeout: float, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect``, its time limit (TCP, TLS, the server's start-up answer) past
    which ConnectTimeoutError says that nothing was sent. Every connection bookshelf opens
    comes from here: the pool's (its ``connect``), the migration lock's.

    asyncpg reports both a connection not made in time and a statement not answered in
    time (``command_timeout``) as TimeoutError; only the second may have run.
    """
    try:
        return await asyncpg.connect(*args, timeout=timeout, **kwargs)
    except TimeoutError:
        raise ConnectTimeoutError(timeout) from None


_INFINITE_DATES: Final = {dt.date.min: "-infinity", dt.date.max: "infinity"}


def _literal(value: Any) -> str:
    """``value`` as an SQL literal (the values of a filter: ints, dates, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, dt.date, str)):
        raise TypeError(f"no literal for {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        raise TypeError("no literal for datetime")
    if isinstance(value, dt.date):
        # asyncpg stores the first and last dates Python has as PostgreSQL's -infinity
        # and infinity (and reads them back so): a literal must name the same values.
        if value in _INFINITE_DATES:
            return f"DATE '{_INFINITE_DATES[value]}'"
        return f"DATE '{value.isoformat()}'"
    # standard_conforming_strings (set on every connection): only ' is special.
    return "'" + value.replace("'", "''") + "'"


def _inlined(sql: str, values: Sequence[Any]) -> str | None:
    """``sql`` with ``values`` written in as literals, or None when one has no literal."""
    parts = sql.split("?")
    try:
        return parts[0] + "".join(
            _literal(v) + part for v, part in zip(values, parts[1:], strict=True)
        )
    except TypeError:
        return None


# A statement whose best plan depends on its values: a search's pattern (how many rows
# it matches), a date or price bound of its filter (how wide the range is). A keyset's
# conditions are not (``query._keyset_sql``: its lead, the same text, is followed by its
# alternatives in parentheses, which compare strictly): a cursor page keeps its prepared
# plan, as a detail read does.
_VALUE_PLANNED: Final = re.compile(
    r"ILIKE \?|(?:price_cents|published_date)(?: \+ 0)? [<>]= \?(?! AND \()"
)


@functools.lru_cache(maxsize=1024)
def _planned_by_values(sql: str) -> bool:
    return _VALUE_PLANNED.search(sql) is not None


@functools.lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}")
        out.append(part)
    return "".join(out)


class PostgresBackend(Backend):
    name = "postgres"
    # The author side through the distinct authors (migration 0006): their trigram index
    # finds the few that hold the text, the author indexes their books.
    search_sql = (
        "(title ILIKE ? ESCAPE '\\' OR author = ANY (ARRAY("
        "SELECT author FROM book_author_count WHERE author ILIKE ? ESCAPE '\\')))"
    )
    # One or two characters: no trigram, no index; each row's author is tested itself
    # (a runtime array is not hashed: each row would be compared with every author that
    # holds the letter).
    short_search_sql = "(title ILIKE ? ESCAPE '\\' OR author ILIKE ? ESCAPE '\\')"
    values_row = "(?, ?, ?::date, ?::integer, 1)"
    sample_sql = _SAMPLE

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
        """Tortoise's asyncpg pool for ``url``: each connection opened within
        ``connect_timeout`` seconds (``connect``). With a statement time limit (a server's
        pool), each statement's answer is awaited at most ``statement_timeout +
        connect_timeout`` seconds (asyncpg's ``command_timeout``): PostgreSQL stops a
        statement at ``statement_timeout`` itself, but a server that stops answering
        (frozen, a network that drops packets) never says so. Past it asyncpg asks the
        server to cancel the statement, waits for that as long again at most (the pool
        takes the connection back only then) and closes the connection when it cannot,
        then raises TimeoutError: a request learns within twice the bound. (``synchronous``
        is SQLite's: PostgreSQL commits durably, synchronous_commit=on.)"""
        parts = urlsplit(url)
        credentials: dict[str, Any] = {
            "host": unquote(parts.hostname or "127.0.0.1"),
            "port": parts.port or 5432,
            "user": unquote(parts.username or "postgres"),
            "password": unquote(parts.password or ""),
            "database": unquote(parts.path.lstrip("/")) or "postgres",
            "minsize": pool_min,
            "maxsize": pool_max,
            "connect": connect,
            "timeout": connect_timeout,
        }
        # Query parameters pass through: ?schema=NAME (Tortoise sets the search_path),
        # ?ssl=require, ?host=/run/postgresql, ... libpq's sslmode is asyncpg's ssl.
        query_params = dict(parse_qsl(parts.query))
        if "sslmode" in query_params:
            query_params["ssl"] = query_params.pop("sslmode")
        credentials.update(query_params)
        # No JIT compilation: it is for long analytical queries. The planner's row guess
        # for the count's sample (a generic plan of 100 primary-key range scans) was
        # large enough to compile it, 290 ms for a statement that runs in 3.
        # Values are written into some statements as literals (``PostgresBackend.fetch``),
        # quoted for standard-conforming strings.
        settings = {"jit": "off", "standard_conforming_strings": "on"}
        if statement_timeout is not None:  # on every connection of the pool
            milliseconds = max(1, round(statement_timeout * 1000))
            settings["statement_timeout"] = str(milliseconds)
            credentials["command_timeout"] = statement_timeout + connect_timeout
        credentials["server_settings"] = settings
        return {"engine": "tortoise.backends.asyncpg", "credentials": credentials}

    @classmethod
    @contextlib.asynccontextmanager
    async def migration_lock(cls, url: str, connection: dict[str, Any]) -> AsyncIterator[None]:
        """Hold a session-level advisory lock on a connection of its own for the whole run.

        Not on a connection of Tortoise's pool: Tortoise's migrate() re-initialises
        Tortoise, which closes that pool, so the lock would be dropped mid-migration (and
        the pool's close would wait 10 s for the borrowed connection). A lock held by a
        crashed process is freed by PostgreSQL when its connection ends.

        The schema the URL names (``?schema=NAME``) is created under the lock if absent:
        PostgreSQL does not create one on first use.
        """
        credentials = connection["credentials"]
        options = {k: v for k, v in credentials.items() if k not in _TORTOISE_ONLY}
        conn = await connect(**options)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                if credentials.get("schema"):
                    quoted = str(credentials["schema"]).replace('"', '""')
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{quoted}"')
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        finally:
            await conn.close()

    def date_param(self, value: dt.date) -> Any:
        return value  # a DATE column takes a date

    async def fetch(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        """Rows of one statement. A statement whose best plan depends on its values
        (``_VALUE_PLANNED``) is sent with its values written in: asyncpg prepares each
        statement once, and after five runs PostgreSQL may keep a generic plan made
        without the values. One such plan for an author's name within a price range
        walked the covering price index over 40% of ten million rows (5 s) where the
        values' own plan reads the author's books (3 ms)."""
        text = None
        if values and _planned_by_values(sql):
            text = _inlined(sql, values)  # (a ? in a value is text: not numbered)
        if text is None:
            text = _numbered(sql)
        else:
            values = ()
        client = self._client()
        try:
            # Tortoise's asyncpg execute_query drops the rows of INSERT/UPDATE … RETURNING.
            call = client.execute_query_dict(text, list(values))
            # A statement that finds no pool makes Tortoise open it. Cancelled halfway (a
            # client hanging up cancels its request), that opening left a pool that
            # answered nothing, ever: such a statement is shielded.
            if not is_open(client):
                call = asyncio.shield(call)
            return await call
        except asyncpg.QueryCanceledError as exc:  # statement_timeout (set on the pool)
            raise StatementTimeoutError(self.statement_timeout) from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool for a write. Failing to get one (the server refuses or
        does not answer the connection) sent nothing: DatabaseUnavailableError."""
        client = self._client()
        if not is_open(client):
            await self.ping()  # opens the pool, shielded (``fetch``)
        holder = client.acquire_connection()
        try:
            conn = await holder.__aenter__()
        except (*_UNAVAILABLE, TimeoutError) as exc:  # (a connect timeout, too)
            raise DatabaseUnavailableError(str(exc)) from exc
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):  # a broken connection is dropped
                await holder.__aexit__(None, None, None)

    async def write(self, sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
        """One writing statement, autocommitted. An error the server sent means it stored
        nothing; the connection lost (or timed out) once the statement was sent means it
        may have: OutcomeUnknownError."""
        async with self._writing() as conn:
            try:
                return await conn.fetch(_numbered(sql), *values)
            except _ANSWER_LOST as exc:
                raise OutcomeUnknownError(_one_line(exc)) from exc
            except asyncpg.QueryCanceledError as exc:
                raise StatementTimeoutError(self.statement_timeout) from exc
            except _UNAVAILABLE as exc:
                raise DatabaseUnavailableError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[Fetch]:
        """A transaction on one pooled connection. Before its COMMIT, any failure stores
        nothing (the server rolls back a transaction whose connection ends); the COMMIT
        sent and its answer lost: OutcomeUnknownError."""
        async with self._writing() as conn:
            transaction = conn.transaction()

            async def run(sql: str, values: Sequence[Any] = ()) -> Sequence[Row]:
                try:
                    return await conn.fetch(_numbered(sql), *values)
                except asyncpg.QueryCanceledError as exc:
                    raise StatementTimeoutError(self.statement_timeout) from exc
                except (*_UNAVAILABLE, *_ANSWER_LOST) as exc:
                    raise DatabaseUnavailableError(str(exc)) from exc

            try:
                await transaction.start()
            except (*_UNAVAILABLE, *_ANSWER_LOST) as exc:
                raise DatabaseUnavailableError(str(exc)) from exc
            try:
                yield run
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except _ANSWER_LOST as exc:
                raise OutcomeUnknownError(_one_line(exc)) from exc
            except _UNAVAILABLE as exc:
                raise DatabaseUnavailableError(str(exc)) from exc

    async def hold_key(self, fetch: Fetch, once: idempotency.Once) -> bool:
        """A transaction-level advisory lock of the key, tried without waiting: a request
        with the key still in flight (its transaction open) holds it."""
        key = idempotency.lock_key(once)
        rows = await fetch("SELECT pg_try_advisory_xact_lock(?) AS held", [key])
        return bool(rows[0]["held"])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._costly_turn = asyncio.Semaphore(1)
        self._guesses: Kept[int] = Kept(KEPT_SECONDS)  # search -> its sample's estimate

    async def _costly(self, sql: str, values: Sequence[Any]) -> Sequence[Row]:
        """Rows of a statement planned to read many rows (past ASIDE_FROM), run one at a
        time per worker.

        Eight clients of an expensive search took the database's CPU from every other
        request at ten million rows (detail reads kept 13% of their throughput): the
        pool let each run at once. One at a time, as SQLite's second connection runs
        them, the cheap statements keep a core. The wait for a turn is bounded by the
        statement time limit as the statement is: past it, StatementTimeoutError, as for
        a statement stopped. (``asyncio.timeout``, not ``wait_for``: on Python 3.11
        ``wait_for`` can swallow the cancellation of a request whose client left just as
        its turn came, and run its statement for no one.)
        """
        try:
            async with asyncio.timeout(self.statement_timeout):
                await self._costly_turn.acquire()
        except TimeoutError:
            raise StatementTimeoutError(self.statement_timeout) from None
        try:
            return await self.fetch(sql, values)
        finally:
            self._costly_turn.release()

    async def _count(
        self, q: PageQuery, clauses: list[str], values: list[Any], source: str = "book"
    ) -> tuple[int, bool]:
        """Estimated first, counted only when the estimate says the matches are few.

        PostgreSQL has no work budget for a statement short of its time limit: the
        bounded count read up to COUNT_SCAN_LIMIT + 1 matches however many rows it took
        to find them (a two-character search of 0.4% of ten million rows: the table).
        The estimate is the planner's own row estimate for a filter without a search
        (its statistics of value ranges: within 6% for a year within a price range at
        ten million rows) and the sample's for a search (``estimate_count``). Past
        twice COUNT_SCAN_LIMIT the estimate is the answer, as it is for a search of one
        or two characters, which no index finds, in a table of more than SCAN_UP_TO
        rows; below, the matches are counted as before, exactly up to COUNT_SCAN_LIMIT.
        A search's estimate is kept KEPT_SECONDS for the next count of it: when the count
        is exact, no estimate is kept for the list's ``count``, and the sample cost as much
        as the count itself (an author's name at ten million rows: 13 and 12 ms).
        """
        flt = q.filter
        if flt.is_empty() or flt.is_author_only() or q.exact_count:
            return await super()._count(q, clauses, values, source)
        where = " AND ".join(clauses)
        if flt.search:
            kept = self._guesses.get(flt)
            if kept is None:
                guess, exact = await self.estimate_count(where, values)
                if not exact:
                    self._guesses.put(flt, guess)
            else:
                guess, exact = kept, False
        else:
            guess, exact = await self._planned_rows(where, values), False
        if exact or guess > 2 * COUNT_SCAN_LIMIT:
            return guess, exact
        if flt.search and len(flt.search) < 3 and await self.total_rows() > SCAN_UP_TO:
            # No trigram to look up: counting would read the table.
            return guess, False
        # A search's match found through the trigram index is a look-up of the table.
        costly = bool(flt.search) and guess * SORTED_ROW_COST > ASIDE_FROM
        fetch = self._costly if costly else self.fetch
        if flt.search and len(flt.search) >= 3 and flt.parts() == (flt,):
            # A search alone: its author side counted from the kept counts of the authors
            # that hold the text, its title side (of other authors' books) bounded.
            rows = await fetch(_SEARCH_COUNT, [*values, values[0], COUNT_SCAN_LIMIT + 1])
            authors, titles = int(rows[0]["authors"]), int(rows[0]["titles"])
            if titles <= COUNT_SCAN_LIMIT:
                return authors + titles, True
            return max(authors + titles, guess), False
        if await self._search_led(flt):
            where = " AND ".join(self.where(flt, unindexed=True)[0])
        rows = await fetch(
            BOUNDED_COUNT.format(source=source, where=where), [*values, COUNT_SCAN_LIMIT + 1]
        )
        n = int(rows[0]["n"])
        if n <= COUNT_SCAN_LIMIT:
            return n, True
        return max(n, guess), False

    async def _sorts(self, q: PageQuery, count: int | None) -> tuple[bool, float]:
        """Whether the page must find its matches through its filter's index and sort
        them (``query.page_sql``'s ``sort``) rather than let the planner walk the
        ordering's index; and the rows the page will read, in index entries, where this
        can tell (a search's), else 0.

        The planner walked the ordering's index for a rare search ordered by anything,
        fetching from the table every row it passed: some 86,000 for a page at ten
        million rows, seconds, stopped at the statement time limit. It counts on the
        matches being common, and its estimate of a search's matches is a guess. So a
        search's matches are sorted when sorting its M matches (16 index entries' work
        each, the rows being fetched from the table) costs less than a walk of
        (offset + limit + 1) * T / M. An author's books are found in any order through
        the ``(author, field, id)`` indexes (migration 0005), and ranges through the
        planner's statistics of them: the planner's choice serves them.
        """
        flt = q.filter
        if flt.author is not None or not flt.search:
            return False, 0.0
        matches = await self.planned(flt, count)
        total = await self.total_rows()
        walk = (q.offset + q.limit + 1) * total / max(matches, 1)
        if len(flt.search) < 3:  # no index finds them: the walk it is
            return False, walk
        sort = matches * SORTED_ROW_COST
        if q.ordering[0][0] == "author" and matches <= 2 * COUNT_SCAN_LIMIT:
            # The walk's cost takes the matches to be spread over the ordering, but a
            # search's author side is all of one or a few authors, bunched in the author
            # index: an author's name ordered by -author walked half of ten million rows
            # to reach them (past the statement time limit).
            return True, sort
        return sort < walk, min(sort, walk)

    async def _search_led(self, flt: BookFilter) -> bool:
        """Whether ``flt``'s matches are found through its search's indexes (the trigram
        index of titles, the authors') rather than through a date or price range's: when
        the search alone matches fewer rows than each range (their counts for plans,
        ``planned``). The planner costs a test of a pattern as any other operator's: it
        took an author's name within a year at ten million rows through the year's
        covering index, testing the name on 80,000 entries (30 ms), where the author's
        2,400 books hold the 27 matches. Its ranges are then written so that no index of
        theirs serves them (``query.where``'s ``unindexed``)."""
        if not flt.search or len(flt.search) < 3 or flt.author is not None:
            return False
        ranges = [part for part in flt.parts() if not part.search]
        if not ranges:
            return False
        searched = await self.planned(BookFilter(search=flt.search))
        if searched > 2 * COUNT_SCAN_LIMIT:
            return False
        return all([searched <= await self.planned(part) for part in ranges])

    async def _planned_rows(self, where: str, values: Sequence[Any]) -> int:
        """The planner's estimate of the rows ``where`` matches. The values are written
        into the statement: a prepared statement run often enough gets a generic plan,
        whose estimates do not look at the values."""
        text = _inlined(where, values)
        if text is None:
            raise TypeError(f"a value of {where!r} has no literal")
        rows = await self.fetch(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM book WHERE {text}")
        plan = rows[0]["QUERY PLAN"]
        doc = orjson.loads(plan) if isinstance(plan, str) else plan
        return int(doc[0]["Plan"]["Plan Rows"])

    async def book_json(self, book_id: int) -> BookJSON:
        return self._saved(await self._book_row(book_id))

    async def list_books(self, q: PageQuery) -> Page:
        clauses, values = self.where(q.filter)
        count, exact = await self.count(q, clauses, values) if q.with_count else (None, True)
        if count == 0 and exact:  # nothing to read again for the page
            return Page(json=b"[]", count=0, has_more=False)
        params = list(values)
        if q.after is not None:
            params += query.keyset_values(q.after, q.ordering, self.date_param)
        sort, cost = await self._sorts(q, count)
        if sort and await self._search_led(q.filter):
            clauses = self.where(q.filter, unindexed=True)[0]
        statement = query.page_sql(
            schema.COLUMNS,
            "book",
            "id",
            tuple(clauses),
            q.ordering,
            q.backwards,
            q.after is not None,
            sort=sort,
        )
        fetch = self._costly if cost > ASIDE_FROM else self.fetch
        rows = list(await fetch(statement, [*params, q.limit + 1, q.offset]))
        return self._rows_page(rows, q, count, exact)

    async def bulk_load(
        self,
        count: int,
        replace: bool,
        batch_size: int,
        rows: RowBatches,
        progress: Progress | None,
    ) -> tuple[int, int]:
        client = self._client()
        async with client.acquire_connection() as raw, raw.transaction():
            # The pool's statement_timeout is for requests, not for a seed.
            await raw.execute("SET LOCAL statement_timeout = 0")
            # Writers wait for the seed rather than taking ids from under it.
            await raw.execute("LOCK TABLE book IN SHARE ROW EXCLUSIVE MODE")
            if replace:
                # TRUNCATE fires no row or statement DELETE trigger: reset the counts.
                await raw.execute("TRUNCATE book RESTART IDENTITY")
                await raw.execute("UPDATE book_count SET n = 0 WHERE id = 1")
                await raw.execute("DELETE FROM book_author_count")
            first = int(await raw.fetchval("SELECT coalesce(max(id), 0) FROM book")) + 1
            indexes: list[str] = []
            if replace:
                # An emptied table: its secondary indexes are built once the rows are in,
                # each one sort, rather than kept up to date row by row (the trigram
                # indexes most of all). TRUNCATE holds the table from readers until the
                # commit already; into a table that was empty without it, readers keep
                # reading (an empty table) and the indexes are kept up to date.
                await raw.execute("SET LOCAL maintenance_work_mem = '256MB'")
                found = await raw.fetch(_SECONDARY_INDEXES)
                for row in found:
                    await raw.execute(f'DROP INDEX "{row["name"]}"')
                indexes = [row["sql"] for row in found]
            done = 0
            while done < count:
                size = min(batch_size, count - done)
                records = [(*r, 1) for r in rows(first + done, size, False)]
                await raw.copy_records_to_table("book", records=records, columns=_COLUMNS)
                done += size
                if progress:
                    progress(done, count)
            for statement in indexes:
                await raw.execute(statement)
            await raw.execute(
                "SELECT setval(pg_get_serial_sequence('book', 'id'), "
                "(SELECT coalesce(max(id), 1) FROM book), (SELECT count(*) > 0 FROM book))"
            )
            total = int(await raw.fetchval("SELECT count(*) FROM book"))
            # Statistics now, not when autovacuum gets to it: planned without them, a
            # bounded count of a narrow price range read the whole table in id order.
            await raw.execute("ANALYZE book")
        try:
            async with client.acquire_connection() as raw:
                await raw.execute("SET statement_timeout = 0")  # reset when it is released
                # The loaded pages marked all-visible: a walk of a covering index (migration
                # 0008) is then an index-only scan, not a fetch from the table per row, from
                # the first request rather than whenever autovacuum comes to the table.
                await raw.execute("VACUUM book")
                # Each batch's statement trigger upserted every author's count: a dead row
                # per author per batch (41 MB for 4,096 authors at ten million rows), which
                # every search's look-up of the authors read through.
                await raw.execute("VACUUM (ANALYZE) book_author_count")
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:  # the seed is committed
            _log.warning("seed: VACUUM after the load failed: %s; autovacuum will", exc)
        return first, total
