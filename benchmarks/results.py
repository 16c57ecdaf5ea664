"""Results: medians over rounds, ratios to the ceiling and the raw baseline, the scale
comparison, and the files: ``run_<n>.json``, ``run_<n>.md`` and the plots."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _closed(records: list[Record]) -> list[Record]:
    return [r for r in records if r["mode"] == "closed" and r.get("phase") == "measure"]


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    records = doc["records"]
    closed = _closed(records)
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for r in closed:
        groups[(r["rows"], r["scenario"], r["target"], r["concurrency"])].append(r)

    ceiling = []
    ceiling_rps: dict[int, float | None] = {}
    for conc in sorted({k[3] for k in groups if k[1] == "ceiling"}):
        valid = [
            r
            for k, runs in groups.items()
            if k[1] == "ceiling" and k[3] == conc
            for r in runs
            if r["valid"]
        ]
        by_phase = {
            p: _median(r["rps"] for r in valid if r.get("ceiling_phase") == p)
            for p in ("start", "end")
        }
        rps = _median(r["rps"] for r in valid)
        ceiling_rps[conc] = rps
        ceiling.append(
            {
                "concurrency": conc,
                "rps": rps,
                **by_phase,
                "end_over_start": _ratio(by_phase["end"], by_phase["start"]),
                "p99_ms": _median(r["latency_ms"]["p99"] for r in valid),
            }
        )

    rows_out = []
    measured = [(k, v) for k, v in groups.items() if k[1] != "ceiling"]
    for (rows, scenario, target, conc), runs in sorted(measured, key=_order):
        valid = [r for r in runs if r["valid"]]
        entry: Record = {
            "rows": rows,
            "scenario": scenario,
            "target": target,
            "concurrency": conc,
            "runs": len(runs),
            "discarded": len(runs) - len(valid),
            "rps": _median(r["rps"] for r in valid),
            **{
                k: _median(r["latency_ms"][k] for r in valid)
                for k in ("p50", "p90", "p99", "p99.9")
            },
            "error_rate": max((r["error_rate"] for r in runs), default=0.0),
            "conflicts": sum(r["conflicts"] for r in runs),
            "server_cpu_pct": _median(r["server"]["cpu_pct"] for r in valid),
            "loadgen_cpu_pct": _median(r.get("loadgen_cpu_pct") for r in valid),
            "peak_rss_mb": max((r["server"]["peak_rss_mb"] for r in runs), default=None),
            "peak_process_rss_mb": max(
                (r["server"]["peak_process_rss_mb"] for r in runs), default=None
            ),
        }
        entry["x_ceiling"] = _ratio(entry["rps"], ceiling_rps.get(conc))
        raw = groups.get((rows, scenario, "raw", conc))
        if target != "raw" and raw:
            # Ratios within a round first (A and B measured minutes apart at most).
            pairs = [(a, b) for a in valid for b in raw if b["valid"] and a["round"] == b["round"]]
            entry["x_raw"] = _median(_ratio(a["rps"], b["rps"]) for a, b in pairs)
            entry["p99_x_raw"] = _median(
                _ratio(a["latency_ms"]["p99"], b["latency_ms"]["p99"]) for a, b in pairs
            )
        rows_out.append(entry)

    open_rows = []
    for r in records:
        if r["mode"] == "open":
            open_rows.append(
                {
                    k: r.get(k)
                    for k in (
                        "rows",
                        "scenario",
                        "target",
                        "fraction",
                        "max_rps",
                        "target_rate",
                        "rps",
                        "valid",
                        "dropped",
                        "loadgen_cpu_pct",
                    )
                }
                | {k: r["latency_ms"][k] for k in ("p50", "p99", "p99.9")}
                | _sustained(r)
            )

    return {
        "closed": rows_out,
        "ceiling": ceiling,
        "open": open_rows,
        "scale": _scale(rows_out),
        "locust": [r for r in records if r["mode"] == "locust"],
    }


def _sustained(r: Record) -> Record:
    """Did the server keep up with the rate? A backlog shows as answers arriving after
    the schedule's end: the run took longer than its duration."""
    seconds, duration = r.get("seconds") or 0.0, r.get("duration_s") or 0.0
    return {
        "sustained_rps": round(r["requests"] / seconds, 1) if seconds else None,
        "overloaded": seconds > duration + max(0.1, 0.01 * duration),
    }


