"""A book's and a page's JSON made by SQLite itself: ``json_object`` in the statement
that reads the books, and a whole page gathered into one row (``gathered``)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Final

import orjson

from db import query, schema
from db.query import Page, PageQuery

Row = Any  # an sqlite3.Row


# Each kind of field as SQL that gives its JSON value. Prices are never negative (the API
# refuses them).
JSON_OF_KIND: Final = {
    "int": "{c}",
    "text": "{c}",
    "date": "{c}",  # stored as ISO text
    "cents": "printf('%d.%02d', {c} / 100, {c} % 100)",
}


def json_object(fields: Sequence[str]) -> str:
    pairs = ", ".join(
        f"'{name}', "
        + JSON_OF_KIND[schema.BY_NAME[name].kind].format(c=schema.BY_NAME[name].column)
        for name in fields
    )
    return f"json_object({pairs})"


@functools.lru_cache(maxsize=64)
def json_select(fields: tuple[str, ...], ordering: query.Ordering) -> str:
    keys = ", ".join(dict.fromkeys(query.columns(ordering)))
    return f"{keys}, {json_object(fields)} AS json"


# Separates the rows of a page gathered into one value (``gathered``): the record
# separator, a control character, which JSON text never holds unescaped (json_object
# writes it inside a string as \u001e), so it can only stand between two rows.
RS: Final = "\x1e"


@functools.lru_cache(maxsize=256)
def gathered(page_sql: str, ordering: query.Ordering) -> str:
    """One row for a whole page: its books' JSON forms and their keyset positions, each
    joined by ``RS`` in the page statement's order.

    Twenty rows each came back through sqlite3 and aiosqlite's thread as a row object of
    its own, each step handing the GIL over; one row per page took an author's page at a
    million rows from 61 to 43 µs with 64 pages in flight on one aiosqlite connection.

    group_concat takes the rows in the order the page's ORDER BY … LIMIT subquery yields
    them: SQLite runs it as a co-routine feeding the aggregate in that order (before 3.44
    SQLite has no ORDER BY inside an aggregate). The pagination tests walk every ordering
    both ways to hold it to that.
    """
    keys = ", ".join(query.columns(ordering))
    return (
        "SELECT group_concat(json, char(30)) AS json,"
        f" group_concat(json_array({keys}), char(30)) AS keys FROM ({page_sql})"
    )


def split_page(row: Row, q: PageQuery, count: int | None) -> Page:
    """The page of ``gathered``'s one row: up to ``q.limit + 1`` rows in the order of
    travel, the last of them only there to tell whether there are more."""
    text, keys = row["json"], row["keys"]
    if text is None:  # no rows
        return Page(json="[]", count=count, has_more=False)
    n = keys.count(RS) + 1
    has_more = n > q.limit
    if has_more:
        text, keys = text[: text.rindex(RS)], keys[: keys.rindex(RS)]
    first, last = keys.partition(RS)[0], keys.rpartition(RS)[2]
    if q.backwards:  # the rows came last first
        first, last = last, first
        items = ",".join(reversed(text.split(RS)))
    else:
        items = text.replace(RS, ",")
    return Page(
        json="[" + items + "]",
        count=count,
        has_more=has_more,
        first=orjson.loads(first),
        last=orjson.loads(last),
    )
