"""Indexes for every filter and ordering, a substring-search index and an O(1) row count.

The SQL differs between the backends, so it runs through RunPython and picks by dialect:
- SQLite: composite (field, id) indexes that serve both a filter and a keyset page;
  an FTS5 table with the trigram tokenizer for ``search``, kept in step by triggers;
  a one-row counter kept by triggers, so the unfiltered ``count`` never scans the table.
- PostgreSQL: the same indexes with the "C" collation on text (so ordering is byte-wise,
  as on SQLite), pg_trgm GIN indexes for ``search``, and the same counter.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

SQLITE = [
    'CREATE INDEX IF NOT EXISTS "book_author_id" ON "book" ("author", "id")',
    'CREATE INDEX IF NOT EXISTS "book_title_id" ON "book" ("title", "id")',
    'CREATE INDEX IF NOT EXISTS "book_published_id" ON "book" ("published_date", "id")',
    'CREATE INDEX IF NOT EXISTS "book_price_id" ON "book" ("price_cents", "id")',
    """CREATE VIRTUAL TABLE IF NOT EXISTS "book_search" USING fts5(
        title, author, content='book', content_rowid='id', tokenize='trigram')""",
    """CREATE TRIGGER IF NOT EXISTS "book_search_ai" AFTER INSERT ON "book" BEGIN
        INSERT INTO book_search(rowid, title, author) VALUES (new.id, new.title, new.author);
    END""",
    """CREATE TRIGGER IF NOT EXISTS "book_search_ad" AFTER DELETE ON "book" BEGIN
        INSERT INTO book_search(book_search, rowid, title, author)
        VALUES ('delete', old.id, old.title, old.author);
    END""",
    """CREATE TRIGGER IF NOT EXISTS "book_search_au" AFTER UPDATE OF title, author ON "book"
    BEGIN
        INSERT INTO book_search(book_search, rowid, title, author)
        VALUES ('delete', old.id, old.title, old.author);
        INSERT INTO book_search(rowid, title, author) VALUES (new.id, new.title, new.author);
    END""",
    "INSERT INTO book_search(book_search) VALUES ('rebuild')",
    'CREATE TABLE IF NOT EXISTS "book_count" ("id" INTEGER PRIMARY KEY CHECK (id = 1), "n" INTEGER NOT NULL)',
    'INSERT OR IGNORE INTO "book_count" ("id", "n") SELECT 1, count(*) FROM "book"',
    """CREATE TRIGGER IF NOT EXISTS "book_count_ai" AFTER INSERT ON "book" BEGIN
        UPDATE book_count SET n = n + 1 WHERE id = 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS "book_count_ad" AFTER DELETE ON "book" BEGIN
        UPDATE book_count SET n = n - 1 WHERE id = 1;
    END""",
]

POSTGRES = [
    'ALTER TABLE "book" ALTER COLUMN "title" TYPE VARCHAR(255) COLLATE "C"',
    'ALTER TABLE "book" ALTER COLUMN "author" TYPE VARCHAR(255) COLLATE "C"',
    'CREATE INDEX IF NOT EXISTS "book_author_id" ON "book" ("author", "id")',
    'CREATE INDEX IF NOT EXISTS "book_title_id" ON "book" ("title", "id")',
    'CREATE INDEX IF NOT EXISTS "book_published_id" ON "book" ("published_date", "id")',
    'CREATE INDEX IF NOT EXISTS "book_price_id" ON "book" ("price_cents", "id")',
    # Trusted since PostgreSQL 13: the database owner may create it (no superuser needed).
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # {trgm} is the schema pg_trgm lives in, which need not be on this search_path
    # (a ?schema= deployment whose database has pg_trgm in public already).
    'CREATE INDEX IF NOT EXISTS "book_title_trgm" ON "book"'
    ' USING gin ("title" {trgm}.gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "book_author_trgm" ON "book"'
    ' USING gin ("author" {trgm}.gin_trgm_ops)',
    'CREATE TABLE IF NOT EXISTS "book_count"'
    ' ("id" INTEGER PRIMARY KEY CHECK (id = 1), "n" BIGINT NOT NULL)',
    'INSERT INTO "book_count" ("id", "n") SELECT 1, count(*) FROM "book" ON CONFLICT DO NOTHING',
    # SET search_path FROM CURRENT: the body finds this schema's book_count whatever the
    # search_path of the session that writes to book.
    """CREATE OR REPLACE FUNCTION book_count_trg() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE book_count SET n = n + (SELECT count(*) FROM new_rows) WHERE id = 1;
        ELSE
            UPDATE book_count SET n = n - (SELECT count(*) FROM old_rows) WHERE id = 1;
        END IF;
        RETURN NULL;
    END $$""",
    'DROP TRIGGER IF EXISTS "book_count_ai" ON "book"',
    """CREATE TRIGGER "book_count_ai" AFTER INSERT ON "book"
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION book_count_trg()""",
    'DROP TRIGGER IF EXISTS "book_count_ad" ON "book"',
    """CREATE TRIGGER "book_count_ad" AFTER DELETE ON "book"
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION book_count_trg()""",
]


TRGM_SCHEMA = """SELECT quote_ident(n.nspname) AS name FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"""


async def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    if client.capabilities.dialect == "sqlite":
        for statement in SQLITE:
            await client.execute_script(statement)
        return
    trgm = ""
    for statement in POSTGRES:
        if "{trgm}" in statement and not trgm:
            _, rows = await client.execute_query(TRGM_SCHEMA)
            trgm = rows[0]["name"]
        await client.execute_script(statement.replace("{trgm}", trgm))


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(forward)]
