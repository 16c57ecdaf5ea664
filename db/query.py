"""What a list request asks of the data layer, what comes back, and the SQL both backends
share: filters, keyset conditions and a page's statement, written with ``?`` placeholders
and API field names mapped to columns here (``db.schema``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from db.schema import BY_NAME, NAMES, clamp_int


@dataclass(frozen=True)
class BookFilter:
    author: str | None = None
    search: str | None = None
    published_after: dt.date | None = None
    published_before: dt.date | None = None
    # Price bounds in whole cents (any size: bounds past every price are clamped here).
    min_cents: int | None = None
    max_cents: int | None = None

    def is_empty(self) -> bool:
        return self is NO_FILTER or self == NO_FILTER  # parse_filter's usual answer first

    def narrows(self, field: str) -> bool:
        """Whether a filter bounds ``field`` (so the field's index finds the matches)."""
        if field == "author":
            return self.author is not None
        if field == "published_date":
            return self.published_after is not None or self.published_before is not None
        if field == "price":
            return self.min_cents is not None or self.max_cents is not None
        return False

    def parts(self) -> tuple[BookFilter, ...]:
        """The filter split by field: each part has its own index (a search's is the
        trigram index), and a date or price range keeps both its bounds."""
        out = []
        if self.author is not None:
            out.append(BookFilter(author=self.author))
        if self.search:
            out.append(BookFilter(search=self.search))
        if self.narrows("published_date"):
            out.append(
                BookFilter(
                    published_after=self.published_after, published_before=self.published_before
                )
            )
        if self.narrows("price"):
            out.append(BookFilter(min_cents=self.min_cents, max_cents=self.max_cents))
        return tuple(out)

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
Ordering = tuple[tuple[str, bool], ...]  # (field name, descending) pairs, ending with "id"


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# three times the cost, on every list request. Nothing changes them once made.
@dataclass(slots=True)
class PageQuery:
    filter: BookFilter = NO_FILTER
    ordering: Ordering = (("id", False),)
    limit: int = 20
    offset: int = 0
    # A keyset position: one value per ordering pair (``schema.position_value``'s). None
    # means "from the start".
    after: tuple[Any, ...] | None = None
    backwards: bool = False
    with_count: bool = True
    # ``Prefer: count=exact``: count every match, however many (up to the statement time
    # limit), rather than estimate above ``db.backend.COUNT_EXACT_UP_TO``.
    exact_count: bool = False
    # The fields of each book's JSON form, in ``schema.NAMES`` order.
    fields: tuple[str, ...] = NAMES


@dataclass(slots=True)
class Page:
    # The page's books as one JSON array, in page order, each with ``PageQuery.fields``.
    json: str | bytes
    count: int | None
    has_more: bool  # more rows past this page in the direction of travel
    # The ordering's values of the page's first and last books (keyset positions, as a
    # cursor carries them: dates as ISO text); None on an empty page.
    first: list[Any] | None = None
    last: list[Any] | None = None
    count_exact: bool = True  # False: ``count`` is an estimate


@dataclass(slots=True)
class BookJSON:
    """One book as the API gives it: its JSON form (every field) and its version."""

    id: int
    version: int
    json: bytes


@dataclass(frozen=True)
class BookValues:
    """A new book's fields (``schema.WRITABLE``); the price in whole cents."""

    title: str
    author: str
    published_date: dt.date
    price: int


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(
    flt: BookFilter,
    search_sql: str,
    date_param: Callable[[dt.date], Any],
    short_search_sql: str | None = None,
    unindexed: bool = False,
) -> tuple[list[str], list[Any]]:
    """The conditions of ``flt`` and their values; ``search_sql``: the backend's condition
    of a search (a title, then an author, holds the ``?`` pattern, case-insensitively),
    ``short_search_sql`` its condition for a search of one or two characters if another,
    ``date_param``: how it takes a date. ``unindexed``: date and price bounds written as
    ``column + 0``, which no index serves (the same rows)."""
    date_col = "published_date + 0" if unindexed else "published_date"
    price_col = "price_cents + 0" if unindexed else "price_cents"
    clauses: list[str] = []
    values: list[Any] = []
    if flt.author is not None:
        clauses.append("author = ?")
        values.append(flt.author)
    if flt.search:
        pattern = f"%{escape_like(flt.search)}%"
        short = short_search_sql is not None and len(flt.search) < 3
        clauses.append(short_search_sql if short else search_sql)
        values += [pattern, pattern]
    if flt.published_after is not None:
        clauses.append(f"{date_col} >= ?")
        values.append(date_param(flt.published_after))
    if flt.published_before is not None:
        clauses.append(f"{date_col} <= ?")
        values.append(date_param(flt.published_before))
    if flt.min_cents is not None:
        clauses.append(f"{price_col} >= ?")
        values.append(clamp_int(flt.min_cents))
    if flt.max_cents is not None:
        clauses.append(f"{price_col} <= ?")
        values.append(clamp_int(flt.max_cents))
    return clauses, values


@functools.lru_cache(maxsize=64)
def columns(ordering: Ordering, id_column: str = "id") -> tuple[str, ...]:
    """The columns of ``ordering``'s fields (the id's as ``id_column``)."""
    return tuple(id_column if name == "id" else BY_NAME[name].column for name, _ in ordering)


@functools.lru_cache(maxsize=64)
def _keyset_sql(ordering: Ordering, backwards: bool, id_column: str) -> str:
    """Rows strictly past a keyset position in the page's direction (``keyset_values``).

    ``(a > x) OR (a = x AND id > y)``, led by ``a >= x`` so the planner can seek the
    ``(a, id)`` index: the cost of a page does not grow with its depth.
    """
    ors: list[str] = []
    names = columns(ordering, id_column)
    for i, (_, desc) in enumerate(ordering):
        op = "<" if desc != backwards else ">"
        ands = [f"{c} = ?" for c in names[:i]] + [f"{names[i]} {op} ?"]
        ors.append("(" + " AND ".join(ands) + ")")
    first_desc = ordering[0][1]
    lead = f"{names[0]} {'<=' if first_desc != backwards else '>='} ?"
    return f"{lead} AND ({' OR '.join(ors)})"


def keyset_values(
    after: Sequence[Any], ordering: Ordering, date_param: Callable[[dt.date], Any]
) -> list[Any]:
    """The values of ``_keyset_sql``'s placeholders for the position ``after``."""
    if any(isinstance(v, dt.date) for v in after):
        after = [date_param(v) if isinstance(v, dt.date) else v for v in after]
    values = [after[0]]
    for i in range(len(after)):
        values += after[: i + 1]
    return values


def _unindexed(column: str, name: str) -> str:
    if name != "id" and BY_NAME[name].kind == "text":
        return f"({column} || '')"
    return f"({column} + 0)"


@functools.lru_cache(maxsize=256)
def page_sql(
    select: str,
    source: str,
    id_column: str,
    clauses: tuple[str, ...],
    ordering: Ordering,
    backwards: bool,
    keyset: bool,
    sort: bool = False,
) -> str:
    """A page's statement: one text per shape of page, made once. ``sort``: order by
    expressions of the columns (``x + 0``, ``x || ''``: the same order) that no index
    serves, so the planner finds the rows through the filter's index and sorts them."""
    if keyset:
        clauses = (*clauses, _keyset_sql(ordering, backwards, id_column))
    order = ", ".join(
        f"{_unindexed(column, name) if sort else column} {'DESC' if desc != backwards else 'ASC'}"
        for column, (name, desc) in zip(columns(ordering, id_column), ordering, strict=True)
    )
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {select} FROM {source}{where_sql} ORDER BY {order} LIMIT ? OFFSET ?"
