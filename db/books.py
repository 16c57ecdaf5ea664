"""Queries on books: a keyset/offset page with filters, one row, and writes.

Every function is one statement (or two on a miss, to tell 401 from 404 from 412), so a
write is atomic without an explicit transaction: the version check of a conditional write
is in the ``UPDATE``'s own ``WHERE``, which closes the race between checking a tag and
writing. A write given a token digest checks the token in that same ``WHERE``
(``tokens.ACTIVE_TOKEN``): authenticating a write costs no statement of its own.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from db import sql, tokens
from db.errors import NotFoundError, PreconditionFailedError, TokenRejectedError

COLUMNS: Final = "id, title, author, published_date, price_cents, version"
# API field -> column. Values of these columns are what a keyset cursor carries.
ORDERABLE: Final = {
    "id": "id",
    "title": "title",
    "author": "author",
    "published_date": "published_date",
    "price": "price_cents",
}
MAX_ID: Final = 2**31 - 1  # the id column is a 32-bit integer on both backends

Row = Any  # a row indexable by column name (sqlite3.Row or dict)


@dataclass(frozen=True)
class BookFilter:
    author: str | None = None
    search: str | None = None
    published_after: dt.date | None = None
    published_before: dt.date | None = None
    min_cents: int | None = None
    max_cents: int | None = None

    def is_empty(self) -> bool:
        return self is NO_FILTER or self == NO_FILTER  # parse_filter's usual answer first

    def is_author_only(self) -> bool:
        """Only ``author`` filters (a count of it is kept: ``book_author_count``)."""
        return (
            self.author is not None
            and not self.search
            and self.published_after is None
            and self.published_before is None
            and self.min_cents is None
            and self.max_cents is None
        )


NO_FILTER: Final = BookFilter()


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# three times the cost, on every list request (issue 9). Nothing changes them once made.
@dataclass(slots=True)
class PageQuery:
    filter: BookFilter = NO_FILTER
    # (column, descending) pairs, ending with the id tie-break.
    ordering: tuple[tuple[str, bool], ...] = (("id", False),)
    limit: int = 20
    offset: int = 0
    # A keyset position: one value per ordering pair. None means "from the start".
    after: tuple[Any, ...] | None = None
    backwards: bool = False
    with_count: bool = True
    # The fields of each book's JSON form (JSON_FIELDS, in that order), for the backend to
    # make it where it can (SQLite: Page.json). None: rows only.
    fields: tuple[str, ...] | None = None


@dataclass(slots=True)
class Page:
    # Every column of COLUMNS, in page order; empty when the database made the page's JSON
    # (``json``).
    rows: list[Row]
    count: int | None
    has_more: bool  # more rows past this page in the direction of travel
    # The page's results as one JSON array (a str), when the database made it; else None.
    json: str | None = None
    # The ordering's values of the page's first and last rows (keyset positions, as a
    # cursor carries them: dates as ISO text); None on an empty page.
    first: list[Any] | None = None
    last: list[Any] | None = None


def _position(row: Row, ordering: Sequence[tuple[str, bool]]) -> list[Any]:
    """The keyset position of ``row`` for ``ordering``: its values as JSON values."""
    out = []
    for col, _ in ordering:
        value = row[col]
        out.append(value if isinstance(value, (int, str)) else value.isoformat())
    return out


# A book's JSON form as the API gives it (api.serializers.to_json: the price as text with
# two places, the date as ISO text, which is how Tortoise stores a DateField on SQLite),
# made by SQLite's json_object inside the page's own statement. Building 20 dicts and
# their sqlite3.Row objects in Python was the largest share of a list page's CPU time
# above the raw baseline's (issue 9). Prices are never negative (the API refuses them).
_SQLITE_JSON: Final = {
    "id": "id",
    "title": "title",
    "author": "author",
    "published_date": "published_date",
    "price": "printf('%d.%02d', price_cents / 100, price_cents % 100)",
}
JSON_FIELDS: Final = tuple(_SQLITE_JSON)


def _json_object(fields: tuple[str, ...]) -> str:
    pairs = ", ".join(f"'{name}', {_SQLITE_JSON[name]}" for name in fields)
    return f"json_object({pairs})"


@functools.lru_cache(maxsize=64)
def _json_select(fields: tuple[str, ...], ordering: tuple[tuple[str, bool], ...]) -> str:
    keys = ", ".join(dict.fromkeys(col for col, _ in ordering))
    return f"{keys}, {_json_object(fields)} AS json"


# Separates the rows of a page gathered into one value (``_gathered``): the record
# separator, a control character, which JSON text never holds unescaped (json_object
# writes it inside a string as \u001e), so it can only stand between two rows.
_RS: Final = "\x1e"


@functools.lru_cache(maxsize=256)
def _gathered(page_sql: str, ordering: tuple[tuple[str, bool], ...]) -> str:
    """One row for a whole page (SQLite): its books' JSON forms and their keyset positions,
    each joined by ``_RS`` in the page statement's order.

    Twenty rows each came back through sqlite3 and aiosqlite's thread as a row object of
    its own, each step handing the GIL over; one row per page took an author's page at a
    million rows from 61 to 43 µs with 64 pages in flight on one aiosqlite connection, and
    its throughput through the service from 0.6-0.7 to 0.8 of a 10,000-row page's (issue 9).

    group_concat takes the rows in the order the page's ORDER BY … LIMIT subquery yields
    them: SQLite runs it as a co-routine feeding the aggregate in that order (before 3.44
    SQLite has no ORDER BY inside an aggregate). tests/test_pagination.py and
    tests/test_list_json.py walk every ordering both ways to hold it to that.
    """
    keys = ", ".join(col for col, _ in ordering)
    return (
        "SELECT group_concat(json, char(30)) AS json,"
        f" group_concat(json_array({keys}), char(30)) AS keys FROM ({page_sql})"
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# A search on SQLite reads the books through their matches in the trigram index, in id
# order (``hit`` is the book's id): a page stops at its last row instead of gathering
# every match first, which at a million rows was 7 ms a page and 30 ms a count.
_FTS_SOURCE: Final = (
    "(SELECT rowid AS hit FROM book_search WHERE book_search MATCH ?) JOIN book ON id = hit"
)
# A search's count is exact up to this many matches and estimated above it.
SEARCH_EXACT_COUNT: Final = 500


def _fts_phrase(flt: BookFilter) -> str | None:
    """The FTS5 query a search reads its candidates from on SQLite, or None.

    A quoted FTS5 phrase on the trigram index narrows the rows to candidates (three
    characters at least: a trigram). The trigram tokenizer folds the case of every Unicode
    letter, LIKE (and ILIKE under the "C" collation) only of ASCII ones: the LIKE of
    ``_where`` decides, so a search means the same at every length and on both backends.
    With an ``author`` the author's index finds the rows faster: no phrase.
    """
    search = flt.search
    if not search or len(search) < 3 or flt.author is not None or sql.is_postgres():
        return None
    return '"' + search.replace('"', '""') + '"'


def _where(flt: BookFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if flt.author is not None:
        clauses.append("author = ?")
        values.append(flt.author)
    if flt.search:
        op = "ILIKE" if sql.is_postgres() else "LIKE"
        pattern = f"%{_escape_like(flt.search)}%"
        clauses.append(f"(title {op} ? ESCAPE '\\' OR author {op} ? ESCAPE '\\')")
        values += [pattern, pattern]
    if flt.published_after is not None:
        clauses.append("published_date >= ?")
        values.append(sql.date_param(flt.published_after))
    if flt.published_before is not None:
        clauses.append("published_date <= ?")
        values.append(sql.date_param(flt.published_before))
    if flt.min_cents is not None:
        clauses.append("price_cents >= ?")
        values.append(flt.min_cents)
    if flt.max_cents is not None:
        clauses.append("price_cents <= ?")
        values.append(flt.max_cents)
    return clauses, values


@functools.lru_cache(maxsize=64)
def _keyset_sql(ordering: tuple[tuple[str, bool], ...], backwards: bool, id_column: str) -> str:
    """Rows strictly past a keyset position in the page's direction (``_keyset_values``).

    ``(a > x) OR (a = x AND id > y)``, led by ``a >= x`` so the planner can seek the
    ``(a, id)`` index: the cost of a page does not grow with its depth.
    """
    ors: list[str] = []
    names = [id_column if col == "id" else col for col, _ in ordering]
    for i, (_, desc) in enumerate(ordering):
        op = "<" if desc != backwards else ">"
        ands = [f"{c} = ?" for c in names[:i]] + [f"{names[i]} {op} ?"]
        ors.append("(" + " AND ".join(ands) + ")")
    first_desc = ordering[0][1]
    lead = f"{names[0]} {'<=' if first_desc != backwards else '>='} ?"
    return f"{lead} AND ({' OR '.join(ors)})"


def _keyset_values(after: Sequence[Any]) -> list[Any]:
    """The values of ``_keyset_sql``'s placeholders for the position ``after``."""
    values = [after[0]]
    for i in range(len(after)):
        values += after[: i + 1]
    return values


