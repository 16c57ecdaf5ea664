"""A book's fields: the one definition its API form, both backends' renderings, the list
orderings and the keyset positions of cursors are made from.

A field has an API name, a column of the ``book`` table and a kind. Each backend renders
each kind its own way (``db.sqlite`` in SQL with ``json_object``, ``db.postgres`` in
Python with ``render``); a new field is one line here, one migration, and the kind's
rendering if the kind is new.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

# Integer columns (ids, cents, versions) are 32-bit on both backends (int4 on PostgreSQL;
# asyncpg refuses a larger parameter).
INT_MAX: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # in the API's JSON and query parameters
    column: str  # of table ``book``
    kind: str  # "int", "text", "date" or "cents" (a price: whole cents stored, "12.50" shown)


FIELDS: Final = (
    Field("id", "id", "int"),
    Field("title", "title", "text"),
    Field("author", "author", "text"),
    Field("published_date", "published_date", "date"),
    Field("price", "price_cents", "cents"),
)
BY_NAME: Final = {f.name: f for f in FIELDS}
NAMES: Final = tuple(f.name for f in FIELDS)
WRITABLE: Final = tuple(f.name for f in FIELDS if f.name != "id")
# Every field orders a list (each has an index with the id, migration 0002).
ORDERABLE: Final = NAMES
# The columns a write returns and a backend renders a book from.
COLUMNS: Final = ", ".join([*(f.column for f in FIELDS), "version"])

_DATE_RE: Final = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_CENTS: Final = tuple(f"{n:02d}" for n in range(100))


def parse_date(value: Any) -> dt.date | None:
    """A calendar date from ``YYYY-MM-DD`` text (surrounding blanks allowed), else None."""
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(value.strip())
    if not match:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def price_text(cents: int) -> str:
    return f"{cents // 100}.{_CENTS[cents % 100]}"  # a third of the time of ``:02d``


def _iso(value: Any) -> str:
    # A date column reads as ISO text on SQLite (Tortoise stores it so) and as a date on
    # PostgreSQL.
    return value if isinstance(value, str) else value.isoformat()


def _same(value: Any) -> Any:
    return value


_TO_JSON: Final[dict[str, Callable[[Any], Any]]] = {
    "int": _same,
    "text": _same,
    "date": _iso,
    "cents": price_text,
}


@functools.lru_cache(maxsize=64)
def renderer(names: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    """A function from a row (indexable by column) to the JSON form of the ``names`` fields."""
    parts = [(name, BY_NAME[name].column, _TO_JSON[BY_NAME[name].kind]) for name in names]
    if names == NAMES:
        # Every field: the shape of every write's answer and every detail read.
        def full(row: Any) -> dict[str, Any]:
            return {
                "id": row["id"],
                "title": row["title"],
                "author": row["author"],
                "published_date": _iso(row["published_date"]),
                "price": price_text(row["price_cents"]),
            }

        return full

    def some(row: Any) -> dict[str, Any]:
        return {name: convert(row[column]) for name, column, convert in parts}

    return some


render = renderer(NAMES)


def position_value(name: str, value: Any) -> Any:
    """A cursor's keyset value for the field ``name``, checked; None when it cannot be one.

    Positions are what ``Page.first`` and ``Page.last`` hold: ints for ints and cents, text
    for text, ISO text for dates. A date comes back as a ``datetime.date``.
    """
    kind = BY_NAME[name].kind
    if kind in ("int", "cents"):
        return value if type(value) is int and abs(value) <= INT_MAX else None
    if kind == "text":
        return value if isinstance(value, str) and "\x00" not in value else None
    return parse_date(value)


def clamp_int(value: int) -> int:
    """``value`` within the 32-bit range of the integer columns: a bound past every stored
    value keeps its meaning (asyncpg refuses a larger parameter)."""
    return max(-INT_MAX, min(INT_MAX, value))
