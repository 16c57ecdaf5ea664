"""Open-loop load: requests sent on a fixed schedule, latency measured from the schedule.

Request ``i`` is due at ``t0 + i / rate`` whether or not earlier ones have been
answered; its latency runs from that due time to the end of its response, so a server
stall shows in every request that should have been sent during it (the correction for
coordinated omission that wrk2 makes). Requests wait for a free connection among
``--connections`` keep-alive ones; that wait counts too. Requests are handed out in
batches up to a millisecond early (the event loop's timer resolution); an early one is
timed from when it was handed out.

Run by the runner as its own process, so its CPU time is apart from the server's:

    python -m benchmarks.openloop --url http://127.0.0.1:8000 --scenario detail \\
        --rate 1000 --duration 10 --connections 64 --context ctx.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from benchmarks.matrix import ALL
from benchmarks.scenarios import CEILING_SCENARIO, Context, Request

MAX_TAGS = 4096
_AHEAD = 0.001


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.socket_errors = 0


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    req: Request,
    host: str,
) -> tuple[int, dict[str, str]]:
    head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    if req.body or req.method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(req.body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + req.body)
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length and req.method != "HEAD":
        await reader.readexactly(length)
    return status, headers


async def _worker(
    queue: asyncio.Queue[tuple[float, Request] | None],
    host: str,
    port: int,
    stats: Stats,
    ctx: Context,
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | tuple[None, None],
) -> None:
    reader: asyncio.StreamReader | None
    writer: asyncio.StreamWriter | None
    reader, writer = conn
    while True:
        item = await queue.get()
        if item is None:
            break
        due, req = item
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            status, headers = await _exchange(reader, writer, req, f"{host}:{port}")
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            stats.socket_errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        stats.latencies.append(time.perf_counter() - due)
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        tag = headers.get("etag")
        if tag and len(ctx.tags) < MAX_TAGS:
            book_id = tag.strip('"').partition("-")[0]
            if book_id.isdigit():
                ctx.tags[int(book_id)] = tag
        if headers.get("connection", "").lower() == "close" and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(
    url: str,
    scenario: str,
    rate: float,
    duration: float,
    connections: int,
    ctx: Context,
    seed: int = 1,
) -> dict[str, Any]:
    spec = CEILING_SCENARIO if scenario == CEILING_SCENARIO.name else ALL[scenario]
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rng = random.Random(seed)
    stats = Stats()
    queue: asyncio.Queue[tuple[float, Request] | None] = asyncio.Queue()
    # Connections are opened before the clock starts: their set-up is not a latency.
    opened = await asyncio.gather(
        *(asyncio.open_connection(host, port) for _ in range(connections)),
        return_exceptions=True,
    )
    workers = [
        asyncio.create_task(
            _worker(queue, host, port, stats, ctx, c if isinstance(c, tuple) else (None, None))
        )
        for c in opened
    ]
    total = int(rate * duration)
    t0 = time.perf_counter() + 0.05
    sent = 0
    while sent < total:
        # The event loop's timers have millisecond resolution: a shorter sleep returns at
        # once and would spin. So requests go out in batches, each at most a millisecond
        # ahead of its due time, and a request's latency runs from its due time or from
        # when it was handed out, whichever is earlier.
        now = time.perf_counter()
        due_now = min(total, int((now + _AHEAD - t0) * rate) + 1)
        while sent < due_now:
            queue.put_nowait((min(now, t0 + sent / rate), spec.build(ctx, rng)))
            sent += 1
        await asyncio.sleep(max(_AHEAD, t0 + sent / rate - _AHEAD - time.perf_counter()))
    for _ in workers:
        queue.put_nowait(None)
    # Bounded: whatever is still queued or in flight after the grace period is dropped.
    _, pending = await asyncio.wait(workers, timeout=duration + 10)
    for task in pending:
        task.cancel()
    elapsed = time.perf_counter() - t0
    lat = sorted(stats.latencies)
    answered = len(lat)
    ok = sum(n for s, n in stats.statuses.items() if 200 <= s < 300)
    conflicts = sum(n for s, n in stats.statuses.items() if s in spec.expected_conflicts)
    return {
        "requests": answered,
        "scheduled": total,
        "dropped": total - answered - stats.socket_errors,
        "seconds": round(elapsed, 3),
        "target_rate": round(rate, 1),
        "rps": round(answered / duration, 1),
        "latency_ms": {
            name: round(1000 * v, 3) if (v := percentile(lat, p)) is not None else None
            for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
        },
        "non_2xx": answered - ok,
        "conflicts": conflicts,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "socket_errors": {"total": stats.socket_errors},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.openloop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--context", help="a JSON file with the run's context (rows, token...)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    data: dict[str, Any] = {"rows": 10000}
    if args.context:
        with open(args.context) as fh:
            data = json.load(fh)
    ctx = Context(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    coro = run(args.url, args.scenario, args.rate, args.duration, args.connections, ctx, args.seed)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the service
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def context_json(ctx: Context) -> str:
    data = asdict(ctx)
    data.pop("tags", None)
    return json.dumps(data)


if __name__ == "__main__":
    sys.exit(main())
