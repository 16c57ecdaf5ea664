"""Run benchmarks/locustfile.py headless against a running server; read its CSV summary."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.scenarios import Context
from benchmarks.servers import ROOT

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def _number(row: dict[str, str], key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


def run(
    url: str,
    ctx: Context,
    *,
    users: int,
    duration: float,
    csv_prefix: Path,
    rows: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One headless run; locust's CSV files land at ``csv_prefix``_stats.csv and so on."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(max(1, users // 2)),
        "-t",
        f"{max(1, int(duration))}s",
        "--host",
        url,
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "5",
    ]
    env = {**os.environ, "BENCH_ROWS": str(ctx.rows), "BENCH_TOKEN": ctx.token}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration + 120
    )
    stats = Path(f"{csv_prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics ({done.returncode}): {done.stderr[-2000:]}")
    with open(stats, newline="") as fh:
        table = list(csv.DictReader(fh))
    total = next(r for r in table if r["Name"] == "Aggregated")
    record = {
        "mode": "locust",
        "target": "service",
        "scenario": "locust",
        "rows": rows,
        "users": users,
        "duration_s": duration,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": _number(total, "Requests/s"),
        "latency_ms": {
            "p50": _number(total, "50%"),
            "p90": _number(total, "90%"),
            "p99": _number(total, "99%"),
            "p99.9": _number(total, "99.9%"),
        },
        "by_name": {
            r["Name"]: {
                "type": r["Type"],
                "requests": int(r["Request Count"]),
                "failures": int(r["Failure Count"]),
                "p50": _number(r, "50%"),
                "p99": _number(r, "99%"),
            }
            for r in table
            if r["Name"] != "Aggregated"
        },
        "csv": [str(p.name) for p in sorted(csv_prefix.parent.glob(f"{csv_prefix.name}_*.csv"))],
    }
    log(
        f"  locust   {users} users {record['rps']:.1f} req/s p99 {record['latency_ms']['p99']} ms "
        f"failures {record['failures']}"
    )
    return record