@functools.lru_cache(maxsize=256)
def _page_sql(
    select: str,
    source: str,
    id_column: str,
    clauses: tuple[str, ...],
    ordering: tuple[tuple[str, bool], ...],
    backwards: bool,
    keyset: bool,
) -> str:
    """A page's statement: one text per shape of page, made once (issue 9)."""
    if keyset:
        clauses = (*clauses, _keyset_sql(ordering, backwards, id_column))
    order = ", ".join(
        f"{id_column if col == 'id' else col} {'DESC' if desc != backwards else 'ASC'}"
        for col, desc in ordering
    )
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {select} FROM {source}{where} ORDER BY {order} LIMIT ? OFFSET ?"


async def _search_count(phrase: str, clauses: list[str], values: list[Any]) -> int:
    """The count of a search read through the trigram index (``_FTS_SOURCE``).

    Exact up to SEARCH_EXACT_COUNT matches. Above it, estimated from how far into the
    ids the first SEARCH_EXACT_COUNT + 1 matches reach, taking the matches to be spread
    evenly over the ids: counting every match of a common word costs time in proportion to
    the table. One statement either way.
    """
    over = SEARCH_EXACT_COUNT + 1
    where = " AND ".join(clauses)
    if len(clauses) == 1:  # the search's own LIKE: the index alone bounds the count
        capped = "SELECT rowid AS hit FROM book_search WHERE book_search MATCH ? ORDER BY rowid"
        capped_values = [phrase]
        exact = f"(SELECT count(*) FROM {_FTS_SOURCE} WHERE {where})"
        exact_values = [phrase, *values]
    else:
        capped = f"SELECT hit FROM {_FTS_SOURCE} WHERE {where} ORDER BY hit"
        capped_values = [phrase, *values]
        exact, exact_values = "n", []
    rows = await sql.fetch(
        f"SELECT CASE WHEN n < ? THEN {exact} END AS exact, r,"
        " (SELECT min(id) FROM book) AS lo, (SELECT max(id) FROM book) AS hi,"
        " (SELECT n FROM book_count WHERE id = 1) AS total"
        f" FROM (SELECT count(*) AS n, max(hit) AS r FROM ({capped} LIMIT ?))",
        [over, *exact_values, *capped_values, over],
    )
    row = rows[0]
    if row["exact"] is not None:
        return int(row["exact"])
    lo, hi, reached = row["lo"], row["hi"], row["r"]
    estimate = round(over * (hi - lo + 1) / (reached - lo + 1))
    return max(over, min(int(row["total"] or 0), estimate))


