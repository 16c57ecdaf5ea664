"""The command line of the benchmark runner: ``python -m benchmarks --help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import loadgen, matrix
from benchmarks.runner import RESULTS_DIR, Config, run
from benchmarks.scenarios import SCENARIOS, TARGETS


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v.replace("_", "")) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers")
    return values


def _names(known: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown or text!r}; choose from {', '.join(known)}"
            )
        return names

    return parse


def _scenarios(text: str) -> tuple[str, ...]:
    """Scenario names; ``matrix`` stands for every scenario of the list-shape matrix."""
    names: list[str] = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        if name == "matrix":
            names += matrix.MATRIX
        elif name in matrix.ALL:
            names.append(name)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}, matrix, "
                "or a matrix scenario (python -m benchmarks --list-matrix)"
            )
    if not names:
        raise argparse.ArgumentTypeError("give at least one scenario")
    return tuple(dict.fromkeys(names))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Start the service (and baselines) on 127.0.0.1, seed it, and measure "
        "each scenario with wrk. Results: benchmarks/results/run_<n>.{json,md,png}.",
    )
    p.add_argument(
        "--scenarios",
        type=_scenarios,
        default=tuple(SCENARIOS),
        help=f"comma-separated, in this order by default: {', '.join(SCENARIOS)}; "
        f"'matrix' adds the {len(matrix.MATRIX)} list shapes of the matrix "
        "(see benchmarks/README.md)",
    )
    p.add_argument(
        "--matrix-sample",
        type=int,
        default=0,
        metavar="N",
        help="run only N of the matrix scenarios chosen, the same N on every machine "
        "(0: all that --scenarios names)",
    )
    p.add_argument(
        "--list-matrix",
        action="store_true",
        help="print the matrix scenarios (after --matrix-sample) and exit",
    )
    p.add_argument(
        "--concurrency", type=_ints, default=(64,), help="open connections, a list (default 64)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of warm-up per scenario and target (default 2; 0: none)",
    )
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument(
        "--rows",
        type=_ints,
        default=(10_000,),
        help="seeded rows, a list: 10000,1000000 is the scale run (default 10000)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per scenario and target, targets interleaved A B A B (default 1)",
    )
    p.add_argument(
        "--targets",
        type=_names(list(TARGETS)),
        default=("service", "ceiling"),
        help=f"servers to measure, from {', '.join(TARGETS)} (default service,ceiling)",
    )
    p.add_argument(
        "--database-url",
        help="run on this database (its book table is REPLACED by the seed, unless it "
        "holds the seeded rows already); {rows} in it is the row count, a database per "
        "count (sqlite:///data/bench-{rows}.sqlite3, postgres://.../db?schema=r{rows}); "
        "default: a fresh SQLite file per target under benchmarks/results/tmp/",
    )
    p.add_argument(
        "--open-loop",
        action="store_true",
        help="also run each scenario at 50%% and 80%% of its measured maximum rate",
    )
    p.add_argument(
        "--locust",
        type=int,
        default=0,
        metavar="USERS",
        help="also run benchmarks/locustfile.py headless with USERS users",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="run the servers on the last CPU and wrk on the others (taskset; --workers 1)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the rows and the requests")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.matrix_sample < 0:
        print("benchmarks: --matrix-sample takes a positive count", file=sys.stderr)  # noqa: T201
        return 2
    if args.matrix_sample:
        chosen = set(
            matrix.sample([n for n in args.scenarios if n in matrix.MATRIX], args.matrix_sample)
        )
        args.scenarios = tuple(n for n in args.scenarios if n not in matrix.MATRIX or n in chosen)
    if args.list_matrix:
        names = [n for n in args.scenarios if n in matrix.MATRIX] or (
            matrix.sample(matrix.MATRIX, args.matrix_sample)
            if args.matrix_sample
            else list(matrix.MATRIX)
        )
        for name in names:
            print(name)  # noqa: T201
        return 0
    if loadgen.wrk_path() is None:
        print(  # noqa: T201
            "benchmarks: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr
        )
        return 2
    config = Config(
        scenarios=args.scenarios,
        concurrency=args.concurrency,
        duration=args.duration,
        workers=args.workers,
        rows=args.rows,
        targets=args.targets,
        rounds=args.rounds,
        threads=args.threads,
        warmup=args.warmup,
        database_url=args.database_url,
        open_loop=args.open_loop,
        locust_users=args.locust,
        seed=args.seed,
        out=args.out,
        plots=not args.no_plots,
        pin=args.pin,
    )
    try:
        config.check()
    except ValueError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)  # noqa: T201
        return 2

    def log(line: str) -> None:
        print(line, flush=True)  # noqa: T201

    _, prefix = run(config, log=log)
    log(f"results: {prefix}.json, {prefix}.md")
    return 0
