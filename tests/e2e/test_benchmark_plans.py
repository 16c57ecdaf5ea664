"""``python -m benchmarks.plans`` on a small seeded database (and compared with a smaller
one of the same seed), and the benchmark's check that a database already holds the seeded
rows (so a ten-million-row seed is not redone)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _seed(url: str, rows: int, seed: int) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    args = ["seed", "--count", str(rows), "--seed", str(seed), "--replace"]
    subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, check=True)


def test_plans_lists_every_sampled_shape_with_its_plan(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'plans.sqlite3'}"
    _seed(url, 400, 1)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.plans", "--database-url", url, "--sample", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": 200 first ") == 12
    assert "| shape | first ms | best ms | plan of the page's statement |" in done.stdout
    assert "summary: 12 answered, 0 not" in done.stdout
    assert "SCAN" in done.stdout or "SEARCH" in done.stdout  # EXPLAIN QUERY PLAN's words


def _plans(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.plans", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_plans_compares_each_shape_with_a_baseline_of_the_same_seed(tmp_path: Path) -> None:
    url, baseline = (f"sqlite://{tmp_path / f'plans{n}.sqlite3'}" for n in (600, 300))
    _seed(url, 600, 3)
    _seed(baseline, 300, 3)
    plot, rows = tmp_path / "x.png", tmp_path / "x.json"
    args = ["--database-url", url, "--baseline-url", baseline, "--sample", "8", "--json", str(rows)]
    drawn = importlib.util.find_spec("matplotlib") is not None  # the bench extra
    done = _plans(*args, *(["--plot", str(plot)] if drawn else []))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("] baseline ") == 8
    assert "(600 rows) against the baseline" in done.stdout
    assert "| shape | baseline best ms | best ms | ratio |" in done.stdout
    summary = r"^within 3x of the baseline: [0-8] of 8 shapes; ratio median "
    assert re.search(summary, done.stdout, re.MULTILINE), done.stdout
    written = json.loads(rows.read_text())
    assert len(written) == 8
    assert all("ratio" in r and "baseline_best_ms" in r for r in written)

    wrong = _plans("--database-url", url, "--baseline-url", "mysql://x/y")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "benchmarks.plans: --baseline-url: unsupported scheme 'mysql';"
        " give the sqlite:// or postgres:// URL of a seeded database"
    ]

    pytest.importorskip("matplotlib", reason="the plot needs the bench extra")
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plans_says_in_one_line_what_is_wrong_with_the_url() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.plans", "--database-url", "mysql://x/y"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "benchmarks.plans: unsupported scheme 'mysql';"
        " give the sqlite:// or postgres:// URL of a seeded database"
    ]


def test_a_database_holding_the_seeded_rows_is_not_seeded_again(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the benchmark runner needs the bench extra")
    sys.path.insert(0, str(ROOT))
    from benchmarks.dataset import already_seeded

    url = f"sqlite://{tmp_path / 'seeded.sqlite3'}"
    _seed(url, 300, 5)
    assert already_seeded(url, 300, 5)
    assert not already_seeded(url, 300, 6)  # another seed's books
    assert not already_seeded(url, 299, 5)
    import sqlite3

    with sqlite3.connect(tmp_path / "seeded.sqlite3") as conn:
        conn.execute("UPDATE book SET price_cents = price_cents + 1 WHERE id = 1")
    assert not already_seeded(url, 300, 5)  # a run's write
