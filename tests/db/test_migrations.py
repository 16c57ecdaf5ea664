"""``python main.py migrate``: the schema on both backends, safe when instances start at once,
and the PostgreSQL specifics (byte-wise "C" text, trigram search indexes, the counter)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from backends import TEST_DATABASE_URL, PostgresSchema

from db.query import BookFilter, PageQuery

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = [
    "0001_initial",
    "0002_indexes_search_count",
    "0003_author_count_cover",
    "0004_sqlite_covering_walks",
    "0005_author_field_indexes",
    "0006_postgres_author_search",
    "0007_sqlite_title_search",
    "0008_postgres_covering_walks",
    "0009_idempotency_keys",
]
AT_ONCE = 4

needs_postgres = pytest.mark.skipif(
    TEST_DATABASE_URL is None, reason="TEST_DATABASE_URL is not set"
)


def _migrate_at_once(database_url: str, n: int = AT_ONCE) -> list[subprocess.CompletedProcess[str]]:
    """Start ``n`` migrate processes together, as instances starting side by side do."""
    env = {**os.environ, "DATABASE_URL": database_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "main.py", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.fixture
def fresh_schema() -> Iterator[PostgresSchema]:
    """An empty PostgreSQL schema, not migrated."""
    assert TEST_DATABASE_URL is not None
    schema = PostgresSchema(TEST_DATABASE_URL, migrated=False)
    try:
        yield schema
    finally:
        schema.drop()


def test_concurrent_migrate_on_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "db.sqlite3"
    results = _migrate_at_once(f"sqlite://{path}")
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * AT_ONCE

    import sqlite3

    with sqlite3.connect(path) as conn:
        applied = [r[0] for r in conn.execute("SELECT name FROM tortoise_migrations ORDER BY id")]
        assert applied == MIGRATIONS
        assert conn.execute("SELECT n FROM book_count").fetchall() == [(0,)]


@needs_postgres
def test_concurrent_migrate_on_a_new_postgres_schema(fresh_schema: PostgresSchema) -> None:
    # Without a lock held across the whole run, 3 of 4 fail here ("relation already exists",
    # or a duplicate row in tortoise_migrations).
    results = _migrate_at_once(fresh_schema.url)
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * AT_ONCE

    rows = fresh_schema.fetch("SELECT app, name FROM tortoise_migrations ORDER BY id")
    assert [(r["app"], r["name"]) for r in rows] == [("models", m) for m in MIGRATIONS]
    assert [tuple(r) for r in fresh_schema.fetch("SELECT id, n FROM book_count")] == [(1, 0)]

    # A later start finds nothing to do.
    again = _migrate_at_once(fresh_schema.url, n=1)
    assert again[0].returncode == 0, again[0].stderr
    assert len(fresh_schema.fetch("SELECT 1 FROM tortoise_migrations")) == len(MIGRATIONS)


@needs_postgres
def test_migrate_creates_the_schema_the_url_names(fresh_schema: PostgresSchema) -> None:
    # PostgreSQL does not create a schema on first use: without this, migrate failed with
    # a traceback ending "no schema has been selected to create in".
    fresh_schema.execute(f'DROP SCHEMA "{fresh_schema.name}"')
    results = _migrate_at_once(fresh_schema.url, n=2)
    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * 2
    rows = fresh_schema.fetch("SELECT name FROM tortoise_migrations ORDER BY id")
    assert [r["name"] for r in rows] == MIGRATIONS


@needs_postgres
def test_text_columns_sort_bytewise(postgres: PostgresSchema) -> None:
    rows = postgres.fetch(
        "SELECT column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'book' AND column_name IN ('title', 'author') "
        "ORDER BY column_name",
        postgres.name,
    )
    assert [tuple(r) for r in rows] == [("author", "C"), ("title", "C")]


@needs_postgres
def test_counter_follows_inserts_and_deletes_whatever_the_search_path(
    postgres: PostgresSchema,
) -> None:
    postgres.reset()
    # Another session, its search_path not on this schema (as psql's default would be).
    postgres.execute("SET search_path TO public")
    try:
        table = f'"{postgres.name}".book'
        postgres.execute(
            f"INSERT INTO {table} (title, author, published_date, price_cents, version) "
            "SELECT 't' || i, 'a', DATE '2000-01-01', i, 1 FROM generate_series(1, 5) i"
        )
        postgres.execute(f"DELETE FROM {table} WHERE price_cents <= 2")
        n = postgres.fetch(f'SELECT n FROM "{postgres.name}".book_count')[0]["n"]
    finally:
        postgres.execute(f'SET search_path TO "{postgres.name}"')
    assert n == 3


@needs_postgres
async def test_search_uses_the_trigram_indexes(
    postgres: PostgresSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXPLAIN the very statements the backend sends for a search, on 100,000 rows (below
    some 50,000 short rows the planner rightly prefers a sequential scan)."""
    from db import close_db, open_db
    from db.postgres import _numbered

    postgres.reset()
    # The migration's own indexes, rebuilt after the load: 4x faster than maintaining them.
    indexes = postgres.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'book' "
        "AND indexname <> 'book_pkey'",
        postgres.name,
    )
    names = {r["indexname"] for r in indexes}
    assert "book_title_trgm" in names and "book_author_trgm" not in names
    postgres.execute("DROP INDEX " + ", ".join(f'"{r["indexname"]}"' for r in indexes))
    try:
        postgres.execute(
            "INSERT INTO book (title, author, published_date, price_cents, version) "
            "SELECT 'Title ' || i % 997, 'Author ' || i % 991, DATE '1900-01-01' + i % 40000, "
            "i % 100000, 1 FROM generate_series(1, 100000) i"
        )
    finally:
        for r in indexes:
            postgres.execute(r["indexdef"])
    postgres.execute("ANALYZE book")

    sent: list[tuple[str, list[object]]] = []
    db = await open_db(postgres.url, run_migrations=False)
    fetch = db.fetch

    async def spy(statement: str, values: Sequence[object] = ()) -> Sequence[object]:
        sent.append((statement, list(values)))
        return await fetch(statement, values)

    monkeypatch.setattr(db, "fetch", spy)  # after open_db's own "SELECT 1"
    try:
        await db.list_books(PageQuery(filter=BookFilter(search="abcde"), limit=20))
        by_title = (("title", True), ("id", False))
        keyset = PageQuery(
            filter=BookFilter(search="ABCDE"),
            ordering=by_title,
            limit=20,
            after=("Title 500", 50000),
            with_count=False,
        )
        await db.list_books(keyset)
    finally:
        await close_db()
    try:
        # The count's sample of the table (estimate_count) reads runs of ids by the
        # primary key, not by a search index; the count itself and the pages do.
        searching = [(s, v) for s, v in sent if "ILIKE" in s and "WITH RECURSIVE" not in s]
        # A count (of none: no page is read); then a count to plan the keyset page by
        # (another search: "ABCDE", not "abcde"), and that page.
        assert len(searching) == 3
        for statement, values in searching:
            plan = postgres.fetch(f"EXPLAIN {_numbered(statement)}", *values)
            text = "\n".join(r[0] for r in plan)
            # The author side: the authors that hold the text, then their books through
            # an author index; never a scan of the table.
            assert "book_title_trgm" in text and "book_author_count" in text, text
            assert "Seq Scan on book " not in text, text
    finally:
        postgres.reset()
