"""SIGTERM at spread moments of start-up: how long each stop takes, and how it ends.

    python -m benchmarks.stopping [--runs 50] [--workers 2] [--grace 15] [--plot PNG]

Each run starts `main.py serve` (a fresh SQLite file, a session of its own), sends SIGTERM
at one moment, waits for the exit, and prints the moment, the seconds from SIGTERM to the
exit, the exit status, the processes of its session still alive after it (they would be
orphans) and whether its log has a traceback. Most moments are spread evenly over 1.2 times
the time a first instance took to answer /healthz; every fifth run signals right after the
first /healthz 200 instead. Then the distribution: p50, p90, max; with ``--plot``, a
picture of each run's exit time against the moment it was signalled (the bench extra's
matplotlib).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(folder: Path, workers: int, grace: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "GRACEFUL_SHUTDOWN_TIMEOUT": str(grace),
        "DATABASE_URL": f"sqlite://{folder / 'stop.sqlite3'}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}/healthz"


def _healthy(process: subprocess.Popen[bytes], url: str, limit: float = 120.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.02)
    return False


def _session(sid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def one_run(moment: float | None, workers: int, grace: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bookshelf-stop-") as tmp:
        folder = Path(tmp)
        process, url = _launch(folder, workers, grace)
        started = time.monotonic()
        if moment is None:
            _healthy(process, url)
        else:
            time.sleep(moment)
        at = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code: int | str = process.wait(grace + 60)
            took: float | None = time.monotonic() - signalled
        except subprocess.TimeoutExpired:
            code, took = "still running", None
        time.sleep(0.5)
        left = _session(process.pid)
        log = (folder / "server.log").read_text(errors="replace")
        with_traceback = "Traceback" in log
        kept = None
        if code not in (0, -signal.SIGTERM) or left or with_traceback:  # keep the evidence
            fd, kept = tempfile.mkstemp(prefix="bookshelf-stop-", suffix=".log")
            os.write(fd, log.encode())
            os.close(fd)
        for pid in left:  # never leave anything behind
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return {
        "moment": "first /healthz 200" if moment is None else f"{moment:.2f} s",
        "at": at,
        "took": took,
        "code": code,
        "left": len(left),
        "traceback": with_traceback,
        "log": kept,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grace", type=float, default=15.0)
    parser.add_argument("--plot", type=Path, help="write a PNG of exit times to this path")
    args = parser.parse_args()
    process, url = _launch(Path(tempfile.mkdtemp(prefix="bookshelf-stop-")), args.workers, 5)
    began = time.monotonic()
    ready = _healthy(process, url)
    span = (time.monotonic() - began) * 1.2
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    if not ready:
        print("the server did not start; see its log", file=sys.stderr)  # noqa: T201
        return 1
    spread = [i for i in range(args.runs) if i % 5 != 4]
    moments: list[float | None] = []
    for i in range(args.runs):
        k = spread.index(i) if i in spread else -1
        moments.append(None if k < 0 else span * k / max(1, len(spread) - 1))
    print(f"start-up to the first /healthz 200: {span / 1.2:.2f} s; {args.runs} runs")  # noqa: T201
    print("run  signalled at          after    exit s  status        left  traceback")  # noqa: T201
    results = []
    for n, moment in enumerate(moments, 1):
        r = one_run(moment, args.workers, args.grace)
        results.append(r)
        took = "-" if r["took"] is None else f"{r['took']:.2f}"
        print(  # noqa: T201
            f"{n:>3}  {r['moment']:<20} {r['at']:>6.2f}  {took:>7}  {r['code']!s:<12}"
            f"  {r['left']:>4}  {'yes' if r['traceback'] else 'no'}"
            + (f"  (log: {r['log']})" if r["log"] and r["code"] != -signal.SIGTERM else ""),
            flush=True,
        )
    times = sorted(float(r["took"]) for r in results if r["took"] is not None)  # type: ignore[arg-type]
    bad = [r for r in results if r["code"] not in (0, -signal.SIGTERM) or r["left"]]
    print(  # noqa: T201
        f"exit s: p50 {statistics.median(times):.2f}, "
        f"p90 {times[int(0.9 * (len(times) - 1))]:.2f}, max {times[-1]:.2f}; "
        f"exit 0: {sum(r['code'] == 0 for r in results)}, "
        f"ended by the signal (-15): {sum(r['code'] == -signal.SIGTERM for r in results)}, "
        f"other or no exit, or processes left: {len(bad)}; "
        f"with a traceback: {sum(bool(r['traceback']) for r in results)}"
    )
    if args.plot:
        _plot(results, args.plot)
        print(f"plot: {args.plot}")  # noqa: T201
    return 1 if bad else 0


def _plot(results: list[dict[str, object]], path: Path) -> None:
    """Exit time against the moment of the SIGTERM, one mark per run, by how it ended."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    kinds = {
        "exit 0": lambda r: r["code"] == 0 and not r["left"],
        "ended by the signal (-15)": lambda r: r["code"] == -signal.SIGTERM and not r["left"],
        "other, no exit or processes left": lambda r: r["code"] not in (0, -signal.SIGTERM)
        or bool(r["left"]),
    }
    for (label, test), marker in zip(kinds.items(), "o^x", strict=True):
        runs = [r for r in results if test(r) and r["took"] is not None]
        ax.scatter([r["at"] for r in runs], [r["took"] for r in runs], marker=marker, label=label)
    ax.set_xlabel("SIGTERM, seconds after launch")
    ax.set_ylabel("seconds to exit")
    ax.set_title(f"{len(results)} SIGTERMs during start-up")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
