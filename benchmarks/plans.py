"""``python -m benchmarks.plans``: every list shape of the matrix, one request at a time, in
this process: how long its statements take on an idle database and what plan each runs.

Shows what a load run cannot: the plan behind a slow shape. For each shape (first page,
the cursor page after it, and the first page with ``fields=``) it runs the data layer's
``list_books`` as a request would, records the statements it sends, and prints the time
of the first try (cold caches) and the best of the next ones, with the plan of the
page's statement (SQLite's ``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN (ANALYZE,
BUFFERS)`` with the rows each node read). Ends with the slowest shapes and a summary;
``--json`` writes every row to a file.

``--baseline-url`` runs the same requests on a second database (the same seed at another
row count) and compares the two: the shapes with the largest ratio of best times first,
how many are within ``--within`` times the baseline, and with ``--plot`` a log-log
scatter of the two best times (without a baseline, each shape's best time, slowest first).

    python -m benchmarks.plans --database-url sqlite:///data/m10.sqlite3 --sample 60
    python -m benchmarks.plans --database-url sqlite:///data/bench-10000000.sqlite3 \
        --baseline-url sqlite:///data/bench-10000.sqlite3 --plot plans.png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from api import pagination
from api.errors import ValidationError
from api.filters import parse_fields
from benchmarks.matrix import MATRIX_SHAPES, sample
from db import check_url, close_db, open_db, sqlite_path
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


async def run_path(backend: Backend, rec: Recorder, name: str, path: str, tries: int) -> Row:
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


async def run_shape(
    backend: Backend, rec: Recorder, name: str, authors: tuple[str, ...], tries: int
) -> Row:
    shape = MATRIX_SHAPES[name]
    path = shape.first_paths(authors)[0]
    if shape.page == "cursor":
        req = _request(path)
        page = await backend.list_books(req.query)
        if page.has_more and page.last is not None:
            cursor = pagination.encode_cursor(req.ordering_key, page.last, False)
            path = f"{path}&cursor={cursor}"
    return await run_path(backend, rec, name, path, tries)


async def _authors(backend: Backend) -> tuple[str, ...]:
    rows = await backend.fetch("SELECT author FROM book_author_count ORDER BY n DESC LIMIT 8")
    return tuple(r["author"] for r in rows)


async def _total(backend: Backend) -> int | None:
    """The books the database holds (its kept count); None when it cannot say."""
    try:
        rows = await backend.fetch("SELECT n FROM book_count WHERE id = 1")
    except DatabaseError:
        return None
    return int(rows[0]["n"]) if rows else None


def _shown(url: str) -> str:
    """``url`` without its user and password: what the output and a plot show of it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _books(total: int | None) -> str:
    return f"{total:,} rows" if total is not None else "rows unknown"


def _check(url: str) -> None:
    """ValueError, saying why, when ``url`` cannot be a seeded database; before any run."""
    check_url(url)
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():  # opening it would make an empty one
        raise ValueError(f"no file {path}")


async def _opened(url: str) -> tuple[Backend, int | None]:
    """The database of ``url``, opened, and the books it holds; ValueError, saying why,
    when it cannot be opened or holds none."""
    try:
        backend = await open_db(url, statement_timeout=STATEMENT_TIMEOUT)
    except (ValueError, DatabaseError):
        raise
    except Exception as exc:  # the server's answer: none there, a wrong password, no database
        raise ValueError(f"cannot open {_shown(url)}: {exc}") from exc
    total = await _total(backend)
    if total == 0:
        await close_db()
        raise ValueError(f"{_shown(url)} holds no books")
    return backend, total


@contextlib.contextmanager
def _on_baseline() -> Iterator[None]:
    """The errors of the baseline's database say which URL they are about."""
    try:
        yield
    except (ValueError, DatabaseError) as exc:
        raise ValueError(f"--baseline-url: {exc}") from exc


