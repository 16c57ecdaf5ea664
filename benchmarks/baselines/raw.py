"""The raw baseline: the benchmarked routes hand-written on Sanic + one aiosqlite
connection per worker + fixed SQL + orjson, answering the same JSON bodies as the service.

Nothing else: no validation beyond parsing, no auth, no request ids, no metrics, no
``offset``, ``fields`` or date and price filters. It is what each endpoint costs with
nothing but the driver, the yardstick the service is measured against.

- ``GET /books/{id}/``: the book and its ``ETag``.
- ``GET /books/`` with ``limit``, ``author``, ``search``, ``ordering=price`` and
  ``cursor``: the envelope with ``count`` (from ``book_count`` when unfiltered) on a first
  page and keyset SQL for a cursor page; cursors in the service's own format, so a cursor
  taken from the service works here.
- ``POST /books/`` (one book or an array) and ``PATCH /books/{id}/`` (``If-Match``
  checked in the ``UPDATE``'s own ``WHERE``), both with ``RETURNING``.

    DATABASE_URL=sqlite://FILE HOST=127.0.0.1 PORT=8002 WORKERS=1 \\
        python -m benchmarks.baselines.raw
"""

from __future__ import annotations

import base64
import gc
import os
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlencode

import aiosqlite
import orjson
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

COLS: Final = "id, title, author, published_date, price_cents, version"
PRAGMAS: Final = (
    "journal_mode=WAL",
    "journal_size_limit=16384",
    "foreign_keys=ON",
    "busy_timeout=30000",
    # the service's durability setting, so that both commit alike (SQLITE_SYNCHRONOUS)
    f"synchronous={os.environ.get('SQLITE_SYNCHRONOUS', 'full').strip().upper()}",
    "cache_size=-8000",
    "temp_store=MEMORY",
)  # the service's (db.SQLITE_PRAGMAS + Tortoise's)
ORDERINGS: Final = {"id": (("id", False),), "price": (("price_cents", False), ("id", False))}
NOT_FOUND: Final = b'{"detail":"Not found."}'
COLUMN: Final = {
    "title": "title",
    "author": "author",
    "published_date": "published_date",
    "price": "price_cents",
}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def _book(row: tuple[Any, ...]) -> dict[str, Any]:
    cents = row[4]
    return {
        "id": row[0],
        "title": row[1],
        "author": row[2],
        "published_date": row[3],
        "price": f"{cents // 100}.{cents % 100:02d}",
    }


def _tag(row: tuple[Any, ...]) -> str:
    return f'"{row[0]}-{row[5]}"'


def _cents(value: Any) -> int:
    return int(Decimal(str(value)).scaleb(2))


