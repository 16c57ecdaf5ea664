"""``python -m benchmarks.isolation``: what a few clients of an expensive list request take
from everyone else on the same worker.

One worker serves a seeded database. wrk reads random books (``GET /books/{id}/``) with
``--detail-clients`` connections alone (before and after the rest, averaged), and again
while a second wrk keeps ``--heavy-clients`` connections busy with ``--heavy`` (by default
the costliest shape the contract allows at the database's size: an author's full name
searched, ordered by title, 100 a page; say another with ``--heavy``). The detail reads'
throughput beside the heavy clients over their throughput alone is the figure: how much
of the worker the heavy requests take.
Prints a table and writes ``benchmarks/results/isolation_<n>.{json,md,png}``.

    python -m benchmarks.isolation --database-url sqlite:///data/bench-10000000.sqlite3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks import loadgen, machine
from benchmarks.dataset import already_seeded
from benchmarks.scenarios import SERVICE
from benchmarks.servers import ROOT, running
from db.seed import author_name

RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "benchmarks" / "wrk" / "paths.lua"


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _wrk(url: str, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    run = loadgen.WrkRun(url, SCRIPT, clients, 1, max(1, round(seconds)))  # wrk: whole seconds
    return loadgen.run_wrk(run, {"BENCH_PATHS": "|".join(paths)})


def _next_run(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    taken = [int(p.stem.split("_")[1]) for p in out.glob("isolation_*.json")]
    return out / f"isolation_{max(taken, default=0) + 1}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    details = [f"/books/{rng.randint(1, args.rows)}/" for _ in range(2000)]
    heavy = (
        [args.heavy]
        if args.heavy
        else [
            f"/books/?search={quote(author_name(i))}&ordering=title&limit=100"
            for i in (7, 1234, 4000)
        ]
    )
    log_dir = args.out / "tmp" / "logs"
    with running(SERVICE, workers=1, database_url=args.database_url, log_dir=log_dir) as server:
        _out(f"warming up ({args.warmup:g} s each)")
        _wrk(server.url, details, args.detail_clients, args.warmup)
        _wrk(server.url, heavy, args.heavy_clients, args.warmup)
        _out(f"detail alone: {args.detail_clients} clients, {args.duration:g} s")
        before = _wrk(server.url, details, args.detail_clients, args.duration)
        _out(f"detail with {args.heavy_clients} heavy clients, {args.duration:g} s")
        heavy_run: dict[str, Any] = {}

        def load_heavy() -> None:
            heavy_run.update(_wrk(server.url, heavy, args.heavy_clients, args.duration + 1))

        thread = threading.Thread(target=load_heavy)
        thread.start()
        beside = _wrk(server.url, details, args.detail_clients, args.duration)
        thread.join()
        _out(f"detail alone again, {args.duration:g} s")
        after = _wrk(server.url, details, args.detail_clients, args.duration)
    # Alone before and after, averaged: the cache keeps warming through the runs (random
    # books of ten million), which favoured whichever ran later.
    alone = {
        "rps": round((before["rps"] + after["rps"]) / 2, 1),
        "latency_ms": {"p99": (before["latency_ms"]["p99"] + after["latency_ms"]["p99"]) / 2},
        "non_2xx": before["non_2xx"] + after["non_2xx"],
        "before": before,
        "after": after,
    }
    kept = beside["rps"] / alone["rps"] if alone["rps"] else 0.0
    return {
        "machine": machine.describe(),
        "database": args.database_url.split("?")[0].split("://")[0],
        "rows": args.rows,
        "heavy_paths": heavy,
        "detail_clients": args.detail_clients,
        "heavy_clients": args.heavy_clients,
        "duration_s": args.duration,
        "alone": alone,
        "beside": beside,
        "heavy": heavy_run,
        "detail_kept": round(kept, 3),
    }


def report(doc: dict[str, Any], prefix: Path, plots: bool) -> None:
    a, b, h = doc["alone"], doc["beside"], doc["heavy"]
    more = " (and others like it)" if len(doc["heavy_paths"]) > 1 else ""
    lines = [
        f"# {prefix.name}",
        "",
        f"{doc['rows']:,} rows on {doc['database']}, one worker; detail reads with "
        f"{doc['detail_clients']} connections, alone and beside {doc['heavy_clients']} "
        f"connections of `{doc['heavy_paths'][0]}`{more}.",
        "",
        "| load | detail req/s | detail p99 ms | heavy req/s | heavy p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| detail alone (mean of before and after: {a['before']['rps']:,.0f},"
        f" {a['after']['rps']:,.0f}) | {a['rps']:,.0f} | {a['latency_ms']['p99']:.1f} | | |"
        f" {a['non_2xx']} |",
        f"| detail + heavy | {b['rps']:,.0f} | {b['latency_ms']['p99']:.1f} | "
        f"{h.get('rps', 0):,.0f} | {h.get('latency_ms', {}).get('p99') or 0:.1f} | "
        f"{b['non_2xx'] + h.get('non_2xx', 0)} |",
        "",
        f"Detail reads kept **{doc['detail_kept']:.2f}** of their throughput alone.",
    ]
    prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")
    prefix.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    for line in lines[4:]:
        _out(line)
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(["detail alone", "detail + heavy", "heavy"], [a["rps"], b["rps"], h.get("rps", 0)])
        ax.set_ylabel("requests/s")
        ax.set_title(
            f"{doc['rows']:,} rows, {doc['database']}: detail kept {doc['detail_kept']:.2f}"
        )
        fig.tight_layout()
        fig.savefig(prefix.with_suffix(".png"), dpi=100)
        plt.close(fig)
    _out(f"results: {prefix.with_suffix('.md')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.isolation", description=(__doc__ or "").split("\n\n")[0]
    )
    add = parser.add_argument
    add("--database-url", required=True, help="a database seeded with --rows rows")
    add("--rows", type=int, default=10_000_000, help="its seeded rows (default 10,000,000)")
    add("--seed", type=int, default=1, help="the seed it was seeded with")
    add("--heavy", default="", help="the expensive request's path (default: see above)")
    add("--detail-clients", type=int, default=56)
    add("--heavy-clients", type=int, default=8)
    add("--duration", type=float, default=10.0, help="seconds of each measured run")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up for each load")
    add("--out", type=Path, default=RESULTS, help="results folder")
    add("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if loadgen.wrk_path() is None:
        _out("benchmarks.isolation: wrk is not installed; install it (Debian: apt-get install wrk)")
        return 2
    if not already_seeded(args.database_url, args.rows, args.seed):
        _out(
            f"benchmarks.isolation: {args.database_url} does not hold the {args.rows:,} seeded"
            f" rows; seed it first: DATABASE_URL=... python main.py seed --count {args.rows}"
            f" --seed {args.seed} --replace"
        )
        return 2
    doc = measure(args)
    report(doc, _next_run(args.out), plots=not args.no_plots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