def _order(item: tuple[tuple[Any, ...], list[Record]]) -> tuple[Any, ...]:
    from benchmarks.matrix import ALL
    from benchmarks.scenarios import TARGETS

    rows, scenario, target, conc = item[0]
    names = list(ALL)
    return (
        rows,
        names.index(scenario) if scenario in names else -1,
        list(TARGETS).index(target) if target in TARGETS else 99,
        conc,
    )


def _scale(closed: list[Record]) -> list[Record]:
    sizes = sorted({r["rows"] for r in closed})
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    index = {(r["rows"], r["scenario"], r["target"], r["concurrency"]): r for r in closed}
    out = []
    for r in closed:
        if r["rows"] != small:
            continue
        big = index.get((large, r["scenario"], r["target"], r["concurrency"]))
        if big is None:
            continue
        out.append(
            {
                "scenario": r["scenario"],
                "target": r["target"],
                "concurrency": r["concurrency"],
                "small_rows": small,
                "large_rows": large,
                "rps_small": r["rps"],
                "rps_large": big["rps"],
                "rps_kept": _ratio(big["rps"], r["rps"]),
                "p99_small": r["p99"],
                "p99_large": big["p99"],
                "p99_growth": _ratio(big["p99"], r["p99"]),
                "rss_large_mb": big["peak_process_rss_mb"],
            }
        )
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def markdown(doc: dict[str, Any]) -> str:
    m, cfg, summary = doc["machine"], doc["config"], doc["summary"]
    out = [
        f"# Benchmark {doc['run']}",
        "",
        f"{doc['started']} – {doc['finished']}; commit `{m['git']['commit'][:12]}`"
        + (" (uncommitted changes)" if m["git"]["dirty"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}, SQLite {m['sqlite']}, {m['wrk']}; "
        f"sanic {m['packages']['sanic']}, tortoise-orm {m['packages']['tortoise-orm']}.",
        "",
        f"Settings: {cfg['workers']} worker(s), wrk -t{cfg['threads']}, "
        f"{cfg['duration']:g} s per run after a {cfg['warmup']:g} s warm-up, "
        f"{cfg['rounds']} round(s) per target, database "
        f"{cfg['database_url'] or 'SQLite (a fresh seeded copy per target)'}, seed "
        f"{cfg['seed']}. Medians over rounds; runs with more than "
        f"{cfg['error_threshold']:.1%} errors are discarded.",
        "",
    ]
    for info in doc.get("tables", []):
        out.append(
            f"- {info['rows']:,} rows: seeded in {info.get('seed_seconds', '?')} s, "
            f"cursors found in {info.get('cursor_walk_seconds', '?')} s."
        )
    loads = [r["load1"] for r in doc["records"] if "load1" in r]
    out += [
        f"- Machine load (1-min average) during the runs: {min(loads, default=0):.1f}–"
        f"{max(loads, default=0):.1f} (the server and wrk alone make about 2; more is "
        "other work on the machine).",
        "",
    ]
    if doc.get("error"):
        out += [f"**The run stopped early:** {doc['error']}", ""]
    out += ["## Ceiling (bare Sanic, constant JSON)", ""]
    out += _table(
        ["c", "req/s", "at the start", "at the end", "end/start", "p99 ms"],
        [
            [
                c["concurrency"],
                _fmt(c["rps"]),
                _fmt(c["start"]),
                _fmt(c["end"]),
                _fmt(c["end_over_start"], 2),
                _fmt(c["p99_ms"], 2),
            ]
            for c in summary["ceiling"]
        ],
    )
    out += ["## Throughput and latency (closed loop, wrk)", ""]
    out += _table(
        [
            "rows",
            "scenario",
            "target",
            "c",
            "req/s",
            "× ceiling",
            "× raw",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "p99 × raw",
            "errors",
            "server CPU %",
            "RSS MB (tree / worker)",
        ],
        [
            [
                _fmt(r["rows"]),
                r["scenario"],
                r["target"],
                r["concurrency"],
                _fmt(r["rps"]) if r["rps"] is not None else "discarded",
                _fmt(r["x_ceiling"], 2),
                _fmt(r.get("x_raw"), 2),
                _fmt(r["p50"], 2),
                _fmt(r["p90"], 2),
                _fmt(r["p99"], 2),
                _fmt(r["p99.9"], 2),
                _fmt(r.get("p99_x_raw"), 2),
                f"{r['error_rate']:.2%}" + (f" ({r['conflicts']} × 412)" if r["conflicts"] else ""),
                _fmt(r["server_cpu_pct"], 0),
                f"{_fmt(r['peak_rss_mb'], 0)} / {_fmt(r['peak_process_rss_mb'], 0)}",
            ]
            for r in summary["closed"]
        ],
    )
    if summary["scale"]:
        out += ["## Scale", ""]
        out += _table(
            [
                "scenario",
                "target",
                "c",
                "req/s small",
                "req/s large",
                "kept",
                "p99 small ms",
                "p99 large ms",
                "p99 growth",
                "worker RSS large MB",
            ],
            [
                [
                    s["scenario"],
                    s["target"],
                    s["concurrency"],
                    f"{_fmt(s['rps_small'])} @ {s['small_rows']:,}",
                    f"{_fmt(s['rps_large'])} @ {s['large_rows']:,}",
                    _fmt(s["rps_kept"], 2),
                    _fmt(s["p99_small"], 2),
                    _fmt(s["p99_large"], 2),
                    _fmt(s["p99_growth"], 2),
                    _fmt(s["rss_large_mb"], 0),
                ]
                for s in summary["scale"]
            ],
        )
    if summary["open"]:
        out += ["## Open loop (fixed rate, latency from the schedule)", ""]
        out += _table(
            [
                "rows",
                "scenario",
                "target",
                "max req/s",
                "load",
                "rate",
                "sustained",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "generator CPU %",
                "kept up",
            ],
            [
                [
                    _fmt(o["rows"]),
                    o["scenario"],
                    o["target"],
                    _fmt(o["max_rps"]),
                    f"{o['fraction']:.0%}",
                    _fmt(o["target_rate"]),
                    _fmt(o["sustained_rps"]),
                    _fmt(o["p50"], 2),
                    _fmt(o["p99"], 2),
                    _fmt(o["p99.9"], 2),
                    _fmt(o.get("loadgen_cpu_pct"), 0),
                    ("no: a backlog built up" if o["overloaded"] else "yes")
                    + ("" if o["valid"] else "; errors: discarded"),
                ]
                for o in summary["open"]
            ],
        )
    if summary["locust"]:
        out += ["## Locust (user model, headless)", ""]
        out += _table(
            ["rows", "users", "requests", "failures", "req/s", "p50 ms", "p99 ms"],
            [
                [
                    _fmt(r["rows"]),
                    r["users"],
                    _fmt(r["requests"]),
                    _fmt(r["failures"]),
                    _fmt(r["rps"]),
                    _fmt(r["latency_ms"]["p50"]),
                    _fmt(r["latency_ms"]["p99"]),
                ]
                for r in summary["locust"]
            ],
        )
    return "\n".join(out)


def write(doc: dict[str, Any], prefix: Path, *, plots: bool = True) -> list[Path]:
    paths = [prefix.with_suffix(".json"), prefix.with_suffix(".md")]
    paths[0].write_text(json.dumps(doc, indent=1) + "\n")
    paths[1].write_text(markdown(doc))
    if plots:
        from benchmarks import plots as plotting

        paths += plotting.draw(doc, prefix)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.results run_<n>.json``: redraw its table and plots."""
    import sys

    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        doc = json.loads(path.read_text())
        doc["summary"] = summarize(doc)
        for out in write(doc, path.with_suffix("")):
            print(out)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
