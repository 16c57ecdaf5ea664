"""Closed-loop load with wrk: one run of one Lua script, and its JSON summary line.

wrk keeps ``-c`` connections busy, each sending its next request as soon as the last one
is answered: the throughput is the server's maximum at that concurrency, and its
latencies hide the waits of requests never sent while the server stalled (coordinated
omission). Latency at a fixed rate is ``benchmarks.openloop``'s job.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

MARKER: Final = "BENCHJSON "


class LoadError(RuntimeError):
    """The load generator failed or printed no summary."""


def wrk_path() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkRun:
    url: str
    script: Path
    connections: int
    threads: int
    duration: float
    timeout_s: float = 10.0
    cpus: str | None = None  # taskset's CPU list for wrk (--pin)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(run: WrkRun, env: Mapping[str, str]) -> dict[str, Any]:
    """The summary of one wrk run: requests, errors and latency percentiles (ms)."""
    wrk = wrk_path()
    if wrk is None:
        raise LoadError("wrk is not installed (Debian: apt-get install wrk)")
    threads = max(1, min(run.threads, run.connections))
    command = [
        *(["taskset", "-c", run.cpus] if run.cpus else []),
        wrk,
        "-t",
        str(threads),
        "-c",
        str(run.connections),
        "-d",
        f"{run.duration:g}s",
        "--timeout",
        f"{run.timeout_s:g}s",
        "-s",
        str(run.script),
        run.url,
    ]
    cpu0 = children_cpu()
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=run.duration + run.timeout_s + 30,
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wrk did not finish: {exc}") from None
    cpu = children_cpu() - cpu0
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise LoadError(
            f"wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{done.stdout[-2000:]}"
        )
    raw = json.loads(line[len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    latency = {k: (v / 1000 if v is not None else None) for k, v in raw["latency_us"].items()}
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "bytes": raw["bytes"],
        "latency_ms": {k: round(v, 3) if v is not None else None for k, v in latency.items()},
        "non_2xx": errors["status"],  # wrk counts statuses of 400 and up
        "conflicts": raw["conflicts"],
        "socket_errors": {k: errors[k] for k in ("connect", "read", "write", "timeout")},
        "loadgen_cpu_pct": round(100 * cpu / seconds, 1) if seconds else 0.0,
        "command": " ".join(["wrk", *command[1:-2], f"benchmarks/wrk/{run.script.name}", run.url]),
    }
