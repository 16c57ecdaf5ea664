"""(SQLite) The trigram index of titles only; a search's author side through the authors.

``search`` matches a book whose title or author holds the text. One FTS5 index of both
columns kept one posting list per trigram for both: the trigrams of an author's name are
each shared by hundreds of authors, so a search for a name read lists that covered a
large part of the table, whichever columns it asked for (22 ms for an author's full name
at ten million rows). Now ``book_search`` holds the titles only, and
``book_author_search`` the distinct authors (one row per row of ``book_author_count``,
kept by triggers on it): ``db.sqlite`` finds the authors that hold the text there and
their books through the author index. Found by a scan of ``book_author_count``'s 4,096
authors instead, the authors that hold a name took 0.57 ms; through their trigram index,
0.07 ms.

What it costs a write: an insert tokenises the title only (the author no longer), and an
author's name once, when its first book is written; an update of the author no longer
touches ``book_search``. Deleting an author's last book finds its row in
``book_author_search`` through the index (FTS5 has no key of its own to delete by).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

SQLITE = [
    'DROP TRIGGER IF EXISTS "book_search_ai"',
    'DROP TRIGGER IF EXISTS "book_search_ad"',
    'DROP TRIGGER IF EXISTS "book_search_au"',
    'DROP TABLE IF EXISTS "book_search"',
    """CREATE VIRTUAL TABLE "book_search" USING fts5(
        title, content='book', content_rowid='id', tokenize='trigram')""",
    """CREATE TRIGGER "book_search_ai" AFTER INSERT ON "book" BEGIN
        INSERT INTO book_search(rowid, title) VALUES (new.id, new.title);
    END""",
    """CREATE TRIGGER "book_search_ad" AFTER DELETE ON "book" BEGIN
        INSERT INTO book_search(book_search, rowid, title) VALUES ('delete', old.id, old.title);
    END""",
    """CREATE TRIGGER "book_search_au" AFTER UPDATE OF title ON "book" BEGIN
        INSERT INTO book_search(book_search, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO book_search(rowid, title) VALUES (new.id, new.title);
    END""",
    "INSERT INTO book_search(book_search) VALUES ('rebuild')",
    """CREATE VIRTUAL TABLE IF NOT EXISTS "book_author_search" USING fts5(
        author, tokenize='trigram')""",
    """CREATE TRIGGER IF NOT EXISTS "book_author_search_ai" AFTER INSERT ON "book_author_count"
    BEGIN
        INSERT INTO book_author_search(author) VALUES (new.author);
    END""",
    # A name of fewer than three characters has no trigram: found by a scan of the rest.
    """CREATE TRIGGER IF NOT EXISTS "book_author_search_ad" AFTER DELETE ON "book_author_count"
    BEGIN
        DELETE FROM book_author_search WHERE rowid IN (
            SELECT rowid FROM book_author_search
            WHERE book_author_search MATCH '"' || replace(old.author, '"', '""') || '"'
        ) AND author = old.author;
        DELETE FROM book_author_search WHERE length(old.author) < 3 AND author = old.author;
    END""",
    "DELETE FROM book_author_search",
    "INSERT INTO book_author_search(author) SELECT author FROM book_author_count",
]


async def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    if client.capabilities.dialect != "sqlite":
        return
    for statement in SQLITE:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0006_postgres_author_search")]

    operations = [ops.RunPython(forward)]