async def _run(
    url: str, names: list[str], args: argparse.Namespace, paths: dict[str, str] | None = None
) -> tuple[list[Row], int | None]:
    """Each shape of ``names`` on the database of ``url``, and the rows it holds: at
    ``paths`` (a shape's request) when given, else at the paths made from its authors."""
    label = "" if paths is None else "baseline "
    backend, total = await _opened(url)
    try:
        rec = Recorder(backend)
        authors = await _authors(backend) if paths is None else ()
        rows = []
        for i, name in enumerate(names, 1):
            if paths is None:
                row = await run_shape(backend, rec, name, authors, args.tries)
            else:
                row = await run_path(backend, rec, name, paths[name], args.tries)
            rows.append(row)
            _progress(
                f"[{i}/{len(names)}] {label}{name}: {row.answer} first {row.first_ms:.1f} ms,"
                f" best {row.best_ms:.1f} ms, {row.statements} statement(s)"
            )
            if args.verbose:
                for line in row.plan:
                    _progress(f"      {line}")
    finally:
        await close_db()
    return rows, total


def _ratio(row: Row, base: Row) -> float | None:
    """best_ms on the database / best_ms on the baseline; None unless both answered."""
    if row.answer != "200" or base.answer != "200":
        return None
    return row.best_ms / max(base.best_ms, 1e-6)


def _compare(
    rows: list[Row], base: dict[str, Row], ratios: dict[str, float | None], top: int, within: float
) -> None:
    answered = sorted(
        ((r, ratio) for r in rows if (ratio := ratios[r.shape]) is not None),
        key=lambda pair: -pair[1],
    )
    _out("| shape | baseline best ms | best ms | ratio |")
    _out("| --- | ---: | ---: | ---: |")
    for r, ratio in answered[:top]:
        _out(f"| {r.shape} | {base[r.shape].best_ms:.2f} | {r.best_ms:.2f} | {ratio:.2f} |")
    missed = [r for r in rows if ratios[r.shape] is None]
    for r in missed:
        cells = [f"{x.best_ms:.2f}" if x.answer == "200" else x.answer for x in (base[r.shape], r)]
        _out(f"| {r.shape} | {cells[0]} | {cells[1]} | not answered |")
    values = sorted(ratio for _, ratio in answered)
    line = f"\nwithin {within:g}x of the baseline: {sum(v <= within for v in values)}"
    line += f" of {len(rows)} shapes"
    if values:
        line += (
            f"; ratio median {values[len(values) // 2]:.2f},"
            f" p90 {values[int(len(values) * 0.9)]:.2f}, max {values[-1]:.2f}"
        )
    if missed:
        line += f"; {len(missed)} not answered"
    _out(line)


def _plot(
    args: argparse.Namespace,
    rows: list[Row],
    totals: tuple[int | None, int | None],
    base: dict[str, Row],
    ratios: dict[str, float | None],
) -> None:
    from benchmarks import plots  # matplotlib: the bench extra, checked by main()

    path = Path(args.plot)
    ylabel = f"best ms: {_shown(args.database_url)}"
    if not args.baseline_url:
        bests = [r.best_ms for r in rows if r.answer == "200"]
        if not bests:
            _progress(f"benchmarks.plans: no shape answered; {path} not written")
            return
        title = f"Best ms per shape, slowest first: {_books(totals[0])}"
        plots.ranked(bests, title, ylabel, path)
    else:
        points = [
            (r.shape, base[r.shape].best_ms, r.best_ms) for r in rows if ratios[r.shape] is not None
        ]
        if not points:
            _progress(f"benchmarks.plans: no shape answered on both; {path} not written")
            return
        title = f"Best ms per shape: {_books(totals[0])} against {_books(totals[1])}"
        xlabel = f"baseline best ms: {_shown(args.baseline_url)}"
        plots.versus(points, args.within, title, xlabel, ylabel, path)
    _progress(f"wrote {path}")