def _cursor(key: str, position: list[Any], backwards: bool) -> str:
    doc = {"o": key, "p": position, "b": backwards}
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def _decode(raw: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return doc


async def detail(request: Request, book_id: int) -> HTTPResponse:
    rows = await request.app.ctx.db.execute_fetchall(
        f"SELECT {COLS} FROM book WHERE id = ?", (book_id,)
    )
    if not rows:
        return HTTPResponse(NOT_FOUND, status=404, content_type="application/json")
    return _json(_book(rows[0]), headers={"ETag": _tag(rows[0])})


async def patch(request: Request, book_id: int) -> HTTPResponse:
    data = orjson.loads(request.body)
    changes = {
        COLUMN[k]: (_cents(v) if k == "price" else v) for k, v in data.items() if k in COLUMN
    }
    sets = ", ".join([f"{c} = ?" for c in changes] + ["version = version + 1"])
    values = [*changes.values(), book_id]
    check = ""
    if_match = request.headers.get("if-match")
    if if_match:
        check = " AND version = ?"
        values.append(int(if_match.strip('"').rpartition("-")[2]))
    db = request.app.ctx.db
    rows = await db.execute_fetchall(
        f"UPDATE book SET {sets} WHERE id = ?{check} RETURNING {COLS}", values
    )
    if not rows:
        exists = await db.execute_fetchall("SELECT 1 FROM book WHERE id = ?", (book_id,))
        if not exists:
            return HTTPResponse(NOT_FOUND, status=404, content_type="application/json")
        return _json({"detail": "Precondition failed."}, status=412)
    return _json(_book(rows[0]), headers={"ETag": _tag(rows[0])})


async def create(request: Request) -> HTTPResponse:
    data = orjson.loads(request.body)
    items = data if isinstance(data, list) else [data]
    values: list[Any] = []
    for item in items:
        values += [item["title"], item["author"], item["published_date"], _cents(item["price"])]
    placeholders = ", ".join(["(?, ?, ?, ?, 1)"] * len(items))
    rows = await request.app.ctx.db.execute_fetchall(
        "INSERT INTO book (title, author, published_date, price_cents, version) "
        f"VALUES {placeholders} RETURNING {COLS}",
        values,
    )
    rows = sorted(rows, key=lambda r: r[0])
    if isinstance(data, list):
        return _json([_book(r) for r in rows], status=201)
    row = rows[0]
    location = f"{request.scheme}://{request.host}/books/{row[0]}/"
    return _json(_book(row), status=201, headers={"Location": location, "ETag": _tag(row)})


def _where(args: Any) -> tuple[list[str], list[Any], bool]:
    clauses: list[str] = []
    values: list[Any] = []
    author = args.get("author")
    if author is not None:
        clauses.append("author = ?")
        values.append(author)
    search = args.get("search")
    if search:
        if len(search) >= 3:
            # The trigram indexes of titles and of the distinct authors.
            clauses.append(
                "(id IN (SELECT rowid FROM book_search WHERE book_search MATCH ?) OR author IN"
                " (SELECT author FROM book_author_search WHERE book_author_search MATCH ?))"
            )
            phrase = '"' + search.replace('"', '""') + '"'
            values += [phrase, phrase]
        else:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            clauses.append("(title LIKE ? ESCAPE '\\' OR author LIKE ? ESCAPE '\\')")
            values += [pattern, pattern]
    return clauses, values, bool(clauses)


async def book_list(request: Request) -> HTTPResponse:
    args = request.args
    limit = int(args.get("limit", "20"))
    ordering = ORDERINGS[args.get("ordering", "id").lstrip("-")]
    key = "price,id" if len(ordering) == 2 else "id"  # a cursor names API fields
    clauses, values, filtered = _where(args)
    db = request.app.ctx.db
    raw_cursor = args.get("cursor")
    count = None
    backwards = False
    page_clauses, page_values = list(clauses), list(values)
    if raw_cursor:
        doc = _decode(raw_cursor)
        position, backwards = doc["p"], doc["b"]
        op = "<" if backwards else ">"
        if len(ordering) == 1:
            page_clauses.append(f"id {op} ?")
            page_values.append(position[0])
        else:
            page_clauses.append(f"price_cents {op}= ? AND (price_cents {op} ? OR id {op} ?)")
            page_values += [position[0], position[0], position[1]]
    elif clauses == ["author = ?"]:  # the service's trigger-kept count per author
        rows = await db.execute_fetchall("SELECT n FROM book_author_count WHERE author = ?", values)
        count = rows[0][0] if rows else 0
    elif filtered:
        where = " AND ".join(clauses)
        count = (await db.execute_fetchall(f"SELECT count(*) FROM book WHERE {where}", values))[0][
            0
        ]
    else:
        count = (await db.execute_fetchall("SELECT n FROM book_count WHERE id = 1"))[0][0]
    direction = "DESC" if backwards else "ASC"
    order = ", ".join(f"{col} {direction}" for col, _ in ordering)
    where = f" WHERE {' AND '.join(page_clauses)}" if page_clauses else ""
    rows = list(
        await db.execute_fetchall(
            f"SELECT {COLS} FROM book{where} ORDER BY {order} LIMIT ?", [*page_values, limit + 1]
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    base = f"{request.scheme}://{request.host}{request.path}"
    pairs = [(k, v) for k, vs in args.items() if k != "cursor" for v in vs]

    def link(row: tuple[Any, ...], back: bool) -> str:
        position = [row[4], row[0]] if len(ordering) == 2 else [row[0]]
        return f"{base}?{urlencode([*pairs, ('cursor', _cursor(key, position, back))])}"

    results = [_book(r) for r in rows]
    next_url = link(rows[-1], False) if rows and (more or backwards) else None
    if raw_cursor is None:
        return _json({"count": count, "next": next_url, "previous": None, "results": results})
    previous = link(rows[0], True) if rows and (more or not backwards) else None
    return _json({"next": next_url, "previous": previous, "results": results})


async def _freeze_startup_objects(app: Sanic) -> None:
    gc.collect()
    gc.freeze()


def create_app() -> Sanic:
    app = Sanic("bookshelf_raw")
    app.config.update(
        {
            "ACCESS_LOG": False,
            "KEEP_ALIVE_TIMEOUT": 5.0,
            "REQUEST_TIMEOUT": 30.0,
            "RESPONSE_TIMEOUT": 30.0,
            # Sanic extends every app with sanic-ext when it is installed (it is, for the
            # service): its dependency injection then answers a signal on every request.
            "AUTO_EXTEND": False,
        }
    )
    path = os.environ.get("DATABASE_URL", "sqlite://./data/bookshelf.sqlite3")
    path = path.removeprefix("sqlite://").split("?", 1)[0]

    @app.before_server_start
    async def _open(app: Sanic) -> None:
        db = await aiosqlite.connect(path, isolation_level=None)
        for pragma in PRAGMAS:
            await db.execute(f"PRAGMA {pragma}")
        app.ctx.db = db

    @app.after_server_stop
    async def _close(app: Sanic) -> None:
        await app.ctx.db.close()

    # The service's workers freeze their start-up objects out of the cycle collector
    # (api.app.freeze_startup_objects): so does the baseline, so that the ratios compare
    # request handling, not collector settings.
    app.after_server_start(_freeze_startup_objects)
    app.add_route(book_list, "/books", methods=["GET"], strict_slashes=False, name="list")
    app.add_route(create, "/books", methods=["POST"], strict_slashes=False, name="create")
    app.add_route(
        detail, "/books/<book_id:int>", methods=["GET"], strict_slashes=False, name="detail"
    )
    app.add_route(
        patch, "/books/<book_id:int>", methods=["PATCH"], strict_slashes=False, name="patch"
    )
    return app


def main() -> None:
    loader = AppLoader(factory=create_app)
    app = loader.load()
    app.prepare(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8002")),
        workers=int(os.environ.get("WORKERS", "1")),
        access_log=False,
        motd=False,
    )
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
