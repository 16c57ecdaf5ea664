"""A filtered page's plan: whichever way it reads its rows (walking the ordering's index,
or through one filter's index and sorted) it gives the same pages, and the way chosen
is the one that reads fewer rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from typing import Any

import orjson
import pytest

from db import Backend, seed
from db.errors import StatementTimeoutError
from db.query import BookFilter, BookValues, PageQuery
from db.schema import position_value

ROWS = 3_000
WIDE_PRICE = BookFilter(min_cents=10_000, max_cents=50_000)  # about 40% of the seeded rows
ONE_YEAR = BookFilter(published_after=dt.date(1960, 1, 1), published_before=dt.date(1960, 12, 31))


def _filters() -> list[BookFilter]:
    author = seed.author_name(3)
    return [
        WIDE_PRICE,
        ONE_YEAR,
        BookFilter(author=author),
        BookFilter(search="ri"),
        BookFilter(search="river"),
        BookFilter(min_cents=5_000, max_cents=50_000, published_after=dt.date(1950, 1, 1)),
        BookFilter(
            search="a", published_after=dt.date(1960, 1, 1), published_before=dt.date(1979, 12, 31)
        ),
        BookFilter(author=author, min_cents=10_000),
        BookFilter(search="river", min_cents=20_000, max_cents=90_000),
        # Long enough to be asked of the trigram index as its rarest trigrams.
        BookFilter(search=author),
        BookFilter(search=author.upper()[2:], max_cents=60_000),
        # In titles ("Wandering") and in authors' names ("Wanda").
        BookFilter(search="wand"),
        BookFilter(search="WANDA", published_after=dt.date(1950, 1, 1)),
    ]


ORDERINGS = [
    (("id", False),),
    (("title", False), ("id", False)),
    (("published_date", True), ("id", False)),
    (("price", False), ("id", False)),
    (("author", True), ("id", False)),
]
COLUMN = {
    "id": "id",
    "title": "title",
    "author": "author",
    "published_date": "published_date",
    "price": "price_cents",
}


def _matches(row: dict[str, Any], flt: BookFilter) -> bool:
    if flt.author is not None and row["author"] != flt.author:
        return False
    if flt.search and not any(flt.search.lower() in row[c].lower() for c in ("title", "author")):
        return False
    day = dt.date.fromisoformat(str(row["published_date"]))
    if flt.published_after and day < flt.published_after:
        return False
    if flt.published_before and day > flt.published_before:
        return False
    if flt.min_cents is not None and row["price_cents"] < flt.min_cents:
        return False
    return flt.max_cents is None or row["price_cents"] <= flt.max_cents


def _expected(rows: list[dict[str, Any]], flt: BookFilter, ordering: Any) -> list[int]:
    found = [r for r in rows if _matches(r, flt)]
    for name, desc in reversed(ordering):  # a stable sort per key, last key first
        found.sort(
            key=lambda r: str(r[COLUMN[name]]) if name == "published_date" else r[COLUMN[name]],
            reverse=desc,
        )
    return [r["id"] for r in found]


async def _ids(db: Backend, q: PageQuery) -> tuple[list[int], Any]:
    page = await db.list_books(q)
    return [book["id"] for book in orjson.loads(page.json)], page


def _record(db: Backend) -> list[tuple[str, str]]:
    """(which connection, statement) of every statement ``db`` sends from now on: "own"
    for the worker's connection (``fetch``), "aside" for SQLite's second one."""
    sent: list[tuple[str, str]] = []
    fetch = db.fetch

    async def own(sql: str, values: Any = (), *args: Any, **kw: Any) -> Any:
        sent.append(("own", sql))
        return await fetch(sql, values, *args, **kw)

    db.fetch = own  # type: ignore[method-assign]
    counting = getattr(db, "_fetch_counting", None)
    if counting is not None:

        async def aside(sql: str, values: Any = (), *args: Any) -> Any:
            sent.append(("aside", sql))
            return await counting(sql, values, *args)

        db._fetch_counting = aside  # type: ignore[attr-defined]
    return sent


async def test_every_plan_gives_the_same_pages_as_the_definition(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed.seed_books(db, count=ROWS)
    rows = [
        dict(r)
        for r in await db.fetch("SELECT id, title, author, published_date, price_cents FROM book")
    ]
    plans: list[Any] = [None]
    author_walks: list[Any] = []
    if db.name == "sqlite":
        from db import sqlite

        # Every way a page can read its rows: walking each ordering's index, through each
        # filter's index (SQLite's own choice: None).
        plans += [(source, ()) for source in sqlite._WALK.values()]
        # A search's matches (its titles' and its authors'), with the filter's values.
        plans += ["search"]
        # An author's books through each (author, field) index.
        plans += [(source, ()) for source in sqlite._AUTHOR_WALK.values()]
        author_walks = plans[-len(sqlite._AUTHOR_WALK) :]
    for flt, ordering in itertools.product(_filters(), ORDERINGS):
        expected = _expected(rows, flt, ordering)
        for plan in plans:
            if plan == "search":
                plan = db._search_through(flt) if flt.search else None  # type: ignore[attr-defined]
                if plan is None:
                    continue  # no trigram index finds them
            if plan in author_walks and flt.author is None:
                continue  # an (author, field) index serves only an author's books
            if db.name == "sqlite":

                async def chosen(self: Any, q: PageQuery, count: Any, plan: Any = plan) -> Any:
                    return plan, 0.0

                monkeypatch.setattr(type(db), "_source", chosen)
            q = PageQuery(filter=flt, ordering=ordering, limit=7, with_count=True)
            first, page = await _ids(db, q)
            assert first == expected[:7], (flt, ordering, plan)
            assert page.count == len(expected), (flt, ordering, plan)
            if page.last is None:
                continue
            # As a cursor carries it, and as the API decodes it.
            after = tuple(
                position_value(name, v) for (name, _), v in zip(ordering, page.last, strict=True)
            )
            cursor = PageQuery(
                filter=flt, ordering=ordering, limit=7, after=after, with_count=False
            )
            second, _ = await _ids(db, cursor)
            assert second == expected[7:14], (flt, ordering, plan)
            offset = PageQuery(filter=flt, ordering=ordering, limit=7, offset=9)
            third, _ = await _ids(db, offset)
            assert third == expected[9:16], (flt, ordering, plan)


# PostgreSQL's planner chooses with its own statistics of value ranges.
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_page_reads_the_fewer_rows_of_walking_and_sorting(db: Backend) -> None:
    from db import sqlite

    await seed.seed_books(db, count=ROWS)
    by_date = (("published_date", False), ("id", False))
    by_price = (("price", False), ("id", False))
    # 40% of the rows, ordered by another field: walk the date index, filtering as it goes
    # (SQLite's own plan sorted every match).
    wide = PageQuery(filter=WIDE_PRICE, ordering=by_date)
    assert (await db._source(wide, None))[0] == (sqlite._WALK["published_date"], ())
    # A year (under 1%) within that range, ordered by price: through the date index, the
    # matches sorted (a walk of the price range would read some 80 rows per match).
    year_in_range = BookFilter(
        min_cents=10_000,
        max_cents=50_000,
        published_after=ONE_YEAR.published_after,
        published_before=ONE_YEAR.published_before,
    )
    narrow = PageQuery(filter=year_in_range, ordering=by_price)
    assert (await db._source(narrow, None))[0] == ("book INDEXED BY book_published_cover", ())
    # What SQLite is sent has no sort of the whole range.
    fetch = db.fetch
    sent = _record(db)
    await db.list_books(wide)
    plan = await fetch(f"EXPLAIN QUERY PLAN {sent[-1][1]}", [10_000, 50_000, 21, 0])
    details = " / ".join(str(r["detail"]) for r in plan)
    assert "book_published_cover" in details and "TEMP B-TREE FOR ORDER BY" not in details, details


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_authors_books_are_read_through_the_author_field_indexes(db: Backend) -> None:
    """An author's books ordered by another field, and an author within a range, read
    the (author, field) index: neither every book of the author nor a sort of them."""
    from db import sqlite

    await seed.seed_books(db, count=ROWS)
    author = "Prolific Writer"
    # 1,000 books from 1700 to 1801, before every seeded one (1900 on).
    start = dt.date(1700, 1, 1)
    books = [
        (f"Volume {i}", start + dt.timedelta(days=37 * i), 100 + 37 * i % 9000) for i in range(1000)
    ]
    await db.create_books([BookValues(t, author, day, cents) for t, day, cents in books])
    by_price = PageQuery(
        filter=BookFilter(author=author), ordering=(("price", False), ("id", False))
    )
    assert (await db._source(by_price, None))[0] == (sqlite._AUTHOR_WALK["price"], ())
    # The author's last 22 books and most seeded ones, ordered by title: through (author,
    # date), neither the author's 1,000 books nor the 3,000 in the range.
    since = BookFilter(author=author, published_after=dt.date(1799, 1, 1))
    in_range = PageQuery(filter=since, ordering=(("title", False), ("id", False)))
    assert (await db._source(in_range, None))[0] == (sqlite._AUTHOR_WALK["published_date"], ())
    fetch = db.fetch
    sent = _record(db)
    page = await db.list_books(by_price)
    expected = sorted(range(1000), key=lambda i: (books[i][2], i))[:20]
    assert [b["title"] for b in orjson.loads(page.json)] == [f"Volume {i}" for i in expected]
    plan = await fetch(f"EXPLAIN QUERY PLAN {sent[-1][1]}", [author, 21, 0])
    details = " / ".join(str(r["detail"]) for r in plan)
    assert "book_author_price" in details and "TEMP B-TREE" not in details, details
    sent.clear()
    page = await db.list_books(in_range)
    mine = sorted((t, i) for i, (t, day, _) in enumerate(books) if day >= since.published_after)
    assert page.count == len(mine) == 22 and page.count_exact
    assert [b["title"] for b in orjson.loads(page.json)] == [t for t, _ in mine][:20]
    counted = [sql for _, sql in sent if "count(" in sql]
    assert counted and all("INDEXED BY book_author_published" in sql for sql in counted), sent


def _pages(sent: list[tuple[str, str]]) -> list[str]:
    """The page statements among ``sent`` (SQLite's gather the page's JSON)."""
    return [sql for _, sql in sent if "group_concat(json" in sql or sql.startswith("SELECT id, ")]


async def test_a_page_with_no_matches_counted_exactly_is_not_read(db: Backend) -> None:
    """An author's books searched for another author's name: the count read them all
    and found none, and the page read them all again."""
    await seed.seed_books(db, count=ROWS)
    sent = _record(db)
    for flt in (
        BookFilter(author="Nobody Here"),
        BookFilter(author=seed.author_name(3), search=seed.author_name(4)),
    ):
        sent.clear()
        page = await db.list_books(PageQuery(filter=flt, ordering=(("price", True), ("id", False))))
        assert (orjson.loads(page.json), page.count, page.count_exact, page.has_more) == (
            [],
            0,
            True,
            False,
        )
        assert sent and not _pages(sent), sent
    # Without a count the page is read as ever.
    sent.clear()
    q = PageQuery(filter=BookFilter(author="Nobody Here"), with_count=False)
    assert orjson.loads((await db.list_books(q)).json) == []
    assert _pages(sent)


def test_a_long_search_asks_the_trigram_index_for_its_rarest_trigrams() -> None:
    from db.sqlite import _fts_phrase

    shares = {"ine": 500, "nes": 200, "es ": 400, "s i": 10, " iv": 50, "iva": 90}
    shares |= {"van": 90, "ano": 60, "nov": 80, "ova": 80}
    long = BookFilter(search="Ines Ivanova")
    # The rarest of each third: "Ines", "s Iva", "anova" (not three of one word).
    assert _fts_phrase(long, shares) == '"nes" AND "s I" AND "ano"'
    assert _fts_phrase(long, None) == '"Ines Ivanova"'  # no sample yet: the phrase
    assert _fts_phrase(BookFilter(search='a"bcd'), shares) == '"a""bcd"'  # 3 trigrams
    assert _fts_phrase(BookFilter(search="ab"), shares) is None


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_walk_past_its_budget_is_read_through_the_narrowest_filter_instead(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matches clustered in the ordering (an author's name searched, ordered by author)
    made a walk read half the table; past its budget the page goes through a filter."""
    from db import sqlite

    await seed.seed_books(db, count=20_000)  # a walk of them takes several periods
    rows = [
        dict(r)
        for r in await db.fetch("SELECT id, title, author, published_date, price_cents FROM book")
    ]
    flt = BookFilter(search=seed.author_name(3))
    by_author = (("author", True), ("id", False))

    async def walk(self: Any, q: PageQuery, count: Any) -> Any:
        return (sqlite._WALK["author"], ()), 1.0  # a walk of every row for a few matches

    monkeypatch.setattr(type(db), "_source", walk)
    monkeypatch.setattr(sqlite, "WALK_BUDGET", 0)
    sent = _record(db)
    ids, page = await _ids(db, PageQuery(filter=flt, ordering=by_author, limit=7))
    assert ids == _expected(rows, flt, by_author)[:7]
    walked, through = [sql for _, sql in sent if "group_concat" in sql]  # the page statements
    assert "INDEXED BY book_author_cover" in walked
    assert "book_search MATCH" in through


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_walk_past_its_budget_is_not_tried_again_for_that_filter_and_order(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page of it spent the walk's whole budget before reading through a filter."""
    from db import sqlite

    await seed.seed_books(db, count=20_000)  # a walk of them takes several periods
    # Deep enough for the walk to take a period, cheaper than the 8,000 through prices.
    wide = PageQuery(
        filter=WIDE_PRICE, ordering=(("published_date", False), ("id", False)), offset=3_000
    )
    assert (await db._source(wide, None))[0] == (sqlite._WALK["published_date"], ())
    monkeypatch.setattr(sqlite, "WALK_BUDGET", 0)
    sent = _record(db)
    first = (await _ids(db, wide))[0]
    pages = [sql for _, sql in sent if "group_concat" in sql]
    assert ["book_published_cover" in sql for sql in pages] == [True, False]
    sent.clear()
    assert (await _ids(db, wide))[0] == first
    pages = [sql for _, sql in sent if "group_concat" in sql]
    assert len(pages) == 1 and "INDEXED BY book_price_cover" in pages[0], pages
    # A cursor page starts its walk at the cursor: still walked.
    page = await db.list_books(wide)
    assert page.last is not None
    pairs = zip(wide.ordering, page.last, strict=True)
    after = tuple(position_value(name, v) for (name, _), v in pairs)
    cursor = PageQuery(filter=WIDE_PRICE, ordering=wide.ordering, after=after, with_count=False)
    assert (await db._source(cursor, None))[0] == (sqlite._WALK["published_date"], ())
    # The other direction of the ordering is a walk of its own.
    backwards = PageQuery(
        filter=WIDE_PRICE, ordering=(("published_date", True), ("id", False)), offset=3_000
    )
    assert (await db._source(backwards, None))[0] == (sqlite._WALK["published_date"], ())


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_page_that_reads_many_rows_runs_beside_the_workers_own_connection(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the cheap requests queued on the worker's connection are not held up behind it
    (the connection that counts, as ``Prefer: count=exact`` does)."""
    from db import sqlite

    await seed.seed_books(db, count=ROWS)
    sent = _record(db)
    by_title = PageQuery(filter=WIDE_PRICE, ordering=(("title", False), ("id", False)))
    cheap, _ = await _ids(db, by_title)
    for cost in (sqlite.ASIDE_FROM + 1, 10 * sqlite.ASIDE_FROM):

        async def costly(self: Any, q: PageQuery, count: Any, cost: float = cost) -> Any:
            return (sqlite._WALK["title"], ()), cost

        monkeypatch.setattr(type(db), "_source", costly)
        assert (await _ids(db, by_title))[0] == cheap
    assert [where for where, sql in sent if "group_concat" in sql] == ["own", "aside", "aside"]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_sorts_a_rare_searchs_matches(db: Backend) -> None:
    """Rather than walk the ordering's index fetching every row it passes from the table
    (seconds at ten million rows): the ORDER BY is of expressions no index serves."""
    await seed.seed_books(db, count=ROWS)
    sent = _record(db)
    author = seed.author_name(3)
    cases = [
        # The (author, field, id) indexes serve an author's books in every order.
        (BookFilter(author=author), "price", "ORDER BY price_cents ASC, id ASC"),
        (BookFilter(author=author), "id", "ORDER BY id ASC"),
        (BookFilter(search=author), "title", "ORDER BY (title || '') ASC, (id + 0) ASC"),
        (BookFilter(search="e"), "title", "ORDER BY title ASC, id ASC"),  # most rows match
        # Matches of a few authors, bunched in the author index (the walk read half the
        # table to reach them): sorted, though a walk's estimate is cheaper.
        (BookFilter(search="ara"), "author", "ORDER BY (author || '') ASC, (id + 0) ASC"),
        (WIDE_PRICE, "title", "ORDER BY title ASC, id ASC"),  # the planner's own statistics
    ]
    for flt, field, order in cases:
        await db.list_books(PageQuery(filter=flt, ordering=((field, False), ("id", False))))
        page = [sql for _, sql in sent if sql.startswith("SELECT id, title")][-1]
        assert order in page, (flt, field, page)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_runs_costly_statements_one_at_a_time_per_worker(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As SQLite's second connection does: eight clients of an expensive search took the
    database's CPU from every other request. A cheap request does not wait for them, and
    the wait for a turn is bounded by the statement time limit."""
    from db import postgres

    await seed.seed_books(db, count=ROWS)
    monkeypatch.setattr(postgres, "ASIDE_FROM", 0)  # every search's statements are costly
    searched = PageQuery(
        filter=BookFilter(search="river"), ordering=(("title", False), ("id", False))
    )
    expected = await db.list_books(searched)
    turn = db._costly_turn  # type: ignore[attr-defined]
    await turn.acquire()  # another request's costly statement runs
    try:
        waiting = asyncio.ensure_future(db.list_books(searched))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        cheap = await db.list_books(PageQuery(filter=WIDE_PRICE))
        assert cheap.count
    finally:
        turn.release()
    assert (await waiting).json == expected.json
    # A request cancelled (its client gone) just as its turn comes gives the turn back.
    await turn.acquire()
    gone = asyncio.ensure_future(db.list_books(searched))
    await asyncio.sleep(0.1)
    turn.release()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (await asyncio.wait_for(db.list_books(searched), 10)).json == expected.json
    monkeypatch.setattr(db, "statement_timeout", 0.2)
    await turn.acquire()
    try:
        with pytest.raises(StatementTimeoutError):
            await db.list_books(searched)
    finally:
        turn.release()
    assert (await db.list_books(searched)).json == expected.json


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_compiles_no_statement_with_jit(db: Backend) -> None:
    """The planner's row guess for the count's sample was large enough to JIT-compile
    it: 290 ms for a statement that runs in 3 at ten million rows."""
    rows = await db.fetch("SHOW jit")
    assert rows[0]["jit"] == "off"


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_keeps_a_searchs_estimate_for_its_next_count(db: Backend) -> None:
    """A search counted exactly took the sample again on every request (as long as the
    count itself at ten million rows), to decide once more that it was worth counting."""
    await seed.seed_books(db, count=12_000)  # more ids than the sample reads whole
    sent = _record(db)
    q = PageQuery(filter=BookFilter(search="river"))
    counts = []
    for _ in range(3):
        page = await db.list_books(q)
        counts.append((page.count, page.count_exact))
    samples = [sql for _, sql in sent if sql.startswith("WITH RECURSIVE")]
    assert len(samples) == 1, samples
    assert counts[0][1] and counts == [counts[0]] * 3  # exact, every time


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_counts_a_search_by_its_authors_kept_counts_and_its_titles(
    db: Backend,
) -> None:
    """An author's name counted every one of the author's books from the table (2,500 at
    ten million rows); the authors' kept counts hold it, the titles are few."""
    await seed.seed_books(db, count=12_000)  # more ids than the sample reads whole
    author = seed.author_name(3)
    await db.create_books(
        [
            BookValues(f"Letters to {author}", "Someone Else", dt.date(2001, 1, 1), 1000),
            BookValues(f"{author.upper()} again", author, dt.date(2002, 1, 1), 1000),
            BookValues("Half 50%_off", "Under_Score Writer", dt.date(2003, 1, 1), 1000),
        ]
    )
    rows = [
        dict(r)
        for r in await db.fetch("SELECT id, title, author, published_date, price_cents FROM book")
    ]
    sent = _record(db)
    terms = (author, author.split()[1].lower(), "river", "50%_o", "r_sc", "%_", "0%")
    for term in terms:
        flt = BookFilter(search=term)
        page = await db.list_books(PageQuery(filter=flt))
        assert (page.count, page.count_exact) == (len(_expected(rows, flt, ORDERINGS[0])), True)
    assert len([sql for _, sql in sent if "sum(n)" in sql]) == len([t for t in terms if len(t) > 2])


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_walk_of_an_ordering_index_reads_no_row_from_the_table(db: Backend) -> None:
    """A page that walks its ordering's index and filters as it goes fetched every row it
    passed from the table (a year ordered by price at ten million rows: 2,600 rows, 16 ms).
    The indexes hold every column of a book and the seed leaves the pages all-visible: an
    index-only scan."""
    from tortoise.transactions import in_transaction

    from db import query, schema

    await seed.seed_books(db, count=ROWS)
    for flt, ordering in [
        (ONE_YEAR, (("price", False), ("id", False))),
        (WIDE_PRICE, (("published_date", False), ("id", False))),
        (BookFilter(author=seed.author_name(3)), (("id", False),)),
        (BookFilter(search="river"), (("title", True), ("id", False))),
    ]:
        clauses, values = db.where(flt)
        page = query.page_sql(schema.COLUMNS, "book", "id", tuple(clauses), ordering, False, False)
        async with in_transaction("default"):
            # Only the walk is left to the planner (a table this small it would sort).
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                await db.fetch(f"SET LOCAL {setting} = off")
            rows = await db.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {page}", [*values, 21, 0])
        plan = rows[0]["QUERY PLAN"]
        node = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        while node["Node Type"] == "Limit":
            node = node["Plans"][0]
        assert node["Node Type"] == "Index Only Scan", (flt, node)
        assert node["Heap Fetches"] == 0, (flt, node)


async def test_a_descending_order_is_read_backwards_from_its_index(db: Backend) -> None:
    """``ordering=-author`` broke its ties by ascending id: no index held that order, so
    each author's books were sorted for every page (an author has 2,400 books at ten
    million rows: 5 ms a page on SQLite). The tie-break follows the last field's
    direction: the ``(field, id)`` index read backwards is the order itself."""
    from tortoise.transactions import in_transaction

    from api.filters import parse_ordering

    await seed.seed_books(db, count=ROWS)
    sent: list[tuple[str, Any]] = []
    fetch = db.fetch

    async def spy(sql: str, values: Any = (), *args: Any, **kw: Any) -> Any:
        sent.append((sql, values))
        return await fetch(sql, values, *args, **kw)

    for flt, raw in [
        (BookFilter(), "-author"),
        (BookFilter(), "-price"),
        (BookFilter(), "-title"),
        (BookFilter(), "-published_date"),
    ]:
        ordering = parse_ordering({"ordering": [raw]})
        db.fetch = spy  # type: ignore[method-assign]
        try:
            page = await db.list_books(PageQuery(filter=flt, ordering=ordering, with_count=False))
        finally:
            db.fetch = fetch  # type: ignore[method-assign]
        assert orjson.loads(page.json), raw
        sql, values = sent[-1]
        if db.name == "sqlite":
            rows = await db.fetch(f"EXPLAIN QUERY PLAN {sql}", values)
            details = " / ".join(str(r["detail"]) for r in rows)
            assert "TEMP B-TREE" not in details, (raw, details)
            continue
        async with in_transaction("default"):
            # Only the index is left to the planner (a table this small it would sort).
            for setting in ("seqscan", "bitmapscan", "sort", "incremental_sort"):
                await db.fetch(f"SET LOCAL enable_{setting} = off")
            rows = await db.fetch(f"EXPLAIN (FORMAT JSON) {sql}", values)
        plan = rows[0]["QUERY PLAN"]
        text = plan if isinstance(plan, str) else orjson.dumps(plan).decode()
        assert "Sort" not in text, (raw, text)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_statement_planned_by_its_values_is_sent_with_them_written_in(
    db: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg prepares a statement once; after five runs PostgreSQL may keep a generic
    plan, made without the values: one for an author's name within a price range walked
    40% of ten million rows (5 s). A search's or a range's statement is sent with its
    values in it, quoted so that any text means itself."""
    await seed.seed_books(db, count=200)
    odd = "O'Brien's \\ 100% _x_?"
    (made,) = await db.create_books(
        [BookValues(title=odd, author="Ann Odd", published_date=dt.date(2001, 2, 3), price=999)]
    )
    client = db._client()
    execute = client.execute_query_dict
    sent: list[tuple[str, Any]] = []

    async def spy(sql: str, values: Any = None) -> Any:
        sent.append((sql, values))
        return await execute(sql, values)

    monkeypatch.setattr(client, "execute_query_dict", spy)
    for _ in range(8):  # past the five runs after which a generic plan may be kept
        flt = BookFilter(search=odd.lower(), max_cents=1_000)
        ids, page = await _ids(db, PageQuery(filter=flt))
        assert ids == [made.id] and page.count == 1
    searched = [(sql, values) for sql, values in sent if "ILIKE" in sql]
    assert searched and all(not values for _, values in searched), searched
    assert all("'%o''brien''s \\\\ 100\\% \\_x\\_?%'" in sql for sql, _ in searched), searched
    # Statements of other shapes keep their values apart (and their prepared plans): a
    # detail read, and a cursor page ordered by price, whose keyset bounds the price.
    sent.clear()
    await db.book_json(made.id)
    by_price = (("price", False), ("id", False))
    first = await db.list_books(PageQuery(ordering=by_price, with_count=False))
    after = tuple(position_value(n, v) for (n, _), v in zip(by_price, first.last, strict=True))
    await db.list_books(PageQuery(ordering=by_price, after=after, with_count=False))
    assert any("price_cents >= $" in sql for sql, _ in sent), sent
    assert sent and all(values for _, values in sent), sent


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_rare_search_within_a_range_is_found_through_the_search(db: Backend) -> None:
    """The planner costs testing a pattern as any other operator: it read an author's
    name within a year through the year's covering index, testing the name on 80,000
    entries at ten million rows (30 ms), not the author's 2,400 books. When the search
    alone matches fewer rows than the range, the range is written so that no index of
    its serves it; when the range is the narrower, it keeps its index."""
    await seed.seed_books(db, count=ROWS)
    rows = [
        dict(r)
        for r in await db.fetch("SELECT id, title, author, published_date, price_cents FROM book")
    ]
    by_id = (("id", False),)
    sent: list[str] = []
    fetch = db.fetch

    async def spy(sql: str, values: Any = (), *args: Any, **kw: Any) -> Any:
        sent.append(sql)
        return await fetch(sql, values, *args, **kw)

    db.fetch = spy  # type: ignore[method-assign]
    wide = BookFilter(min_cents=100, max_cents=99_999)  # every book
    for flt, led in [
        (dataclasses.replace(wide, search=seed.author_name(3)), True),
        (dataclasses.replace(ONE_YEAR, search="the"), False),
    ]:
        sent.clear()
        ids, page = await _ids(db, PageQuery(filter=flt, ordering=by_id))
        assert ids == _expected(rows, flt, by_id)[:20] and page.count == len(
            _expected(rows, flt, by_id)
        )
        reads = [sql for sql in sent if "ILIKE" in sql and "ORDER BY" in sql]  # the page
        assert reads, sent
        for sql in reads:
            assert (" + 0 >= ?" in sql) == led, (flt, sql)
