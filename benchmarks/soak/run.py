"""One soak: seed, start the server, drive the load with kills, SIGTERM it under load,
check the database, and gather everything into one document."""

from __future__ import annotations

import asyncio
import math
import secrets
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from benchmarks import dataset, machine, servers
from benchmarks.scenarios import SERVICE
from benchmarks.servers import Server
from benchmarks.soak import summary
from benchmarks.soak.database import main_py, read_postgres, read_sqlite, verify
from benchmarks.soak.load import Load, Tally, client
from benchmarks.soak.options import WORKERS, Config, say
from benchmarks.soak.processes import (
    Watch,
    cleanup,
    kill_one,
    replacements,
    resume,
    wait_ready,
)
from benchmarks.soak.report import mb


async def _drive(
    config: Config, server: Server, watch: Watch, load: Load, t0: float
) -> dict[str, Any]:
    clients = [asyncio.create_task(client(n, load)) for n in range(config.clients)]
    kills: list[dict[str, Any]] = []
    next_kill = config.kill_every if config.kill_every > 0 else math.inf
    next_progress = 10.0
    last_slot: str | None = None
    stop: dict[str, Any] = {}
    try:
        while True:
            await asyncio.sleep(1.0 - ((time.monotonic() - t0) % 1.0))
            t = time.monotonic() - t0
            row = watch.sample()
            for kill in kills:
                if "proc" in kill and t >= kill["t"] + config.pause_seconds:
                    resume(kill)
            if t >= next_kill and t < config.seconds:
                # Faults take turns: kill -9, then a pause (SIGSTOP), when pauses are on.
                pause = config.pause_seconds > 0 and len(kills) % 2 == 1
                kill = kill_one(watch, last_slot, t, signal.SIGSTOP if pause else signal.SIGKILL)
                kills.append(kill)
                if kill.get("worker"):
                    last_slot = kill["worker"].rsplit("-", 1)[0]
                say(
                    f"soak {t:5.0f} s: {kill['how']} skipped: {kill['skipped']}"
                    if kill.get("skipped")
                    else f"soak {t:5.0f} s: {kill['how']} {kill['worker']} (pid {kill['pid']})"
                )
                next_kill += config.kill_every
            if t >= next_progress:
                next_progress += 10.0
                seconds = load.tally.seconds
                recent = sum(
                    seconds.get(s, Counter())["requests"] for s in range(int(t) - 10, int(t))
                )
                total: Counter[str] = sum(seconds.values(), Counter())
                workers = "/".join(mb(w["rss_mb"]) for w in row["workers"].values()) or "-"
                say(
                    f"soak {t:5.0f} s: {recent / 10:6.1f} req/s; so far 5xx {total['c5xx']}, "
                    f"errors {total['errors']}, timeouts {total['timeouts']}; workers "
                    f"{len(row['workers'])}/{WORKERS}; RSS MB main {mb(row['main_rss_mb'])}, "
                    f"workers {workers}"
                )
            if t >= config.seconds:
                break
            if server.process.poll() is not None:
                say(f"soak {t:5.0f} s: the server exited by itself ({server.process.returncode})")
                break
        # SIGTERM while the clients keep going: an operator's stop under load.
        stop = await _terminate(config, server, watch, load, t0)
    finally:
        load.running = False
        for kill in kills:
            resume(kill)
        await asyncio.gather(*clients, return_exceptions=True)
    stop["kills"] = kills
    return stop


async def _terminate(
    config: Config, server: Server, watch: Watch, load: Load, t0: float
) -> dict[str, Any]:
    sent = time.monotonic()
    stop: dict[str, Any] = {
        "t": round(sent - t0, 2),
        "by_itself": server.process.poll() is not None,
    }
    server.process.send_signal(signal.SIGTERM)  # nothing when it has exited by itself
    next_sample = sent + 1.0
    while server.process.poll() is None and time.monotonic() - sent < config.stop_timeout:
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_sample:
            next_sample += 1.0
            watch.sample()
    stop["exited"] = server.process.poll() is not None
    stop["seconds"] = round(time.monotonic() - sent, 2)
    stop["exit_code"] = server.process.returncode
    load.running = False  # the clients finish the requests they have sent
    if stop["exited"]:
        # Workers still running a second after the main process exited are orphans.
        await asyncio.sleep(1.0)
    stop["workers_left"] = [p.pid for p, _ in watch.alive()]
    return stop


def soak(config: Config) -> dict[str, Any]:
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config.work_dir.mkdir(parents=True, exist_ok=True)
    db_path: Path | None = None
    if config.database_url:
        url = config.database_url
    else:
        db_path = config.work_dir / f"soak-{secrets.token_hex(4)}.sqlite3"
        url = f"sqlite://{db_path}"
    try:
        say(f"soak: seeding {config.rows:,} rows")
        main_py(["seed", "--count", str(config.rows), "--seed", str(config.seed), "--replace"], url)
        token = main_py(["token", "create", f"soak-{secrets.token_hex(4)}"], url).strip()
        server = servers.start(SERVICE, workers=WORKERS, database_url=url, log_dir=config.work_dir)
        watch: Watch | None = None
        try:
            watch = Watch(psutil.Process(server.process.pid), t0=time.monotonic())
            wait_ready(server, watch)
            start_pids = set(watch.workers)
            t0 = time.monotonic()
            watch.t0 = t0
            watch.first_seen = dict.fromkeys(watch.first_seen, 0.0)
            watch.sample()
            load = Load(server.url, token, config.rows, config.timeout, config.seed, Tally(t0))
            plan = f"kill -9 every {config.kill_every:g} s" if config.kill_every else "no kills"
            say(
                f"soak: {config.minutes:g} min, {config.clients} clients, {WORKERS} workers "
                f"(pids {', '.join(map(str, sorted(start_pids)))}), {plan}; "
                f"server log {server.log_path}"
            )
            stop = asyncio.run(_drive(config, server, watch, load, t0))
        finally:
            cleanup(watch, server)
        kills = stop.pop("kills")
        replacements(kills, watch, start_pids)
        say("soak: checking the database")
        if db_path is not None:
            stored = read_sqlite(db_path, config.rows)
        else:
            stored = asyncio.run(read_postgres(url, config.rows))
        check = verify(load, stored, config.rows)
    finally:
        if db_path is not None:
            dataset.remove(url)
    return {
        "kind": "soak",
        "config": config.public(),
        "machine": machine.describe(),
        "started_at": started_at,
        "server_log": str(server.log_path),
        "start_workers": sorted(start_pids),
        "kills": kills,
        "stop": stop,
        "verify": check,
        "unexpected_statuses": dict(load.tally.unexpected.most_common()),
        "seconds": summary.per_second(load.tally, watch),
        "minutes": summary.per_minute(load.tally, watch, kills, stop["t"]),
        "totals": summary.totals(load.tally, stop["t"]),
        "rss": summary.rss_summary(watch, stop["t"]),
    }
