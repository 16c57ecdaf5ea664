"""Deterministic bulk rows for benchmarks and demos (``python main.py seed --count N``).

The content of a row is a pure function of ``(seed, id)``: book 4711 is the same book in
every database seeded with the same seed, whatever the batch size or the rows around it,
so a benchmark can name an author or a search term that is known to exist.

Rows are written through Tortoise's connection in one transaction:
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
import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from tortoise import connections

from db import sql

DEFAULT_SEED: Final = 1
DEFAULT_BATCH: Final = 50_000
_MASK: Final = (1 << 64) - 1
_FIRST_DAY: Final = dt.date(1900, 1, 1).toordinal()
_DAYS: Final = dt.date(2024, 12, 31).toordinal() - _FIRST_DAY + 1
_MIN_CENTS: Final = 100  # 1.00
_CENTS_RANGE: Final = 99_999 - _MIN_CENTS + 1  # up to 999.99, the contract's maximum

FIRST_NAMES: Final = (
    "Ada",
    "Alan",
    "Amara",
    "Anton",
    "Aria",
    "Boris",
    "Camila",
    "Chen",
    "Clara",
    "Dara",
    "Diego",
    "Elena",
    "Emil",
    "Esther",
    "Farah",
    "Felix",
    "Greta",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jonas",
    "Julia",
    "Kai",
    "Kenji",
    "Lars",
    "Leila",
    "Lena",
    "Luca",
    "Mara",
    "Mateo",
    "Mei",
    "Mila",
    "Nadia",
    "Nico",
    "Nora",
    "Olga",
    "Omar",
    "Oscar",
    "Paula",
    "Pedro",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Ruth",
    "Sami",
    "Sara",
    "Selin",
    "Simon",
    "Sofia",
    "Tariq",
    "Tess",
    "Theo",
    "Uma",
    "Vera",
    "Victor",
    "Wanda",
    "Xavier",
    "Yara",
    "Yusuf",
    "Zara",
    "Zeno",
    "Zoe",
)
LAST_NAMES: Final = (
    "Abara",
    "Bakker",
    "Berg",
    "Carvalho",
    "Castillo",
    "Chowdhury",
    "Dahl",
    "Demir",
    "Dubois",
    "Eklund",
    "Fischer",
    "Fontaine",
    "Garcia",
    "Grant",
    "Haddad",
    "Hansen",
    "Herrera",
    "Ibrahim",
    "Ivanova",
    "Jensen",
    "Kaur",
    "Kim",
    "Kowalski",
    "Kuznetsov",
    "Larsen",
    "Lindqvist",
    "Lopez",
    "Mahmoud",
    "Marsh",
    "Moreau",
    "Mwangi",
    "Nakamura",
    "Novak",
    "Nowak",
    "Okafor",
    "Olsen",
    "Ortega",
    "Park",
    "Petrov",
    "Quist",
    "Rahman",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Sousa",
    "Takahashi",
    "Tanaka",
    "Torres",
    "Umarov",
    "Varga",
    "Vasquez",
    "Wagner",
    "Walsh",
    "Weber",
    "Wong",
    "Xu",
    "Yamada",
    "Yilmaz",
    "Young",
    "Zhang",
    "Zhou",
    "Zielinski",
)
ADJECTIVES: Final = (
    "Amber",
    "Ancient",
    "Bitter",
    "Blue",
    "Brave",
    "Broken",
    "Burning",
    "Crimson",
    "Crystal",
    "Dark",
    "Distant",
    "Drowned",
    "Electric",
    "Empty",
    "Endless",
    "Fallen",
    "Forgotten",
    "Frozen",
    "Gentle",
    "Gilded",
    "Golden",
    "Hidden",
    "Hollow",
    "Iron",
    "Last",
    "Lonely",
    "Lost",
    "Midnight",
    "Northern",
    "Painted",
    "Pale",
    "Quiet",
    "Red",
    "Restless",
    "Savage",
    "Scarlet",
    "Secret",
    "Shattered",
    "Silent",
    "Silver",
    "Sleeping",
    "Small",
    "Southern",
    "Stolen",
    "Strange",
    "Sunken",
    "Tender",
    "Thin",
    "Twisted",
    "Velvet",
    "Wandering",
    "Wild",
    "Winter",
    "Wooden",
    "Yellow",
    "Young",
    "Hungry",
    "Patient",
    "Burnt",
    "Salted",
    "Glass",
    "Paper",
    "Stone",
    "Hollowed",
)
NOUNS: Final = (
    "Archive",
    "Bell",
    "Bridge",
    "Cartographer",
    "Castle",
    "City",
    "Clock",
    "Compass",
    "Crown",
    "Daughter",
    "Desert",
    "Door",
    "Dream",
    "Empire",
    "Engine",
    "Feather",
    "Field",
    "Fire",
    "Forest",
    "Garden",
    "Ghost",
    "Harbor",
    "Heart",
    "House",
    "Island",
    "Journey",
    "Key",
    "King",
    "Lantern",
    "Letter",
    "Library",
    "Lighthouse",
    "Map",
    "Mirror",
    "Moon",
    "Mountain",
    "Night",
    "Ocean",
    "Orchard",
    "Painter",
    "Queen",
    "River",
    "Road",
    "Sailor",
    "Season",
    "Shadow",
    "Ship",
    "Silence",
    "Sister",
    "Sky",
    "Song",
    "Star",
    "Storm",
    "Stranger",
    "Summer",
    "Sword",
    "Thief",
    "Tide",
    "Tower",
    "Traveler",
    "Valley",
    "Voice",
    "Wind",
    "Wolf",
)
# Substrings that occur in many titles or authors (each in roughly 1.5-3% of the rows):
# what a user types into a search box.
SEARCH_TERMS: Final = (
    "river",
    "lantern",
    "silent",
    "garden",
    "storm",
    "okafor",
    "nakamura",
    "winter",
    "mirror",
    "harbor",
    "golden",
    "lindqvist",
    "shadow",
    "orchard",
    "tower",
    "velvet",
)


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


Progress = Callable[[int, int], None]  # (rows done, rows asked)

# The triggers migration 0002 puts on ``book`` for SQLite, and what restores their work.
_SQLITE_TRIGGERS: Final = (
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
_INSERT_SQL: Final = (
    "INSERT INTO book (id, title, author, published_date, price_cents, version) "
    "VALUES (?, ?, ?, ?, ?, 1)"
)


async def seed_books(
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
    if sql.is_postgres():
        first, total = await _seed_postgres(count, seed, replace, batch_size, progress)
    else:
        first, total = await _seed_sqlite(count, seed, replace, batch_size, progress)
    return SeedReport(count, first, first + count - 1, total, time.perf_counter() - started)


async def _seed_sqlite(
    count: int, seed: int, replace: bool, batch_size: int, progress: Progress | None
) -> tuple[int, int]:
    dates = _dates(as_text=True)
    client = connections.get("default")
    _, rows = await client.execute_query("PRAGMA cache_size")
    cache_size = int(rows[0][0])
    # Four secondary indexes on random keys: with the served 16 MB page cache, a large
    # seed spills pages to the WAL over and over. Give this connection room, then restore.
    await client.execute_script(f"PRAGMA cache_size = {_SEED_CACHE_KIB}")
    try:
        return await _sqlite_transaction(count, seed, replace, batch_size, progress, dates)
    finally:
        await client.execute_script(f"PRAGMA cache_size = {cache_size}")


async def _sqlite_transaction(
    count: int,
    seed: int,
    replace: bool,
    batch_size: int,
    progress: Progress | None,
    dates: list[Any],
) -> tuple[int, int]:
    from tortoise.transactions import in_transaction

    async with in_transaction("default") as conn:
        _, rows = await conn.execute_query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'book'"
        )
        dropped = [(r["name"], r["sql"]) for r in rows if r["name"] in _SQLITE_TRIGGERS]
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
            await conn.execute_many(_INSERT_SQL, list(_rows(first + done, size, seed, dates)))
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


async def _seed_postgres(
    count: int, seed: int, replace: bool, batch_size: int, progress: Progress | None
) -> tuple[int, int]:
    dates = _dates(as_text=False)
    client = connections.get("default")
    columns = ["id", "title", "author", "published_date", "price_cents", "version"]
    async with client.acquire_connection() as raw, raw.transaction():
        # Writers wait for the seed rather than taking ids from under it.
        await raw.execute("LOCK TABLE book IN SHARE ROW EXCLUSIVE MODE")
        if replace:
            # TRUNCATE fires no row or statement DELETE trigger: reset the counter by hand.
            await raw.execute("TRUNCATE book RESTART IDENTITY")
            await raw.execute("UPDATE book_count SET n = 0 WHERE id = 1")
            await raw.execute("DELETE FROM book_author_count")
        first = int(await raw.fetchval("SELECT coalesce(max(id), 0) FROM book")) + 1
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            records = [(*r, 1) for r in _rows(first + done, size, seed, dates)]
            await raw.copy_records_to_table("book", records=records, columns=columns)
            done += size
            if progress:
                progress(done, count)
        await raw.execute(
            "SELECT setval(pg_get_serial_sequence('book', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM book), (SELECT count(*) > 0 FROM book))"
        )
        total = int(await raw.fetchval("SELECT count(*) FROM book"))
    return first, total


async def check_counts(*, thorough: bool = False) -> tuple[int, int, int | None]:
    """(rows, book_count.n, rows in the search index or None on PostgreSQL).

    ``thorough`` also has FTS5 compare its whole index with the table (seconds a million
    rows): a mismatch raises.
    """
    rows = await sql.fetch("SELECT count(*) AS n FROM book")
    counter = await sql.fetch("SELECT n FROM book_count WHERE id = 1")
    indexed: int | None = None
    if not sql.is_postgres():
        # FTS5 keeps one docsize row per indexed document.
        docs = await sql.fetch("SELECT count(*) AS n FROM book_search_docsize")
        indexed = int(docs[0]["n"])
        if thorough:
            await sql.fetch(
                "INSERT INTO book_search(book_search, rank) VALUES ('integrity-check', 1)"
            )
    return int(rows[0]["n"]), int(counter[0]["n"]) if counter else 0, indexed
