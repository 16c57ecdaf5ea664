"""(PostgreSQL) The title, author, date and price indexes cover every column of a book.

A page ordered by a field whose filter no index orders walks that field's index and
filters as it goes: through a ``(field, id)`` index each row it passes is fetched from
the table to test the filter, at a place of its own in ten million rows (a one-year
range ordered by price passes 2,600 index entries for a page: 16 ms). With the row's
other columns in the index (``INCLUDE``), the walk and the page are an index-only scan:
0.4 ms. An author's books ordered by id, the list filtered by ``author``, become one too.
SQLite's indexes cover its pages the same way (migration 0004).

An index-only scan skips the table only on pages the visibility map marks all-visible:
VACUUM (autovacuum, and the seed after a load) keeps it; rows written since are fetched
from the table as before. What it costs: each index holds a copy of the row (700 MB
against 214 MB for the price index at ten million rows), and each write writes the wider
entries.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

COLUMNS = ("title", "author", "published_date", "price_cents", "version")
COVERS = {
    "book_title_id": ("book_title_cover", "title"),
    "book_author_id": ("book_author_cover", "author"),
    "book_published_id": ("book_published_cover", "published_date"),
    "book_price_id": ("book_price_cover", "price_cents"),
}


def _cover(name: str, column: str) -> str:
    included = ", ".join(f'"{c}"' for c in COLUMNS if c != column)
    return f'CREATE INDEX IF NOT EXISTS "{name}" ON "book" ("{column}", "id") INCLUDE ({included})'


async def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    if client.capabilities.dialect == "sqlite":
        return
    for narrow, (name, column) in COVERS.items():
        await client.execute_script(_cover(name, column))
        await client.execute_script(f'DROP INDEX IF EXISTS "{narrow}"')


class Migration(migrations.Migration):
    dependencies = [("models", "0007_sqlite_title_search")]

    operations = [ops.RunPython(forward)]
