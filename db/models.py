"""Tortoise models: the schema of bookshelf's tables."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Book(Model):
    """A book. The price is kept as integer cents.

    Tortoise stores a ``DecimalField`` as text on SQLite and compares it through
    ``CAST(price AS NUMERIC)``, so no plain index serves ``ordering=price`` or a price
    range (../shared/LIBRARY-NOTES.md). Integer cents are exact, index the same way on
    SQLite and PostgreSQL, and keep a keyset cursor on price on the index. The API turns
    them into the contract's ``"12.50"`` strings.
    """

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=255)
    author = fields.CharField(max_length=255)
    published_date = fields.DateField()
    price_cents = fields.IntField()
    # Bumped by every write: the strong ETag and the If-Match check compare it.
    version = fields.IntField(default=1)

    class Meta:
        table = "book"


class ApiToken(Model):
    """An API key. Only the SHA-256 digest of the key is stored."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"
