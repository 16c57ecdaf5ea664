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
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    'CREATE INDEX IF NOT EXISTS "book_title_trgm" ON "book" USING gin ("title" gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "book_author_trgm" ON "book" USING gin ("author" gin_trgm_ops)',
    'CREATE TABLE IF NOT EXISTS "book_count" ("id" INTEGER PRIMARY KEY CHECK (id = 1), "n" BIGINT NOT NULL)',
    'INSERT INTO "book_count" ("id", "n") SELECT 1, count(*) FROM "book" ON CONFLICT DO NOTHING',
    """CREATE OR REPLACE FUNCTION book_count_trg() RETURNS trigger LANGUAGE plpgsql AS $$
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


async def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    statements = SQLITE if client.capabilities.dialect == "sqlite" else POSTGRES
    for statement in statements:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(forward)]
