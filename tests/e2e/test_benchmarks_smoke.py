"""The benchmark runner end to end: a one-second run of one scenario against the real
server, through the runner's own code path. Figures are never asserted, only the shape."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (Debian: apt-get install wrk)"
)
BENCH_EXTRA = "the bench extra is not installed (pip install -e '.[bench]')"

LATENCY_KEYS = {"p50", "p90", "p99", "p99.9"}
RECORD_KEYS = {
    "target",
    "scenario",
    "rows",
    "mode",
    "concurrency",
    "requests",
    "rps",
    "latency_ms",
    "non_2xx",
    "socket_errors",
    "error_rate",
    "valid",
    "server",
}


@pytest.mark.server
@needs_wrk
def test_one_second_run_writes_a_result_record(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason=BENCH_EXTRA)
    from benchmarks.runner import Config, run

    config = Config(
        scenarios=("detail",),
        concurrency=(4,),
        duration=1.0,
        warmup=0.0,
        rows=(200,),
        targets=("service", "ceiling"),
        out=tmp_path,
        plots=False,
        work_root=tmp_path / "work",
    )
    doc, prefix = run(config, log=lambda line: None)

    saved = json.loads(prefix.with_suffix(".json").read_text())
    assert prefix.with_suffix(".md").exists()
    assert saved["machine"]["cores"] and saved["config"]["scenarios"] == ["detail"]
    by_target = {r["target"]: r for r in saved["records"] if r["mode"] == "closed"}
    assert set(by_target) == {"service", "ceiling"}
    record = by_target["service"]
    assert RECORD_KEYS <= set(record)
    assert (record["scenario"], record["rows"], record["concurrency"]) == ("detail", 200, 4)
    assert LATENCY_KEYS <= set(record["latency_ms"])
    assert {"connect", "read", "write", "timeout"} <= set(record["socket_errors"])
    assert {"cpu_pct", "peak_rss_mb", "peak_process_rss_mb"} <= set(record["server"])
    (row,) = [r for r in saved["summary"]["closed"] if r["scenario"] == "detail"]
    assert {"rps", "p99", "x_ceiling"} <= set(row)


def test_pin_splits_the_cpus_between_the_servers_and_wrk() -> None:
    import os

    pytest.importorskip("psutil", reason=BENCH_EXTRA)  # benchmarks.runner imports it
    from benchmarks.runner import Config

    assert Config().cpus() == (None, None)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        with pytest.raises(ValueError, match="at least 2 CPUs"):
            Config(pin=True).check()
        return
    server, wrk = Config(pin=True).cpus()
    assert server == str(cpus[-1])
    assert wrk is not None and str(cpus[-1]) not in wrk.split(",")
    with pytest.raises(ValueError, match="--workers 1"):
        Config(pin=True, workers=2).check()


@pytest.mark.server
@needs_wrk
def test_the_isolation_run_writes_its_table(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason=BENCH_EXTRA)
    import os
    import subprocess

    url = f"sqlite://{tmp_path / 'iso.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url}
    seed = [sys.executable, "main.py", "seed", "--count", "2000", "--replace"]
    subprocess.run(seed, cwd=ROOT, env=env, check=True, capture_output=True)
    args = ["--database-url", url, "--rows", "2000", "--duration", "1", "--warmup", "0.2"]
    args += ["--out", str(tmp_path / "out"), "--no-plots", "--detail-clients", "4"]
    args += ["--heavy-clients", "2", "--heavy", "/books/?search=e&ordering=title&limit=100"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.isolation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "out" / "isolation_1.json").read_text())
    assert doc["alone"]["rps"] > 0 and doc["beside"]["rps"] > 0 and doc["heavy"]["rps"] > 0
    assert 0 < doc["detail_kept"] == round(doc["beside"]["rps"] / doc["alone"]["rps"], 3)
    table = (tmp_path / "out" / "isolation_1.md").read_text()
    assert "| detail + heavy |" in table and "kept" in table
    unseeded = subprocess.run(
        [sys.executable, "-m", "benchmarks.isolation", "--database-url", url, "--rows", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unseeded.returncode == 2
    assert len(unseeded.stdout.strip().splitlines()) == 1
    assert "python main.py seed --count 5" in unseeded.stdout
