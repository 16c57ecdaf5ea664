from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("name", fields.CharField(unique=True, max_length=100)),
                ("key_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                (
                    "last_used_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_token",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An API key. Only the SHA-256 digest of the key is stored.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Book",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("title", fields.CharField(max_length=255)),
                ("author", fields.CharField(max_length=255)),
                ("published_date", fields.DateField()),
                ("price_cents", fields.IntField()),
                ("version", fields.IntField(default=1)),
            ],
            options={
                "table": "book",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A book. The price is kept as integer cents.",
            },
            bases=["Model"],
        ),
    ]
