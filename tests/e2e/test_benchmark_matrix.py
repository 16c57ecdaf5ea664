"""The benchmark's list-shape matrix, listed without servers: every filter alone and in
pairs, every ordering both ways, first pages, cursor pages and ``fields=``."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import matrix  # noqa: E402
from benchmarks.scenarios import SCENARIOS  # noqa: E402

LIST_PARAMS = {
    "author",
    "search",
    "published_after",
    "published_before",
    "min_price",
    "max_price",
    "ordering",
    "limit",
    "fields",
}
FIELDS = ("id", "title", "author", "published_date", "price")


def _split(name: str) -> tuple[tuple[str, ...], str, str]:
    assert name.startswith("m_"), name
    filters, ordering, page = name[2:].split("__")
    return (() if filters == "all" else tuple(filters.split("+"))), ordering, page


def test_every_filter_alone_and_in_pairs_with_every_ordering_and_page() -> None:
    names = list(matrix.MATRIX)
    assert len(names) == len(set(names))
    shapes: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for name in names:
        filters, ordering, page = _split(name)
        shapes.setdefault(filters, set()).add((ordering, page))
    every = {(f"{sign}{f}", page) for f in FIELDS for sign in ("", "-") for page in matrix.PAGES}
    assert set(matrix.PAGES) == {"first", "cursor", "fields"}
    assert all(combos == every for combos in shapes.values())
    alone = {f[0] for f in shapes if len(f) == 1}
    assert alone == set(matrix.FILTERS)
    for lengths in ("1", "2", "3", "w"):
        assert {f"search_{lengths}c", f"search_{lengths}r"} <= alone
    assert {"author", "date_after", "date_before", "date_range"} <= alone
    assert {"price_min", "price_max", "price_range"} <= alone
    pairs = {frozenset(f) for f in shapes if len(f) == 2}
    kinds = {frozenset(matrix.FILTERS[f].kind for f in pair) for pair in pairs}
    assert kinds == {
        frozenset(k) for k in itertools.combinations(("author", "search", "date", "price"), 2)
    }
    assert () in shapes
    assert len(names) == len(shapes) * len(every)


def test_first_pages_ask_for_their_shape() -> None:
    for name, shape in matrix.MATRIX_SHAPES.items():
        paths = shape.first_paths(("Ada Okafor", "Chen Lindqvist"))
        assert paths, name
        for path in paths:
            parts = urlsplit(path)
            assert parts.path == "/books/"
            params = dict(parse_qsl(parts.query))
            assert set(params) <= LIST_PARAMS
            assert params["ordering"] == shape.ordering
            assert ("fields" in params) == (shape.page == "fields")
            for f in shape.filters:
                wanted = {k for value in matrix.FILTERS[f].values(("A",)) for k, _ in value}
                assert wanted <= set(params), (name, f)
        assert matrix.MATRIX[name].script_path.exists()


def test_cursor_pages_follow_next_from_the_first_page() -> None:
    cursor, first = "m_price_range__-price__cursor", "m_price_range__-price__first"

    def get(path: str) -> tuple[int, bytes]:
        page = {"next": f"http://127.0.0.1:1{path}&cursor=abc", "results": []}
        return 200, json.dumps(page).encode()

    paths, notes = matrix.resolve([cursor, first], ("A",), get)
    assert not notes
    assert all(p.startswith("/books/?") and p.endswith("&cursor=abc") for p in paths[cursor])
    assert all("cursor=" not in p for p in paths[first])

    paths, notes = matrix.resolve([cursor], ("A",), lambda path: (200, b'{"next": null}'))
    assert paths[cursor] == matrix.MATRIX_SHAPES[cursor].first_paths(("A",))
    assert len(notes) == 1


def test_sample_is_a_deterministic_subset_and_defaults_stay() -> None:
    a = matrix.sample(matrix.MATRIX, 25)
    assert a == matrix.sample(list(matrix.MATRIX), 25)
    assert len(a) == 25 and set(a) <= set(matrix.MATRIX)
    assert not any(name.startswith("m_") for name in SCENARIOS)
    assert set(SCENARIOS) <= set(matrix.ALL)


def test_cli_lists_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip(
        "psutil", reason="the bench extra is not installed (pip install -e '.[bench]')"
    )
    from benchmarks import cli

    assert cli.main(["--scenarios", "matrix", "--matrix-sample", "7", "--list-matrix"]) == 0
    assert capsys.readouterr().out.split() == list(matrix.sample(matrix.MATRIX, 7))
    args = cli.parser().parse_args(["--scenarios", "detail,matrix"])
    assert args.scenarios == ("detail", *matrix.MATRIX)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["--scenarios", "m_nothing__id__first"])
