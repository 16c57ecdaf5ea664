"""The ``Idempotency-Key`` of a write and its outcome (``db.idempotency``).

One row per (token digest, key): the request's fingerprint, when it was claimed
(milliseconds since the epoch, the clock of the process that claimed it) and, once the
write committed, its answer (status, headers as a JSON object, body), written in the
write's own transaction. Rows are kept at least ``idempotency.RETENTION`` (24 h) and then
deleted a bounded batch at a time (``idempotency.prune``), found through the index of
``claimed_at``.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

SQLITE = [
    """CREATE TABLE IF NOT EXISTS "idempotency_key" (
        "scope" TEXT NOT NULL, "key" TEXT NOT NULL, "fingerprint" TEXT NOT NULL,
        "claimed_at" INTEGER NOT NULL, "status" INTEGER, "headers" TEXT, "body" BLOB,
        PRIMARY KEY ("scope", "key")) WITHOUT ROWID""",
    'CREATE INDEX IF NOT EXISTS "idempotency_key_claimed" ON "idempotency_key" ("claimed_at")',
]
POSTGRES = [
    """CREATE TABLE IF NOT EXISTS "idempotency_key" (
        "scope" TEXT NOT NULL, "key" TEXT NOT NULL, "fingerprint" TEXT NOT NULL,
        "claimed_at" BIGINT NOT NULL, "status" INTEGER, "headers" TEXT, "body" BYTEA,
        PRIMARY KEY ("scope", "key"))""",
    'CREATE INDEX IF NOT EXISTS "idempotency_key_claimed" ON "idempotency_key" ("claimed_at")',
]


async def forward(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    sqlite = client.capabilities.dialect == "sqlite"
    for statement in SQLITE if sqlite else POSTGRES:
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0008_postgres_covering_walks")]

    operations = [ops.RunPython(forward)]
