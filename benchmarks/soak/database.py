"""The soak's database: seeded and given a token through ``main.py``, then read directly
(sqlite3 or asyncpg) and compared with every write the server acknowledged."""

from __future__ import annotations

import sqlite3
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks import dataset
from benchmarks.soak.load import Load
from benchmarks.soak.options import SoakError
from db import build_config


def main_py(args: list[str], database_url: str, timeout: float = 600) -> str:
    """``python main.py ARGS`` on ``database_url``: its stdout, or a one-line SoakError."""
    try:
        return dataset.main_py(args, database_url, timeout)
    except subprocess.TimeoutExpired:
        raise SoakError(
            f"main.py {args[0]} took over {timeout:.0f} s; is the database up?"
        ) from None
    except dataset.MainPyError as exc:
        lines = [line for line in exc.stderr.splitlines() if line.strip()] or ["(no output)"]
        command = " ".join(a for a in args[:2] if not a.startswith("-"))
        raise SoakError(f"main.py {command} failed ({exc.returncode}): {lines[-1]}") from None


def _pg_options(url: str) -> dict[str, Any]:
    credentials = dict(build_config(url)["connections"]["default"]["credentials"])
    schema = credentials.pop("schema", None)
    for key in ("minsize", "maxsize", "application_name", "connect"):
        credentials.pop(key, None)
    if schema:
        credentials["server_settings"] = {"search_path": schema}
    return credentials


@dataclass
class Stored:
    rows: dict[int, tuple[str, str, str, int]]  # id -> title, author, date, cents (new rows)
    count: int
    book_count: int | None
    author_counts_ok: bool
    integrity: str | None  # SQLite's integrity_check; None on PostgreSQL


_ROWS_SQL: Final = "SELECT id, title, author, published_date, price_cents FROM book WHERE id > "
_AUTHORS_SQL: Final = "SELECT author, count(*) FROM book GROUP BY author"


def read_sqlite(path: Path, seeded: int) -> Stored:
    con = sqlite3.connect(path, timeout=30)
    try:
        integrity = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
        rows = {
            r[0]: (r[1], r[2], str(r[3]), r[4]) for r in con.execute(_ROWS_SQL + "?", (seeded,))
        }
        count = con.execute("SELECT count(*) FROM book").fetchone()[0]
        book_count = con.execute("SELECT n FROM book_count WHERE id = 1").fetchone()
        authors = dict(con.execute(_AUTHORS_SQL).fetchall())
        kept = dict(con.execute("SELECT author, n FROM book_author_count WHERE n > 0").fetchall())
    finally:
        con.close()
    return Stored(rows, count, book_count[0] if book_count else None, authors == kept, integrity)


async def read_postgres(url: str, seeded: int) -> Stored:
    import asyncpg

    con = await asyncpg.connect(**_pg_options(url))
    try:
        rows = {
            r[0]: (r[1], r[2], r[3].isoformat(), r[4])
            for r in await con.fetch(_ROWS_SQL + "$1", seeded)
        }
        count = await con.fetchval("SELECT count(*) FROM book")
        book_count = await con.fetchval("SELECT n FROM book_count WHERE id = 1")
        authors = dict(await con.fetch(_AUTHORS_SQL))
        kept = dict(await con.fetch("SELECT author, n FROM book_author_count WHERE n > 0"))
    finally:
        await con.close()
    return Stored(rows, count, book_count, authors == kept, None)


def verify(load: Load, stored: Stored, seeded: int) -> dict[str, Any]:
    """Compare every acknowledged write with the stored rows."""
    lost_creates, lost_updates, resurrected, wrong_fields = [], [], [], []
    known: set[int] = set()
    for b in load.books:
        known.add(b.id)
        row = stored.rows.get(b.id)
        pending_op, pending_title = b.pending or (None, None)
        if b.deleted:
            if row is not None:
                resurrected.append(b.id)
            continue
        if row is None:
            if pending_op != "delete":
                lost_creates.append(b.id)
            continue
        title, author, date, cents = row
        if (author, date, cents) != (b.author, b.date, b.cents):
            wrong_fields.append(b.id)
        if title != b.title and not (pending_op == "patch" and title == pending_title):
            lost_updates.append(b.id)
    extra = sorted(set(stored.rows) - known)
    # Each create and each patch writes a title no other write uses: a title stored twice
    # is a create that a retry with its Idempotency-Key made again.
    titles = Counter(row[0] for row in stored.rows.values())
    duplicates = sum(n - 1 for n in titles.values() if n > 1)
    unknown_creates = load.writes.unknown["post"]
    lost = len(lost_creates) + len(lost_updates) + len(resurrected)
    report = {
        "acknowledged": {
            "create": load.writes.acked["post"],
            "patch": load.writes.acked["patch"],
            "delete": load.writes.acked["delete"],
            "total": sum(load.writes.acked.values()),
        },
        "unknown_outcome": {
            "create": unknown_creates,
            "patch": load.writes.unknown["patch"],
            "delete": load.writes.unknown["delete"],
        },
        "lost_writes": lost,
        "duplicates": duplicates,
        "creates_cut": load.writes.cut,
        "creates_retried": load.writes.retried,
        "retries_by_cause": dict(load.writes.retries.most_common()),
        "lost_creates": lost_creates[:20],
        "lost_updates": lost_updates[:20],
        "deleted_but_present": resurrected[:20],
        "wrong_fields": len(wrong_fields),
        "bad_answers": load.writes.bad_answers,
        "stale_reads": load.writes.stale_reads,
        "stored_without_answer": len(extra),
        "unexplained_rows": max(0, len(extra) - unknown_creates),
        "integrity_check": stored.integrity,
        "book_count": stored.book_count,
        "count": stored.count,
        "counter_ok": stored.book_count == stored.count,
        "author_counts_ok": stored.author_counts_ok,
        "seeded_rows": seeded,
    }
    report["ok"] = (
        lost == 0
        and duplicates == 0
        and not wrong_fields
        and report["bad_answers"] == 0
        and report["stale_reads"] == 0
        and report["unexplained_rows"] == 0
        and stored.integrity in (None, "ok")
        and report["counter_ok"]
        and stored.author_counts_ok
    )
    return report
