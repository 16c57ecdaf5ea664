"""The seed's bulk loader on SQLite: ``executemany`` in batches inside one transaction.

The triggers that keep ``book_search`` (FTS5) and the counters in step cost a trigram
tokenisation and a counter update per row, which triples the time of a large seed: the
known ones are dropped inside the transaction, their tables brought up to date with one
statement each, and the triggers created again from their own stored SQL before the
commit. Other triggers on ``book`` are left alone. A failure rolls all of it back.

A seed that starts from an empty table (``--replace``) also drops the table's secondary
indexes and creates them again from their stored SQL once the rows are in: eight indexes
kept up to date row by row, on random keys, spill pages over and over once the table
outgrows the page cache, and an index built from all the rows at once is one sort.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from tortoise.transactions import in_transaction

from db.backend import Progress, RowBatches

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


async def bulk_load(
    client: Any,
    count: int,
    replace: bool,
    batch_size: int,
    rows: RowBatches,
    progress: Progress | None,
) -> tuple[int, int]:
    _, found = await client.execute_query("PRAGMA cache_size")
    cache_size = int(found[0][0])
    # Four secondary indexes on random keys: with the served page cache, a large seed
    # spills pages to the WAL over and over. Give this connection room, then restore.
    await client.execute_script(f"PRAGMA cache_size = {_SEED_CACHE_KIB}")
    try:
        return await _seed_transaction(count, replace, batch_size, rows, progress)
    finally:
        await client.execute_script(f"PRAGMA cache_size = {cache_size}")


async def _seed_transaction(
    count: int,
    replace: bool,
    batch_size: int,
    make_rows: RowBatches,
    progress: Progress | None,
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
        indexes: list[str] = []
        if first == 1:  # an empty table: its indexes are built once the rows are in
            _, rows = await conn.execute_query(
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = 'book' AND sql IS NOT NULL"
            )
            for row in rows:
                await conn.execute_query(f'DROP INDEX "{row["name"]}"')
                indexes.append(row["sql"])
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            await conn.execute_many(_SEED_INSERT, list(make_rows(first + done, size, True)))
            done += size
            if progress:
                progress(done, count)
        for statement in indexes:
            await conn.execute_query(statement)
        names = {name for name, _ in dropped}
        if names & {"book_search_ai", "book_search_ad", "book_search_au"}:
            if replace:
                await conn.execute_query("INSERT INTO book_search(book_search) VALUES ('rebuild')")
            else:
                await conn.execute_query(
                    "INSERT INTO book_search(rowid, title) "
                    "SELECT id, title FROM book WHERE id >= ?",
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