# An author's count is kept by triggers (migration 0003): one look-up, not a read of every
# book of the author (hundreds at a million rows).
_AUTHOR_COUNT: Final = "SELECT n FROM book_author_count WHERE author = ?"


async def list_books(q: PageQuery) -> Page:
    clauses, values = _where(q.filter)
    phrase = _fts_phrase(q.filter)
    source, id_column = (_FTS_SOURCE, "hit") if phrase else ("book", "id")
    count: int | None = None
    if q.with_count:
        if q.filter.is_empty():
            rows = await sql.fetch("SELECT n FROM book_count WHERE id = 1")
            count = int(rows[0]["n"]) if rows else 0
        elif q.filter.is_author_only():
            rows = await sql.fetch(_AUTHOR_COUNT, [q.filter.author])
            count = int(rows[0]["n"]) if rows else 0
        elif phrase:
            count = await _search_count(phrase, clauses, values)
        else:
            where = " AND ".join(clauses)
            rows = await sql.fetch(f"SELECT count(*) AS n FROM book WHERE {where}", values)
            count = int(rows[0]["n"])
    page_values = [phrase, *values] if phrase else list(values)
    if q.after is not None:
        page_values += _keyset_values(q.after)
    render = q.fields is not None and not sql.is_postgres()
    select = _json_select(q.fields, q.ordering) if render else COLUMNS
    statement = _page_sql(
        select, source, id_column, tuple(clauses), q.ordering, q.backwards, q.after is not None
    )
    params = [*page_values, q.limit + 1, q.offset]
    if render:
        return _split_page(await sql.fetch(_gathered(statement, q.ordering), params), q, count)
    rows = list(await sql.fetch(statement, params))
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    if q.backwards:
        rows.reverse()
    if not rows:
        return Page(rows=rows, count=count, has_more=has_more)
    first, last = _position(rows[0], q.ordering), _position(rows[-1], q.ordering)
    return Page(rows=rows, count=count, has_more=has_more, first=first, last=last)


