"""Deterministic bulk rows for benchmarks and demos (``python main.py seed --count N``).

The content of a row is a pure function of ``(seed, id)``: book 4711 is the same book in
every database seeded with the same seed, whatever the batch size or the rows around it,
so a benchmark can name an author or a search term that is known to exist.

Rows are written by the backend's bulk loader (``Backend.bulk_load``) in one transaction:
- SQLite: ``executemany`` in batches. The triggers that keep ``book_search`` (FTS5) and
  ``book_count`` in step cost a trigram tokenisation and a counter update per row, which
  triples the time of a large seed; the known ones are dropped inside the transaction,
  the two tables are brought up to date with one statement each, and the triggers are
  created again from their own stored SQL before the commit. Other triggers on ``book``
  are left alone. A failure rolls all of it back.
- PostgreSQL: ``COPY`` through asyncpg; the statement-level triggers of ``book_count``
  fire for a ``COPY`` as for an ``INSERT``, and the id sequence is moved past the new ids.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from db.backend import Backend, Progress
from db.seed_words import ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, SEARCH_TERMS

__all__ = ["DEFAULT_SEED", "SEARCH_TERMS", "SeedReport", "author_name", "book_for", "seed_books"]

DEFAULT_SEED: Final = 1
DEFAULT_BATCH: Final = 50_000
_MASK: Final = (1 << 64) - 1
_FIRST_DAY: Final = dt.date(1900, 1, 1).toordinal()
_DAYS: Final = dt.date(2024, 12, 31).toordinal() - _FIRST_DAY + 1
_MIN_CENTS: Final = 100  # 1.00
_CENTS_RANGE: Final = 99_999 - _MIN_CENTS + 1  # up to 999.99, the contract's maximum


def _mix(x: int) -> int:
    """splitmix64's finaliser: 64 well-spread bits from any integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _title(h: int) -> str:
    adj, noun, other = ADJECTIVES[h & 63], NOUNS[(h >> 6) & 63], NOUNS[(h >> 12) & 63]
    pattern = (h >> 18) & 3
    if pattern == 0:
        return f"The {adj} {noun}"
    if pattern == 1:
        return f"{noun} of the {adj} {other}"
    if pattern == 2:
        return f"The {noun} and the {other}"
    return f"{adj} {noun}s"


def author_name(index: int) -> str:
    """The author number ``index`` (0..4095) of the seeded population."""
    return f"{FIRST_NAMES[index & 63]} {LAST_NAMES[(index >> 6) & 63]}"


def book_for(book_id: int, *, seed: int = DEFAULT_SEED) -> tuple[str, str, dt.date, int]:
    """(title, author, published_date, price_cents) of the seeded book ``book_id``."""
    h = _mix((seed << 32) ^ book_id)
    g = _mix(h)
    day = dt.date.fromordinal(_FIRST_DAY + g % _DAYS)
    return _title(h), author_name((h >> 20) & 4095), day, _MIN_CENTS + (g >> 20) % _CENTS_RANGE


def _rows(first_id: int, count: int, seed: int, dates: list[Any]) -> Iterator[tuple[Any, ...]]:
    # book_for() inlined, with precomputed dates: about 1.5 µs a row.
    mix, title, author = _mix, _title, author_name
    base = seed << 32
    for book_id in range(first_id, first_id + count):
        h = mix(base ^ book_id)
        g = mix(h)
        yield (
            book_id,
            title(h),
            author((h >> 20) & 4095),
            dates[g % _DAYS],
            _MIN_CENTS + (g >> 20) % _CENTS_RANGE,
        )


def _dates(as_text: bool) -> list[Any]:
    days = [dt.date.fromordinal(_FIRST_DAY + i) for i in range(_DAYS)]
    return [d.isoformat() for d in days] if as_text else days


@dataclass(frozen=True)
class SeedReport:
    inserted: int
    first_id: int
    last_id: int
    total: int  # rows in the table afterwards
    seconds: float


async def seed_books(
    backend: Backend,
    *,
    count: int,
    seed: int = DEFAULT_SEED,
    replace: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> SeedReport:
    """Insert ``count`` seeded books after the highest id (all of them, or none).

    With ``replace`` the table is emptied first, so the ids are exactly 1..count.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    started = time.perf_counter()
    dates: dict[bool, list[Any]] = {}

    def rows(first_id: int, n: int, as_text: bool) -> Iterator[tuple[Any, ...]]:
        if as_text not in dates:
            dates[as_text] = _dates(as_text)
        return _rows(first_id, n, seed, dates[as_text])

    first, total = await backend.bulk_load(count, replace, batch_size, rows, progress)
    return SeedReport(count, first, first + count - 1, total, time.perf_counter() - started)
