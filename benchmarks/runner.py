"""One benchmark run: seed, start every target, run every scenario at every
concurrency, and collect records.

Every (target, row count) pair is an endpoint: a server of its own on its own copy of
the seeded rows. All endpoints run side by side and take turns on each scenario (A B A B
over ``rounds``), so a comparison between targets, or between 10,000 and 1,000,000 rows,
is between runs made seconds apart. The ceiling runs at the start and at the end: the
spread between the two is the run's drift. Every run is bounded by its duration and
every server is stopped on the way out, errors included. A given ``--database-url``
holds one row count at a time, so then the row counts run one after the other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks import dataset as ds
from benchmarks import loadgen, machine, matrix
from benchmarks.openloop import context_json
from benchmarks.scenarios import CEILING_SCENARIO, SCENARIOS, TARGETS, Context, Scenario, Target
from benchmarks.servers import ROOT, Monitor, Server, http_get, running

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    concurrency: tuple[int, ...] = (64,)
    duration: float = 10.0
    workers: int = 1
    rows: tuple[int, ...] = (10_000,)
    targets: tuple[str, ...] = ("service", "ceiling")
    rounds: int = 1
    threads: int = 1
    warmup: float = 2.0
    database_url: str | None = None
    open_loop: bool = False
    open_loop_fractions: tuple[float, ...] = (0.5, 0.8)
    locust_users: int = 0
    seed: int = 1
    error_threshold: float = 0.001  # a run with more errors than this share is discarded
    out: Path = RESULTS_DIR
    plots: bool = True
    # --pin: the servers on the last CPU, wrk on the others (one worker on 2 cores).
    pin: bool = False
    # Databases, server logs and scratch files (gitignored); logs are kept after a run.
    work_root: Path = RESULTS_DIR / "tmp"

    def cpus(self) -> tuple[str | None, str | None]:
        """taskset CPU lists for (servers, wrk): with --pin, the last CPU and the rest."""
        if not self.pin:
            return None, None
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            raise ValueError("--pin needs at least 2 CPUs")
        return str(available[-1]), ",".join(map(str, available[:-1]))

    def check(self) -> None:
        unknown = [s for s in self.scenarios if s not in matrix.ALL]
        if unknown:
            raise ValueError(
                f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)} and the matrix"
            )
        bad = [t for t in self.targets if t not in TARGETS]
        if bad:
            raise ValueError(f"unknown targets {bad}; known: {', '.join(TARGETS)}")
        if "service" not in self.targets:
            raise ValueError("the service is always a target")
        if min(self.concurrency) < 1 or self.duration <= 0 or self.rounds < 1:
            raise ValueError("concurrency, duration and rounds must be positive")
        if self.pin and self.workers != 1:
            raise ValueError("--pin puts the server on one CPU: use it with --workers 1")
        self.cpus()


@dataclass
class Endpoint:
    """One server and the data it serves: a target at a row count (the ceiling at none)."""

    target: str
    rows: int | None
    server: Server
    ctx: Context

    @property
    def key(self) -> str:
        return self.target if self.rows is None else f"{self.target}@{self.rows}"


@dataclass
class Group:
    """What the runs of one group of endpoints share."""

    config: Config
    endpoints: list[Endpoint]
    work_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    log: Log = print
    # Endpoints that stopped answering: key -> why. They are skipped from then on.
    dead: dict[str, str] = field(default_factory=dict)


def _error_rate(result: dict[str, Any]) -> float:
    socket = sum(result["socket_errors"].values())
    errors = result["non_2xx"] - result["conflicts"] + socket
    return errors / max(1, result["requests"] + socket)


def _record(s: Group, ep: Endpoint, scenario: Scenario, mode: str, **extra: Any) -> dict[str, Any]:
    # The machine's 1-minute load average: other work on it shows here.
    return {
        "target": ep.target,
        "scenario": scenario.name,
        "rows": ep.rows,
        "mode": mode,
        "workers": s.config.workers,
        "load1": round(os.getloadavg()[0], 2),
        **extra,
    }


def _label(ep: Endpoint) -> str:
    return f"{ep.target:<8} {'' if ep.rows is None else f'{ep.rows:,}':>9}"


def closed_run(
    s: Group,
    ep: Endpoint,
    scenario: Scenario,
    connections: int,
    *,
    duration: float,
    round_: int,
    phase: str = "measure",
) -> dict[str, Any]:
    run = loadgen.WrkRun(
        ep.server.url,
        scenario.script_path,
        connections,
        s.config.threads,
        duration,
        cpus=s.config.cpus()[1],
    )
    env = {**ep.ctx.wrk_env(scenario.name), "BENCH_SEED": str(s.config.seed + round_)}
    with Monitor(ep.server) as monitor:
        result = loadgen.run_wrk(run, env)
    assert monitor.usage is not None
    rate = _error_rate(result)
    rec = _record(
        s,
        ep,
        scenario,
        "closed",
        concurrency=connections,
        round=round_,
        phase=phase,
        duration_s=duration,
        threads=run.threads,
        **result,
        error_rate=round(rate, 6),
        valid=rate <= s.config.error_threshold,
        server=monitor.usage.as_dict(),
    )
    if phase == "measure":
        s.records.append(rec)
        flag = "" if rec["valid"] else f"  DISCARDED: {rate:.2%} errors"
        s.log(
            f"  {_label(ep)} {scenario.name:<14} c={connections:<4} r{round_} "
            f"{rec['rps']:>9.1f} req/s  p99 {rec['latency_ms']['p99']:>8.2f} ms  "
            f"cpu {rec['server']['cpu_pct']:>5.1f}%{flag}"
        )
    return rec


def open_run(
    s: Group, ep: Endpoint, scenario: Scenario, rate: float, fraction: float, connections: int
) -> dict[str, Any]:
    ctx_file = s.work_dir / f"ctx-{ep.server.port}.json"
    ctx_file.write_text(context_json(ep.ctx))
    command = [
        sys.executable,
        "-m",
        "benchmarks.openloop",
        "--url",
        ep.server.url,
        "--scenario",
        scenario.name,
        "--rate",
        f"{rate:.1f}",
        "--duration",
        f"{s.config.duration:g}",
        "--connections",
        str(connections),
        "--context",
        str(ctx_file),
        "--seed",
        str(s.config.seed),
    ]
    cpu0 = loadgen.children_cpu()
    with Monitor(ep.server) as monitor:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=2 * s.config.duration + 60
        )
    generator_cpu = loadgen.children_cpu() - cpu0
    ctx_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise loadgen.LoadError(f"open-loop generator failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert monitor.usage is not None
    err = _error_rate(result) if result["requests"] else 1.0
    dropped = result["dropped"] / max(1, result["scheduled"])
    rec = _record(
        s,
        ep,
        scenario,
        "open",
        concurrency=connections,
        fraction=fraction,
        duration_s=s.config.duration,
        **result,
        error_rate=round(err, 6),
        valid=err <= s.config.error_threshold and dropped <= s.config.error_threshold,
        server=monitor.usage.as_dict(),
        loadgen_cpu_pct=round(100 * generator_cpu / monitor.usage.wall_seconds, 1),
    )
    s.records.append(rec)
    s.log(
        f"  {_label(ep)} {scenario.name:<14} open {fraction:.0%} of max = {rate:>8.1f}/s: "
        f"p50 {rec['latency_ms']['p50']} ms  p99 {rec['latency_ms']['p99']} ms"
        + ("" if rec["valid"] else "  DISCARDED")
    )
    return rec


def _guarded(s: Group, ep: Endpoint, job: Callable[[], Any]) -> Any:
    """Run one load against ``ep``; if its server died, note it and go on without it."""
    try:
        return job()
    except loadgen.LoadError as exc:
        if ep.server.process.poll() is None:
            raise
        why = f"exited with {ep.server.process.returncode} ({exc}); log:\n{ep.server.log_tail(40)}"
        s.dead[ep.key] = why
        s.log(f"  {ep.key} stopped answering and is skipped from now on: {why}")
        return None


def _endpoints_for(s: Group, scenario: Scenario) -> list[Endpoint]:
    out = []
    for ep in s.endpoints:
        allowed = TARGETS[ep.target].scenarios
        if ep.key in s.dead:
            continue
        if scenario.name == CEILING_SCENARIO.name:
            if allowed == (CEILING_SCENARIO.name,):
                out.append(ep)
        elif allowed is None or scenario.name in allowed:
            out.append(ep)
    return out


def _open_loop(s: Group, ep: Endpoint, scenario: Scenario) -> None:
    cfg = s.config
    ok = [
        r
        for r in s.records
        if r["target"] == ep.target
        and r["rows"] == ep.rows
        and r["mode"] == "closed"
        and r["scenario"] == scenario.name
        and r["valid"]
    ]
    if not ok:
        return
    # The maximum: the median over rounds at the concurrency that did best, not the
    # single best run (on a noisy machine that one is an outlier).
    by_conc: dict[int, list[float]] = {}
    for r in ok:
        by_conc.setdefault(r["concurrency"], []).append(r["rps"])
    top = max(statistics.median(v) for v in by_conc.values())
    for fraction in cfg.open_loop_fractions:
        rec = _guarded(
            s,
            ep,
            partial(open_run, s, ep, scenario, top * fraction, fraction, max(cfg.concurrency)),
        )
        if rec:
            rec["max_rps"] = round(top, 1)


def _scenario(
    s: Group, scenario: Scenario, phase_label: str | None = None, *, warmup: bool = True
) -> None:
    cfg = s.config
    if warmup and cfg.warmup > 0:
        for ep in _endpoints_for(s, scenario):
            _guarded(
                s,
                ep,
                partial(
                    closed_run,
                    s,
                    ep,
                    scenario,
                    cfg.concurrency[0],
                    duration=cfg.warmup,
                    round_=0,
                    phase="warmup",
                ),
            )
    for conc in cfg.concurrency:
        for round_ in range(cfg.rounds):
            for ep in _endpoints_for(s, scenario):
                rec = _guarded(
                    s,
                    ep,
                    partial(
                        closed_run, s, ep, scenario, conc, duration=cfg.duration, round_=round_
                    ),
                )
                if rec and phase_label:
                    rec["ceiling_phase"] = phase_label
    if cfg.open_loop and scenario.name != CEILING_SCENARIO.name:
        for ep in _endpoints_for(s, scenario):
            _open_loop(s, ep, scenario)


def _locust(s: Group, ep: Endpoint, out_prefix: Path) -> None:
    from benchmarks import locust_run

    s.records.append(
        locust_run.run(
            ep.server.url,
            ep.ctx,
            users=s.config.locust_users,
            duration=s.config.duration,
            csv_prefix=out_prefix.with_name(f"{out_prefix.name}_locust_{ep.rows}"),
            rows=ep.rows or 0,
            log=s.log,
        )
    )


def _get(base_url: str, path: str) -> tuple[int, bytes]:
    return http_get(base_url + path)


def run_group(
    config: Config,
    group: tuple[int, ...],
    work_dir: Path,
    out_prefix: Path,
    log: Log,
    records: list[dict[str, Any]],
    infos: list[dict[str, Any]],
) -> None:
    """Seed every row count of ``group``, serve them all side by side, run everything.

    Records and facts go into ``records`` and ``infos`` as they come, so an error halfway
    keeps what was measured."""
    data: dict[int, ds.Dataset] = {}
    urls: dict[tuple[str, int], str | None] = {}
    targets: list[Target] = [TARGETS[t] for t in config.targets]
    try:
        for rows in group:
            info: dict[str, Any] = {"rows": rows}
            infos.append(info)
            log(f"rows={rows:,}: seeding")
            data[rows] = ds.prepare(
                rows,
                seed=config.seed,
                database_url=ds.url_for(config.database_url, rows),
                work_dir=work_dir,
                log=log,
            )
            info["seed_seconds"] = round(data[rows].seed_seconds, 1)
            log(f"rows={rows:,}: seeded in {data[rows].seed_seconds:.1f} s")
            if not data[rows].url.startswith("sqlite://"):
                targets = [t for t in targets if not t.sqlite_only]
            for t in targets:
                if t.needs_database:
                    urls[(t.name, rows)] = ds.database_for(t, data[rows], work_dir)
        # Seeding and copying leave hundreds of MB of dirty pages at a million rows: their
        # writeback would compete with the first runs.
        os.sync()
        with contextlib.ExitStack() as stack:
            endpoints: list[Endpoint] = []
            for t in targets:
                for rows in group if t.needs_database else (None,):
                    db_url = urls[(t.name, rows)] if rows is not None else None
                    tag = t.name if rows is None else f"{t.name}-{rows}"
                    server = stack.enter_context(
                        running(
                            t,
                            workers=config.workers,
                            database_url=db_url,
                            log_dir=work_dir / "logs",
                            extra_env={
                                "PROMETHEUS_MULTIPROC_DIR": str(work_dir / f"metrics-{tag}")
                            },
                            cpus=config.cpus()[0],
                        )
                    )
                    d = data[rows if rows is not None else group[0]]
                    ctx = Context(rows=d.rows, token=d.token, authors=d.authors, terms=d.terms)
                    endpoints.append(Endpoint(t.name, rows, server, ctx))
            # Rows first: each table's targets take their turns next to each other.
            endpoints.sort(key=lambda e: (e.rows or 0, config.targets.index(e.target)))
            for info in infos[-len(group) :]:
                service = next(
                    e for e in endpoints if e.target == "service" and e.rows == info["rows"]
                )
                started = time.perf_counter()
                # The walk reads every page down to 75% of the table: 75,000 pages at
                # 10,000,000 rows, so its time limit grows with the table.
                cursors = ds.deep_cursors(
                    service.server.url, info["rows"], timeout=300 + info["rows"] / 10_000
                )
                if len(cursors) < len(ds.CURSOR_DEPTHS):
                    log(
                        f"  rows={info['rows']:,}: the cursor walk found {len(cursors)} of "
                        f"{len(ds.CURSOR_DEPTHS)} depths; cursor_deep runs what it found"
                    )
                info["cursor_walk_seconds"] = round(time.perf_counter() - started, 1)
                for e in endpoints:
                    if e.rows == info["rows"]:
                        e.ctx.cursors = cursors
                shapes = [n for n in config.scenarios if n in matrix.MATRIX]
                if shapes:
                    started = time.perf_counter()
                    paths, notes = matrix.resolve(
                        shapes,
                        service.ctx.authors,
                        partial(_get, service.server.url),
                    )
                    info["matrix_resolve_seconds"] = round(time.perf_counter() - started, 1)
                    for note in notes:
                        log(f"  rows={info['rows']:,}: {note}")
                    for e in endpoints:
                        if e.rows == info["rows"]:
                            e.ctx.paths = paths
            s = Group(config, endpoints, work_dir, records=records, log=log)
            load_start = [round(x, 2) for x in os.getloadavg()]
            ceiling = any(e.target == "ceiling" for e in endpoints)
            if ceiling:
                _scenario(s, CEILING_SCENARIO, "start")
            for name in config.scenarios:
                _scenario(s, matrix.ALL[name])
            if ceiling:
                _scenario(s, CEILING_SCENARIO, "end", warmup=False)
            if config.locust_users:
                for ep in endpoints:
                    if ep.target == "service":
                        _locust(s, ep, out_prefix)
            for info in infos[-len(group) :]:
                info.update(
                    load_at_start=load_start,
                    load_at_end=[round(x, 2) for x in os.getloadavg()],
                    dead_endpoints=s.dead,
                )
    finally:
        for (_, rows), url in urls.items():
            if data[rows].owned:  # never a database we were given
                ds.remove(url)
        for d in data.values():
            if d.owned:
                ds.remove(d.url)


def next_run_path(out: Path, kind: str = "run") -> Path:
    """``out/<kind>_<n>``, one past the highest ``<kind>_<n>.json`` there."""
    out.mkdir(parents=True, exist_ok=True)
    numbers = [
        int(p.stem.split("_")[1])
        for p in out.glob(f"{kind}_*.json")
        if p.stem.split("_")[1].isdigit()
    ]
    return out / f"{kind}_{max(numbers, default=0) + 1}"


def run(config: Config, log: Log = print) -> tuple[dict[str, Any], Path]:
    """Run every group of row counts; write ``run_<n>.json`` (and .md, .png) into ``config.out``."""
    from benchmarks import results

    config.check()
    prefix = next_run_path(config.out)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    work_dir = config.work_root / f"{prefix.name}-{stamp}"
    doc: dict[str, Any] = {
        "run": prefix.name,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "tables": [],
        "records": [],
    }
    if config.database_url:
        parts = urlsplit(config.database_url)
        doc["config"]["database_url"] = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    # Our own SQLite copies can all be served at once, as can databases named per row count
    # ("{rows}" in the URL); a given database holds one table.
    one_each = config.database_url is None or "{rows}" in config.database_url
    groups = [config.rows] if one_each else [(r,) for r in config.rows]
    try:
        for group in groups:
            run_group(config, group, work_dir, prefix, log, doc["records"], doc["tables"])
    except BaseException as exc:
        # Keep what was measured; the error says why the rest is missing.
        doc["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        raise
    finally:
        doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        # Databases go; the servers' logs stay (gitignored) for a post-mortem.
        for path in work_dir.glob("*"):
            if path.is_dir() and path.name != "logs":
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                path.unlink()
        if work_dir.exists():
            doc["server_logs"] = str(work_dir / "logs")
        if doc["records"]:
            doc["summary"] = results.summarize(doc)
            results.write(doc, prefix, plots=config.plots)
    return doc, prefix