async def main_async(args: argparse.Namespace) -> int:
    _check(args.database_url)
    if args.baseline_url:
        with _on_baseline():
            _check(args.baseline_url)
            await _opened(args.baseline_url)  # before the long run: a wrong URL fails first
            await close_db()
    names = list(MATRIX_SHAPES)
    if args.shapes:
        names = [n for n in names if any(part in n for part in args.shapes.split(","))]
    if args.sample:
        names = list(sample(names, args.sample))
    started = time.monotonic()
    rows, total = await _run(args.database_url, names, args)
    ok = [r for r in rows if r.answer == "200"]
    ok.sort(key=lambda r: -r.best_ms)
    shown = _shown(args.database_url)
    _out(f"\n{len(rows)} shapes in {time.monotonic() - started:.0f} s on {shown}")
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
    base: dict[str, Row] = {}
    ratios: dict[str, float | None] = {}
    base_total = None
    if args.baseline_url:
        # The same requests (the paths made from this database's authors and pages).
        with _on_baseline():
            base_rows, base_total = await _run(
                args.baseline_url, names, args, {r.shape: r.path for r in rows}
            )
        base = {r.shape: r for r in base_rows}
        ratios = {r.shape: _ratio(r, base[r.shape]) for r in rows}
        _out(
            f"\nbest ms on {shown} ({_books(total)}) against the baseline"
            f" {_shown(args.baseline_url)} ({_books(base_total)}), the largest ratio first"
        )
        _compare(rows, base, ratios, args.top, args.within)
    if args.json:
        out = []
        for r in rows:
            item = asdict(r)
            if args.baseline_url:
                b = base[r.shape]
                item["baseline_answer"] = b.answer
                item["baseline_best_ms"] = b.best_ms if b.answer == "200" else None
                item["ratio"] = ratios[r.shape]
            out.append(item)
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.plot:
        _plot(args, rows, (total, base_total), base, ratios)
    return 0


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options other than the URLs, in one line; None when nothing."""
    if args.tries < 1:
        return f"--tries {args.tries}: give 1 or more"
    if args.within <= 0:
        return f"--within {args.within:g}: give a ratio above 0, e.g. 3"
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        return f"--plot {args.plot}: give a file name ending in .png"
    for option, value in (("--json", args.json), ("--plot", args.plot)):
        if value and not Path(value).parent.is_dir():
            return f"{option} {value}: no directory {Path(value).parent}; make it first"
    if args.plot:
        try:
            import benchmarks.plots  # noqa: F401
        except ImportError as exc:
            return f"--plot needs {exc.name}; install the bench extra: pip install -e '.[bench]'"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plans", description=(__doc__ or "").split("\n\n")[0]
    )
    add = parser.add_argument
    add("--database-url", required=True, help="a seeded database (python main.py seed)")
    add(
        "--baseline-url",
        default="",
        help="a second seeded database (the same seed, e.g. at 10,000 rows): the same"
        " requests on it, and the ratio of the best times",
    )
    add("--sample", type=int, default=0, help="this many shapes of the matrix (0: all 750)")
    add("--shapes", default="", help="only shapes whose names contain one of these (a,b,...)")
    add("--tries", type=int, default=3, help="tries per shape (the first is the cold one)")
    add("--top", type=int, default=25, help="rows of each table (the slowest shapes)")
    add("--within", type=float, default=3.0, help="the target ratio to the baseline (3: 3x)")
    add("--json", default="", help="write every row to this file")
    add("--plot", default="", help="draw the best times into this PNG file (the bench extra)")
    add("-v", "--verbose", action="store_true", help="print each plan as it runs")
    args = parser.parse_args(argv)
    problem = _problem(args)
    if problem:
        _progress(f"benchmarks.plans: {problem}")
        return 2
    try:
        return asyncio.run(main_async(args))
    except (ValueError, DatabaseError) as exc:  # a URL no backend serves, a file it cannot use
        _progress(
            f"benchmarks.plans: {exc}; give the sqlite:// or postgres:// URL of a seeded database"
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