def _split_page(gathered: Sequence[Row], q: PageQuery, count: int | None) -> Page:
    """The page of ``_gathered``'s one row: up to ``q.limit + 1`` rows in the order of
    travel, the last of them only there to tell whether there are more."""
    row = gathered[0]
    text, keys = row["json"], row["keys"]
    if text is None:  # no rows
        return Page(rows=[], count=count, has_more=False, json="[]")
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
    json = "[" + items + "]"
    return Page(
        rows=[],
        count=count,
        has_more=has_more,
        json=json,
        first=orjson.loads(first),
        last=orjson.loads(last),
    )


_BOOK_ROW: Final = f"SELECT {COLUMNS} FROM book WHERE id = ?"
# On SQLite a book's JSON form is made in its own statement, as a list page's is.
_BOOK_JSON: Final = (
    f"SELECT id, version, {_json_object(JSON_FIELDS)} AS json FROM book WHERE id = ?"
)


async def get_book(book_id: int, statement: str = _BOOK_ROW) -> Row:
    """The book's row (``statement``: which columns, ``_BOOK_ROW`` or ``_BOOK_JSON``)."""
    if not 0 < book_id <= MAX_ID:
        raise NotFoundError(book_id)
    rows = await sql.fetch(statement, (book_id,))
    if not rows:
        raise NotFoundError(book_id)
    return rows[0]


async def get_book_json(book_id: int) -> tuple[Row, str | None]:
    """The book and its JSON form (``JSON_FIELDS``) when the database makes it (SQLite),
    else None. The row has at least ``id`` and ``version`` (for the ETag)."""
    if sql.is_postgres():
        return await get_book(book_id), None
    row = await get_book(book_id, _BOOK_JSON)
    return row, row[2]  # json


@dataclass(frozen=True)
class BookValues:
    title: str
    author: str
    published_date: dt.date
    price_cents: int


