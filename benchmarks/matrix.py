"""The list-shape matrix: every filter alone and in pairs, with every ordering ascending
and descending, as a first page, a cursor page and a first page with ``fields=``.

A shape is ``m_<filters>__<ordering>__<page>``, e.g. ``m_price_range__-published_date__first``
or ``m_author+search_1c__title__cursor``. Each filter has a few values of about the same
selectivity on the seeded population (``db.seed``); a request picks one at random. The
first-page paths are known before a run (the authors come from the seeded rows); the
cursor paths are found at run time by following ``next`` from each first page
(``resolve``), so every cursor is one the service itself handed out.

The scenarios run through ``wrk/paths.lua`` with the shape's paths in ``BENCH_PATHS``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from benchmarks.scenarios import SCENARIOS, Context, Request, Scenario
from db.seed import author_name

LIMIT: Final = 20
FIELDS: Final = "id,title"
ORDERINGS: Final = tuple(
    f"{sign}{name}"
    for name in ("id", "title", "author", "published_date", "price")
    for sign in ("", "-")
)
PAGES: Final = ("first", "cursor", "fields")

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Filter:
    name: str
    kind: str  # filters of one kind are never paired
    description: str
    # Each value is one set of query parameters; a function of the authors that exist.
    values: Callable[[tuple[str, ...]], tuple[Params, ...]]


def _fixed(*values: Params) -> Callable[[tuple[str, ...]], tuple[Params, ...]]:
    return lambda authors: values


def _search(*terms: str) -> Callable[[tuple[str, ...]], tuple[Params, ...]]:
    return _fixed(*((("search", t),) for t in terms))


# Shares of the seeded rows each value matches (measured on 20,000 seeded books).
FILTERS: Final = {
    f.name: f
    for f in (
        Filter(
            "author",
            "author",
            "author=A, an author that exists (about 1/4096 of the rows)",
            lambda authors: tuple((("author", a),) for a in authors[:8])
            or ((("author", author_name(0)),)),
        ),
        Filter(
            "search_1c", "search", "search, 1 common character: e, a (97-99%)", _search("e", "a")
        ),
        Filter("search_1r", "search", "search, 1 rare character: x, j (5-9%)", _search("x", "j")),
        Filter(
            "search_2c", "search", "search, 2 common characters: he, th (78%)", _search("he", "th")
        ),
        Filter(
            "search_2r", "search", "search, 2 rare characters: ks, ws (0.4%)", _search("ks", "ws")
        ),
        Filter(
            "search_3c",
            "search",
            "search, 3 common characters: the, and (29-77%)",
            _search("the", "and"),
        ),
        Filter(
            "search_3r",
            "search",
            "search, 3 rare characters: wns, lds (0.3%)",
            _search("wns", "lds"),
        ),
        Filter(
            "search_wc",
            "search",
            "search, a common word: river, shadow, tower (2.4%)",
            _search("river", "shadow", "tower"),
        ),
        Filter(
            "search_wr",
            "search",
            "search, a rare term: an author's full name (about 1/4096)",
            _search(author_name(7), author_name(1234), author_name(4000)),
        ),
        Filter(
            "date_after",
            "date",
            "published_after, open range of about 55-60%",
            _fixed(*((("published_after", f"{y}-01-01"),) for y in (1950, 1953, 1956))),
        ),
        Filter(
            "date_before",
            "date",
            "published_before, open range of about 8-12%",
            _fixed(*((("published_before", f"{y}-01-01"),) for y in (1910, 1912, 1915))),
        ),
        Filter(
            "date_range",
            "date",
            "published_after and published_before, one year (0.8%)",
            _fixed(
                *(
                    (("published_after", f"{y}-01-01"), ("published_before", f"{y}-12-31"))
                    for y in (1931, 1960, 1987, 2011)
                )
            ),
        ),
        Filter(
            "price_min",
            "price",
            "min_price, open range of about 80-90%",
            _fixed(*((("min_price", p),) for p in ("100", "150", "200"))),
        ),
        Filter(
            "price_max",
            "price",
            "max_price, open range of about 5-7%",
            _fixed(*((("max_price", p),) for p in ("50", "60", "70"))),
        ),
        Filter(
            "price_range",
            "price",
            "min_price and max_price, a range of 40%",
            _fixed(
                *(
                    (("min_price", lo), ("max_price", hi))
                    for lo, hi in (("100", "500"), ("200", "600"), ("300", "700"))
                )
            ),
        ),
    )
}
# What pairs are made of: one filter of each kind, two for search (the widest and the
# narrowest term), ranges for dates and prices.
PAIRED: Final = ("author", "search_1c", "search_wr", "date_range", "price_range")


def _shapes() -> tuple[tuple[str, ...], ...]:
    alone = [(name,) for name in FILTERS]
    pairs = [
        (a, b) for a, b in itertools.combinations(PAIRED, 2) if FILTERS[a].kind != FILTERS[b].kind
    ]
    return ((),) + tuple(alone) + tuple(pairs)


SHAPES: Final = _shapes()


def scenario_name(filters: tuple[str, ...], ordering: str, page: str) -> str:
    return f"m_{'+'.join(filters) or 'all'}__{ordering}__{page}"


@dataclass(frozen=True)
class Shape:
    filters: tuple[str, ...]
    ordering: str
    page: str

    @property
    def name(self) -> str:
        return scenario_name(self.filters, self.ordering, self.page)

    def first_paths(self, authors: tuple[str, ...]) -> tuple[str, ...]:
        """The first-page paths of this shape (the pages ``cursor`` starts from)."""
        choices = [FILTERS[f].values(authors) for f in self.filters]
        out = []
        for combo in itertools.product(*choices) if choices else [()]:
            params: list[tuple[str, str]] = [p for value in combo for p in value]
            params += [("ordering", self.ordering), ("limit", str(LIMIT))]
            if self.page == "fields":
                params.append(("fields", FIELDS))
            out.append("/books/?" + urlencode(params))
        # At most 6 paths a shape: enough to vary the request, few to resolve.
        return tuple(out[:6])


def _build(name: str) -> Callable[[Context, random.Random], Request]:
    def build(ctx: Context, rng: random.Random) -> Request:
        return Request("GET", rng.choice(ctx.paths[name]))

    return build


def _describe(shape: Shape) -> str:
    what = " and ".join(FILTERS[f].description for f in shape.filters) or "no filter"
    page = {
        "first": "first page",
        "cursor": "the page after the first (a cursor from its next link)",
        "fields": f"first page, fields={FIELDS}",
    }[shape.page]
    return f"GET /books/: {what}; ordering={shape.ordering}; {page}"


MATRIX_SHAPES: Final = {
    s.name: s
    for s in (
        Shape(filters, ordering, page)
        for filters in SHAPES
        for ordering in ORDERINGS
        for page in PAGES
    )
}
MATRIX: Final = {
    name: Scenario(name, _describe(shape), "paths.lua", _build(name))
    for name, shape in MATRIX_SHAPES.items()
}

# Every scenario a run can name: the default ones and the matrix.
ALL: Final = {**SCENARIOS, **MATRIX}


def sample(names: Iterable[str], n: int) -> tuple[str, ...]:
    """A deterministic subset of ``n`` matrix scenarios (the same on every machine), in
    matrix order: those with the smallest hash of their name."""
    names = list(names)
    keep = set(sorted(names, key=lambda x: hashlib.sha256(x.encode()).digest())[:n])
    return tuple(x for x in names if x in keep)


def resolve(
    names: Iterable[str],
    authors: tuple[str, ...],
    get: Callable[[str], tuple[int, bytes]],
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The paths of each matrix scenario: first pages as built, cursor pages by following
    ``next`` from each first page with ``get(path) -> (status, body)``. Also the notes
    worth a log line (a shape whose first pages have no next page runs its first pages)."""
    paths: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    for name in names:
        shape = MATRIX_SHAPES[name]
        first = shape.first_paths(authors)
        if shape.page != "cursor":
            paths[name] = first
            continue
        found = []
        for path in first:
            status, body = get(path)
            if status != 200:
                notes.append(f"{name}: GET {path} answered {status}: {body[:200]!r}")
                continue
            following = json.loads(body).get("next")
            if following:
                found.append("/books/?" + following.split("?", 1)[1])
        if not found:
            notes.append(f"{name}: no first page has a next page; its first pages are run")
        paths[name] = tuple(found) or first
    return paths, notes
