"""The scenarios and targets of a benchmark run, as typed specs.

A scenario is one request shape: a wrk Lua script for closed-loop throughput runs and the
same shape in Python for the open-loop generator (``benchmarks.openloop``). A target is
a server to measure: the service itself, or a baseline under ``benchmarks/baselines/``.
Adding a target or a scenario is adding an entry here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote

import orjson

WRK_DIR: Final = Path(__file__).resolve().parent / "wrk"
JSON_HEADERS: Final = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Context:
    """What the requests of a run draw from: the seeded rows and a token."""

    rows: int
    token: str = ""
    authors: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    cursors: tuple[str, ...] = ()
    # The request paths of the list-shape matrix (benchmarks.matrix), by scenario name.
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ETags learnt from responses (id -> tag), for the If-Match writes of "mixed".
    tags: dict[int, str] = field(default_factory=dict)

    def auth(self) -> dict[str, str]:
        return {**JSON_HEADERS, "Authorization": f"Token {self.token}"}

    def wrk_env(self, scenario: str = "") -> dict[str, str]:
        """The same context for the Lua scripts, which read it with os.getenv."""
        return {
            "BENCH_PATHS": "|".join(self.paths.get(scenario, ())),
            "BENCH_ROWS": str(self.rows),
            "BENCH_TOKEN": self.token,
            "BENCH_AUTHORS": "|".join(self.authors),
            "BENCH_TERMS": "|".join(self.terms),
            "BENCH_CURSORS": "|".join(self.cursors),
        }


Builder = Callable[[Context, random.Random], Request]


def _book(rng: random.Random) -> dict[str, str]:
    n = rng.randrange(1_000_000)
    return {
        "title": f"Benchmark Book {n}",
        "author": f"Load Tester {n % 997}",
        "published_date": f"{rng.randrange(1950, 2025)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d}",
        "price": f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}",
    }


def _detail(ctx: Context, rng: random.Random) -> Request:
    return Request("GET", f"/books/{rng.randint(1, ctx.rows)}/")


def _filtered(ctx: Context, rng: random.Random) -> Request:
    return Request("GET", f"/books/?author={quote(rng.choice(ctx.authors))}")


def _search(ctx: Context, rng: random.Random) -> Request:
    return Request("GET", f"/books/?search={quote(rng.choice(ctx.terms))}")


def _cursor(ctx: Context, rng: random.Random) -> Request:
    return Request("GET", f"/books/?limit=20&cursor={rng.choice(ctx.cursors)}")


def _create(ctx: Context, rng: random.Random) -> Request:
    return Request("POST", "/books/", ctx.auth(), orjson.dumps(_book(rng)))


def _bulk(ctx: Context, rng: random.Random) -> Request:
    return Request("POST", "/books/", ctx.auth(), orjson.dumps([_book(rng) for _ in range(100)]))


def _patch(ctx: Context, rng: random.Random) -> Request:
    body = orjson.dumps({"price": f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}"})
    return Request("PATCH", f"/books/{rng.randint(1, ctx.rows)}/", ctx.auth(), body)


def _mixed(ctx: Context, rng: random.Random) -> Request:
    """90% detail reads; 10% PATCH with If-Match, on a book whose tag a read has shown."""
    if rng.random() >= 0.1 or not ctx.tags:
        return _detail(ctx, rng)
    book_id, tag = ctx.tags.popitem()
    body = orjson.dumps({"price": f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}"})
    return Request("PATCH", f"/books/{book_id}/", {**ctx.auth(), "If-Match": tag}, body)


def _static(path: str) -> Builder:
    def build(ctx: Context, rng: random.Random) -> Request:
        return Request("GET", path)

    return build


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    script: str  # file name under benchmarks/wrk/
    build: Builder
    writes: bool = False
    # HTTP statuses that are a legitimate answer here, reported apart from errors
    # (412: two connections raced on one book with the same tag).
    expected_conflicts: tuple[int, ...] = ()

    @property
    def script_path(self) -> Path:
        return WRK_DIR / self.script


# Reads first, then the writes that only change rows, then the ones that add rows: a
# read scenario always sees the table as seeded.
SCENARIOS: Final = {
    s.name: s
    for s in (
        Scenario("detail", "GET /books/{id}/, a random seeded id", "detail.lua", _detail),
        Scenario(
            "list_first",
            "GET /books/?limit=20: first page with count",
            "list_first.lua",
            _static("/books/?limit=20"),
        ),
        Scenario(
            "list_filtered",
            "GET /books/?author=A: exact author, with count",
            "list_filtered.lua",
            _filtered,
        ),
        Scenario(
            "list_by_price",
            "GET /books/?ordering=price&limit=20, with count",
            "list_by_price.lua",
            _static("/books/?ordering=price&limit=20"),
        ),
        Scenario(
            "search",
            "GET /books/?search=T: substring of title or author, with count",
            "search.lua",
            _search,
        ),
        Scenario(
            "cursor_deep",
            "GET /books/?limit=20&cursor=C: a cursor from a next link 25-75% deep",
            "cursor_deep.lua",
            _cursor,
        ),
        Scenario(
            "mixed",
            "90% detail, 10% PATCH with If-Match from an earlier read",
            "mixed.lua",
            _mixed,
            writes=True,
            expected_conflicts=(412,),
        ),
        Scenario(
            "patch",
            "PATCH /books/{id}/ {price}, a random seeded id",
            "patch.lua",
            _patch,
            writes=True,
        ),
        Scenario("create", "POST /books/, one book", "create.lua", _create, writes=True),
        Scenario(
            "bulk_create",
            "POST /books/, an array of 100 books",
            "bulk_create.lua",
            _bulk,
            writes=True,
        ),
    )
}
# What the ceiling answers: the request shape of "detail", against a constant body.
CEILING_SCENARIO: Final = Scenario(
    "ceiling",
    "GET /books/{id}/ on the bare Sanic app: a constant JSON body",
    "detail.lua",
    _detail,
)


@dataclass(frozen=True)
class Target:
    """A server to measure. ``command`` runs from the repository root with HOST, PORT,
    WORKERS and DATABASE_URL in its environment."""

    name: str
    command: tuple[str, ...]
    ready_path: str
    scenarios: tuple[str, ...] | None  # None: every scenario
    needs_database: bool = True
    sqlite_only: bool = False


SERVICE: Final = Target("service", ("main.py", "serve"), "/readyz", None)
CEILING: Final = Target(
    "ceiling", ("-m", "benchmarks.baselines.ceiling"), "/", ("ceiling",), needs_database=False
)
RAW: Final = Target(
    "raw",
    ("-m", "benchmarks.baselines.raw"),
    "/books/1/",
    (
        "detail",
        "list_first",
        "list_filtered",
        "list_by_price",
        "search",
        "cursor_deep",
        "mixed",
        "patch",
        "create",
        "bulk_create",
    ),
    sqlite_only=True,
)
TARGETS: Final = {t.name: t for t in (SERVICE, RAW, CEILING)}
