"""``python -m benchmarks.plans``: every list shape of the matrix, one request at a time, in
this process: how long its statements take on an idle database and what plan each runs.

Shows what a load run cannot: the plan behind a slow shape. For each shape (first page,
the cursor page after it, and the first page with ``fields=``) it runs the data layer's
``list_books`` as a request would, records the statements it sends, and prints the time
of the first try (cold caches) and the best of the next ones, with the plan of the
page's statement (SQLite's ``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN (ANALYZE,
BUFFERS)`` with the rows each node read). Ends with the slowest shapes and a summary;
``--json`` writes every row to a file.

    python -m benchmarks.plans --database-url sqlite:///data/m10.sqlite3 --sample 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from api import pagination
from api.errors import ValidationError
from api.filters import parse_fields
from benchmarks.matrix import MATRIX_SHAPES, sample
from db import close_db, open_db
from db.backend import Backend
from db.errors import DatabaseError, StatementTimeoutError

STATEMENT_TIMEOUT = 5.0


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass
class Row:
    shape: str
    path: str
    first_ms: float
    best_ms: float
    statements: int
    plan: list[str] = field(default_factory=list)
    answer: str = "200"


class Recorder:
    """Wraps a backend's ``fetch``: the statements of one request, in order."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.calls: list[tuple[str, list[Any]]] = []
        self._fetch = backend.fetch

        async def fetch(sql: str, values: Sequence[Any] = (), *args: Any, **kw: Any) -> Any:
            self.calls.append((sql, list(values)))
            return await self._fetch(sql, values, *args, **kw)

        backend.fetch = fetch  # type: ignore[method-assign]
        aside = getattr(backend, "_fetch_counting", None)
        if aside is not None:  # SQLite's second connection (pages that read many rows)

            async def fetch_aside(sql: str, values: Sequence[Any] = (), *args: Any) -> Any:
                self.calls.append((sql, list(values)))
                return await aside(sql, values, *args)

            backend._fetch_counting = fetch_aside  # type: ignore[attr-defined]

    async def explain(self, sql: str, values: list[Any]) -> list[str]:
        if self.backend.name == "sqlite":
            rows = await self._fetch(f"EXPLAIN QUERY PLAN {sql}", values)
            return [str(r["detail"]) for r in rows]
        rows = await self._fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", values)
        return [str(r["QUERY PLAN"]).rstrip() for r in rows]


def _request(path: str) -> pagination.Request:
    args = parse_qs(urlsplit(path).query, keep_blank_values=True)
    return pagination.parse(args, fields=parse_fields(args))


async def _time(backend: Backend, req: pagination.Request, tries: int) -> tuple[float, float, Any]:
    times, page = [], None
    for _ in range(tries):
        start = time.perf_counter()
        page = await backend.list_books(req.query)
        times.append((time.perf_counter() - start) * 1000)
    return times[0], min(times[1:] or times), page


async def run_shape(
    backend: Backend, rec: Recorder, name: str, authors: tuple[str, ...], tries: int
) -> Row:
    shape = MATRIX_SHAPES[name]
    path = shape.first_paths(authors)[0]
    req = _request(path)
    if shape.page == "cursor":
        page = await backend.list_books(req.query)
        if page.has_more and page.last is not None:
            cursor = pagination.encode_cursor(req.ordering_key, page.last, False)
            path = f"{path}&cursor={cursor}"
            req = _request(path)
    rec.calls.clear()
    try:
        first, best, _ = await _time(backend, req, tries)
    except StatementTimeoutError:
        return Row(name, path, float("nan"), float("nan"), len(rec.calls), [], "503 timeout")
    except ValidationError as exc:
        return Row(name, path, float("nan"), float("nan"), 0, [], f"400 {exc}")
    # Once more, untimed, for the statements of a warm request: the first try sends more
    # (samples, the counts a plan is made from) than the next ones; the page's is last.
    rec.calls.clear()
    await backend.list_books(req.query)
    page_sql, page_values = rec.calls[-1]
    plan = await rec.explain(page_sql, page_values)
    return Row(name, path, first, best, len(rec.calls), plan)


async def _authors(backend: Backend) -> tuple[str, ...]:
    rows = await backend.fetch("SELECT author FROM book_author_count ORDER BY n DESC LIMIT 8")
    return tuple(r["author"] for r in rows)


async def main_async(args: argparse.Namespace) -> int:
    backend = await open_db(args.database_url, statement_timeout=STATEMENT_TIMEOUT)
    try:
        rec = Recorder(backend)
        authors = await _authors(backend)
        names = list(MATRIX_SHAPES)
        if args.shapes:
            names = [n for n in names if any(part in n for part in args.shapes.split(","))]
        if args.sample:
            names = list(sample(names, args.sample))
        rows = []
        started = time.monotonic()
        for i, name in enumerate(names, 1):
            row = await run_shape(backend, rec, name, authors, args.tries)
            rows.append(row)
            _progress(
                f"[{i}/{len(names)}] {name}: {row.answer} first {row.first_ms:.1f} ms,"
                f" best {row.best_ms:.1f} ms, {row.statements} statement(s)"
            )
            if args.verbose:
                for line in row.plan:
                    _progress(f"      {line}")
    finally:
        await close_db()
    ok = [r for r in rows if r.answer == "200"]
    ok.sort(key=lambda r: -r.best_ms)
    _out(f"\n{len(rows)} shapes in {time.monotonic() - started:.0f} s on {args.database_url}")
    _out("| shape | first ms | best ms | plan of the page's statement |")
    _out("| --- | ---: | ---: | --- |")
    for r in ok[: args.top]:
        plan = " / ".join(r.plan)[:300]
        _out(f"| {r.shape} | {r.first_ms:.1f} | {r.best_ms:.1f} | {plan} |")
    failed = [r for r in rows if r.answer != "200"]
    for r in failed:
        _out(f"| {r.shape} | {r.answer} | | |")
    if ok:
        best = sorted(r.best_ms for r in ok)
        _out(
            f"\nsummary: {len(ok)} answered, {len(failed)} not; best-of median"
            f" {best[len(best) // 2]:.1f} ms, p90 {best[int(len(best) * 0.9)]:.1f} ms,"
            f" max {best[-1]:.1f} ms"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plans", description=(__doc__ or "").split("\n\n")[0]
    )
    add = parser.add_argument
    add("--database-url", required=True, help="a seeded database (python main.py seed)")
    add("--sample", type=int, default=0, help="this many shapes of the matrix (0: all 750)")
    add("--shapes", default="", help="only shapes whose names contain one of these (a,b,...)")
    add("--tries", type=int, default=3, help="tries per shape (the first is the cold one)")
    add("--top", type=int, default=25, help="rows of the table (the slowest shapes)")
    parser.add_argument("--json", default="", help="write every row to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each plan as it runs")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except (ValueError, DatabaseError) as exc:  # a URL no backend serves, a file it cannot use
        _progress(
            f"benchmarks.plans: {exc}; give the sqlite:// or postgres:// URL of a seeded database"
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
