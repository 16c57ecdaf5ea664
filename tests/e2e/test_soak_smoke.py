"""``python -m benchmarks.soak`` for 15 s on SQLite with one worker killed after 8 s: the
report has its parts, no acknowledged write is lost, and the server answered after the kill.
Whether the killed worker is replaced is the soak's finding, not this test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("psutil", reason="the soak needs the bench extra (psutil)")
pytest.importorskip("matplotlib", reason="the soak needs the bench extra (matplotlib)")


@pytest.mark.server
def test_soak_with_a_kill(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    prefix = tmp_path / "soak"
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.soak",
            "--minutes", "0.25", "--kill-every", "8", "--clients", "4", "--rows", "200",
            "--timeout", "5", "--stop-timeout", "20",
            "--out", str(prefix), "--work-dir", str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(prefix.with_suffix(".json").read_text())
    assert prefix.with_suffix(".md").read_text().startswith("# Soak")
    assert prefix.with_suffix(".png").stat().st_size > 0

    assert len(doc["start_workers"]) == 2
    (kill,) = doc["kills"]
    assert kill["pid"] in doc["start_workers"] and "-Server-" in kill["worker"]
    assert {"replaced_by", "replaced_after_s"} <= kill.keys()
    assert [m["minute"] for m in doc["minutes"]] == [1]
    assert {"exited", "exit_code", "seconds", "workers_left"} <= doc["stop"].keys()

    check = doc["verify"]
    assert check["acknowledged"]["create"] > 0 and check["acknowledged"]["total"] > 0
    assert check["lost_writes"] == 0
    assert check["duplicates"] == 0  # creates retried with their Idempotency-Key
    assert check["integrity_check"] == "ok"
    assert check["counter_ok"] and check["author_counts_ok"]
    assert check["ok"]

    # The instance kept answering once a worker was gone.
    after = [s for s in doc["seconds"] if kill["t"] + 1 <= s["t"] < doc["stop"]["t"] - 1]
    assert after and sum(s["ok"] for s in after) > 0
    # Each second's sample has the main process's RSS and each live worker's, by pid.
    pid = str(kill["pid"])
    sampled = [s for s in doc["seconds"] if s["workers"] is not None]
    assert all(s["main_rss_mb"] for s in sampled if s["t"] < doc["stop"]["t"])
    assert any(pid in s["worker_rss_mb"] for s in sampled if s["t"] <= kill["t"])
    assert not any(pid in s["worker_rss_mb"] for s in sampled if s["t"] > kill["t"])