async def create_books(items: Sequence[BookValues], *, token: str | None = None) -> list[Row]:
    """Insert all items in one statement: all of them are created, or none.

    With ``token`` (a key's digest), only if that token is active, else TokenRejectedError.
    """
    if not items:
        return []
    # PostgreSQL types the columns of a bare VALUES list from its values: say which.
    row = "(?, ?, ?::date, ?::integer, 1)" if sql.is_postgres() else "(?, ?, ?, ?, 1)"
    values: list[Any] = []
    for item in items:
        values += [item.title, item.author, sql.date_param(item.published_date), item.price_cents]
    insert = "INSERT INTO book (title, author, published_date, price_cents, version)"
    if token is None:
        statement = f"{insert} VALUES {', '.join([row] * len(items))}"
    else:
        statement = (
            f"{insert} SELECT * FROM (VALUES {', '.join([row] * len(items))}) AS v"
            f" WHERE {tokens.ACTIVE_TOKEN}"
        )
        values.append(token)
    rows = await sql.fetch(f"{statement} RETURNING {COLUMNS}", values)
    if token is not None:
        if not rows:
            raise TokenRejectedError()
        await tokens.touch(token)
    # Ids are assigned in VALUES order; RETURNING's own order is unspecified.
    return sorted(rows, key=lambda row: row["id"])


async def _check_token(token: str | None) -> None:
    if token is not None and not await tokens.digest_is_active(token):
        raise TokenRejectedError()


def _token_check(token: str | None) -> tuple[str, list[Any]]:
    return ("", []) if token is None else (f" AND {tokens.ACTIVE_TOKEN}", [token])


async def _miss(book_id: int, token: str | None) -> None:
    """Tell why a write touched no row: 401 for a token no longer active, 404, or 412 for
    a stale version."""
    await _check_token(token)
    rows = await sql.fetch("SELECT version FROM book WHERE id = ?", [book_id])
    if not rows:
        raise NotFoundError(book_id)
    raise PreconditionFailedError(book_id)


def _version_check(if_versions: Sequence[int] | None) -> tuple[str, list[Any]]:
    if if_versions is None:
        return "", []
    return f" AND version IN ({', '.join('?' * len(if_versions))})", list(if_versions)


async def update_book(
    book_id: int,
    changes: dict[str, Any],
    *,
    if_versions: Sequence[int] | None,
    token: str | None = None,
) -> Row:
    """Apply ``changes`` (column -> value) and bump the version, in one statement.

    With ``token`` (a key's digest), only if that token is active, else TokenRejectedError.
    """
    if not 0 < book_id <= MAX_ID:
        await _check_token(token)
        raise NotFoundError(book_id)
    if not changes:
        await _check_token(token)
        row = await get_book(book_id)
        if if_versions is not None and row["version"] not in if_versions:
            raise PreconditionFailedError(book_id)
        if token is not None:
            await tokens.touch(token)
        return row
    sets = [f"{col} = ?" for col in changes] + ["version = version + 1"]
    values = [sql.date_param(v) if isinstance(v, dt.date) else v for v in changes.values()]
    check, check_values = _version_check(if_versions)
    guard, guard_values = _token_check(token)
    statement = f"UPDATE book SET {', '.join(sets)} WHERE id = ?{check}{guard}"
    values += [book_id, *check_values, *guard_values]
    rows = await sql.fetch(f"{statement} RETURNING {COLUMNS}", values)
    if not rows:
        await _miss(book_id, token)
    if token is not None:
        await tokens.touch(token)
    return rows[0]


async def delete_book(
    book_id: int, *, if_versions: Sequence[int] | None, token: str | None = None
) -> None:
    """Delete the book, in one statement; ``token`` as for update_book."""
    if not 0 < book_id <= MAX_ID:
        await _check_token(token)
        raise NotFoundError(book_id)
    check, check_values = _version_check(if_versions)
    guard, guard_values = _token_check(token)
    rows = await sql.fetch(
        f"DELETE FROM book WHERE id = ?{check}{guard} RETURNING id",
        [book_id, *check_values, *guard_values],
    )
    if not rows:
        await _miss(book_id, token)
    if token is not None:
        await tokens.touch(token)
