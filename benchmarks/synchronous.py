"""What SQLITE_SYNCHRONOUS=full costs against normal: single creates and PATCHes against
two real one-worker servers, one per level, each on its own file on the same disk, run in
turns (full, normal, normal, full, ...) so that the machine's other load falls on both.

    python -m benchmarks.synchronous [--rounds 4] [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from server_process import run_cli, start_server, stop  # noqa: E402

WRK = ROOT / "benchmarks" / "wrk"
ROWS = 10_000
LEVELS = ("full", "normal")


def wrk(url: str, script: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "BENCH_ROWS": str(ROWS), "BENCH_TOKEN": token}
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(WRK / script), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 30,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCHJSON "))
    data = json.loads(line.removeprefix("BENCHJSON "))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["latency_us"]["p50"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000,
        "errors": sum(data["errors"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--folder", default="/var/tmp", help="on the disk to measure")
    args = parser.parse_args()
    servers, tokens = {}, {}
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        try:
            for level in LEVELS:
                folder = Path(tmp) / level
                folder.mkdir()
                env = {"DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}"}
                run_cli("seed", "--count", str(ROWS), "--replace", env=env)
                made = run_cli("token", "create", "bench", env=env)
                tokens[level] = made.stdout.splitlines()[0].strip()
                servers[level] = start_server(folder, {**env, "SQLITE_SYNCHRONOUS": level})
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for n in range(args.rounds):
                order = LEVELS if n % 2 == 0 else LEVELS[::-1]
                for script in ("create.lua", "patch.lua"):
                    for level in order:
                        url, token = servers[level].url, tokens[level]
                        got = wrk(url, script, token, args.seconds, args.connections)
                        results.setdefault((script, level), []).append(got)
        finally:
            for server in servers.values():
                stop(server.process)
    print(f"{args.rounds} rounds x {args.seconds} s, {args.connections} connections, 1 worker")  # noqa: T201
    print("| scenario | level | req/s (median) | p50 ms | p99 ms | errors | full/normal |")  # noqa: T201
    print("| --- | --- | --- | --- | --- | --- | --- |")  # noqa: T201
    for script in ("create.lua", "patch.lua"):
        rps = {lv: statistics.median(r["rps"] for r in results[(script, lv)]) for lv in LEVELS}
        for level in LEVELS:
            rows = results[(script, level)]
            each = ", ".join(f"{r['rps']:.0f}" for r in rows)
            print(  # noqa: T201
                f"| {script[:-4]} | {level} | {rps[level]:.0f} "
                f"({each}) "
                f"| {statistics.median(r['p50_ms'] for r in rows):.2f} "
                f"| {statistics.median(r['p99_ms'] for r in rows):.2f} "
                f"| {sum(r['errors'] for r in rows):.0f} "
                f"| {rps['full'] / rps['normal']:.2f} |"
            )


if __name__ == "__main__":
    main()
