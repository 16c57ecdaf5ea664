"""Where a request's time goes: py-spy on the service's worker while wrk drives it.

    python -m benchmarks.profile                       # detail and create, 10,000 rows
    python -m benchmarks.profile --scenarios mixed --duration 20

For each scenario: seed a table (as ``python -m benchmarks`` does), start the service with
one worker on 127.0.0.1, run the scenario's wrk script (-t1 -c64) and, after a warm-up,
sample the worker with py-spy (every thread, 250 samples a second). Writes, under
``--out``:

- ``profile_<scenario>.svg``: the flame graph (open it in a browser);
- ``profile_<scenario>.txt``: per thread, the functions holding the most samples, with
  their share of that thread's samples, inclusive and self.

py-spy samples wall-clock stacks, so the main thread's time inside uvloop's C code
(``_run_server_forever``) includes waiting for the GIL and for events; what is in Python
is shown by function. Needs py-spy (in the ``bench`` extra) and permission to read
another process's memory (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Final

import psutil

from benchmarks import dataset, servers
from benchmarks.loadgen import LoadError, WrkRun, run_wrk
from benchmarks.scenarios import SCENARIOS, SERVICE, WRK_DIR, Context

RESULTS: Final = Path(__file__).resolve().parent / "results"
RATE: Final = 250
TOP: Final = 30


def py_spy() -> str | None:
    """py-spy from this Python's environment (a venv's bin is often not on PATH), else PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _candidates(server: servers.Server) -> list[psutil.Process]:
    """Processes spawned under the server: its worker, and the manager Sanic starts."""
    procs = server.processes()
    found = [p for p in procs[1:] if "spawn_main" in " ".join(p.cmdline())]
    if not found:
        raise RuntimeError(f"no worker process found under pid {server.process.pid}")
    return found


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rstrip(')').rsplit('/', 2)[-1] if where else ''})"


def summarize(raw_path: Path, top: int = TOP) -> str:
    """The top functions per thread of a py-spy ``--format raw`` file (collapsed stacks)."""
    threads: dict[str, tuple[collections.Counter[str], collections.Counter[str], list[int]]] = {}
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].split(" (")[0]
        inclusive, own, total = threads.setdefault(
            thread, (collections.Counter(), collections.Counter(), [0])
        )
        n = int(count)
        total[0] += n
        for name in dict.fromkeys(_frame(f) for f in frames[1:]):
            inclusive[name] += n
        if len(frames) > 1:
            own[_frame(frames[-1])] += n
    out: list[str] = []
    for thread, (inclusive, own, total) in sorted(threads.items(), key=lambda t: -t[1][2][0]):
        out.append(f"## thread {thread}: {total[0]} samples\n")
        for title, counter in (("inclusive", inclusive), ("self", own)):
            out.append(f"{title}:")
            for name, n in counter.most_common(top):
                out.append(f"  {100 * n / total[0]:5.1f}%  {name}")
            out.append("")
    return "\n".join(out)


def profile(
    scenario: str, data: dataset.Dataset, *, duration: float, warmup: float, out: Path
) -> dict[str, Any]:
    work = out / "tmp"
    url = dataset.database_for(SERVICE, data, work)
    spec = SCENARIOS[scenario]
    with servers.running(SERVICE, workers=1, database_url=url, log_dir=work) as server:
        cursors = dataset.deep_cursors(server.url, data.rows) if scenario == "cursor_deep" else ()
        ctx = Context(
            rows=data.rows,
            token=data.token,
            authors=data.authors,
            terms=data.terms,
            cursors=cursors,
        )
        candidates = _candidates(server)
        before = {p.pid: _cpu(p) for p in candidates}
        run = WrkRun(server.url, WRK_DIR / spec.script, 64, 1, duration + warmup + 1)
        result: dict[str, Any] = {}

        def load() -> None:
            try:
                result.update(run_wrk(run, ctx.wrk_env()))
            except LoadError as exc:
                result["error"] = str(exc)

        loader = threading.Thread(target=load)
        loader.start()
        threading.Event().wait(warmup)
        # The worker is the process that worked during the warm-up.
        worker = max(candidates, key=lambda p: _cpu(p) - before[p.pid])
        raw = out / f"profile_{scenario}.raw.txt"
        svg = out / f"profile_{scenario}.svg"
        command = [
            py_spy() or "py-spy",
            "record",
            "--pid",
            str(worker.pid),
            "--threads",
            "--nonblocking",
        ]
        command += ["--rate", str(RATE), "--duration", str(int(duration // 2))]
        # Two recordings, one after the other, from the same run: the collapsed stacks
        # for the table and the flame graph.
        for fmt, path in (("raw", raw), ("flamegraph", svg)):
            subprocess.run(
                [*command, "--format", fmt, "--output", str(path)], check=True, capture_output=True
            )
        loader.join()
    if "error" in result:
        raise LoadError(result["error"])
    table = out / f"profile_{scenario}.txt"
    header = (
        f"# py-spy of the service's worker: {scenario} ({spec.description}), "
        f"{data.rows:,} rows, wrk -t1 -c64, {result.get('rps', 0):,.0f} req/s during the run\n\n"
    )
    table.write_text(header + summarize(raw))
    raw.unlink()
    return {"scenario": scenario, "rps": result.get("rps"), "table": table, "svg": svg}


def say(line: str, *, error: bool = False) -> None:
    print(line, file=sys.stderr if error else sys.stdout, flush=True)  # noqa: T201


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--scenarios", default="detail,create", help="comma-separated")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=16.0, help="seconds sampled")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        say(f"unknown scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)}", error=True)
        return 2
    if py_spy() is None:
        say("py-spy is not installed: pip install -e '.[bench]'", error=True)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    say(f"seeding {args.rows:,} rows ...")
    data = dataset.prepare(args.rows, seed=1, database_url=None, work_dir=args.out / "tmp")
    for i, name in enumerate(names, 1):
        say(f"[{i}/{len(names)}] profiling {name} for {args.duration:g} s ...")
        done = profile(name, data, duration=args.duration, warmup=args.warmup, out=args.out)
        say(f"    {done['rps']:,.0f} req/s; wrote {done['table']} and {done['svg']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
