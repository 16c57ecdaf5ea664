"""The document's numbers: each second's counts and samples, each minute's, the totals
(the load apart from the stop) and each process's RSS from first to last."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from benchmarks.soak.load import FIELDS, Tally
from benchmarks.soak.processes import Watch


def per_second(tally: Tally, watch: Watch) -> list[dict[str, Any]]:
    last = max([*tally.seconds, *(int(s["t"]) for s in watch.samples)], default=0)
    by_second: dict[int, dict[str, Any]] = {}
    for s in watch.samples:
        by_second.setdefault(int(s["t"]), s)
    rows = []
    for second in range(last + 1):
        counts = tally.seconds.get(second, Counter())
        sample = by_second.get(second, {})
        rows.append(
            {
                "t": second,
                **{k: counts[k] for k in FIELDS},
                "workers": len(sample.get("workers", {})) if sample else None,
                "main_rss_mb": sample.get("main_rss_mb"),
                "worker_rss_mb": {pid: w["rss_mb"] for pid, w in sample.get("workers", {}).items()},
            }
        )
    return rows


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def per_minute(
    tally: Tally, watch: Watch, kills: list[dict[str, Any]], stop_t: float
) -> list[dict[str, Any]]:
    end = int(stop_t)  # the load's last whole second; the stop is counted apart
    minutes = max(1, math.ceil(end / 60))
    rows = []
    for m in range(minutes):
        counts: Counter[str] = Counter()
        for second in range(m * 60, min((m + 1) * 60, end)):
            counts.update(tally.seconds.get(second, Counter()))
        span = min(60, end - m * 60)
        samples = [s for s in watch.samples if m * 60 <= s["t"] < min((m + 1) * 60, end)]
        alive = [len(s["workers"]) for s in samples]
        mains = [s["main_rss_mb"] for s in samples if s["main_rss_mb"] is not None]
        wrss = [w["rss_mb"] for s in samples for w in s["workers"].values() if w["rss_mb"]]
        rows.append(
            {
                "minute": m + 1,
                **{k: counts[k] for k in FIELDS},
                "rps": round(counts["requests"] / span, 1) if span > 0 else None,
                "p50_ms": _pct(tally.latency.get(m, []), 0.5),
                "p99_ms": _pct(tally.latency.get(m, []), 0.99),
                "workers_min": min(alive, default=None),
                "workers_max": max(alive, default=None),
                "kills": sum(1 for k in kills if m * 60 <= k["t"] < (m + 1) * 60 and k["pid"]),
                "main_rss_mb": mains[-1] if mains else None,
                "worker_rss_max_mb": max(wrss, default=None),
            }
        )
    return rows


def totals(tally: Tally, stop_t: float) -> dict[str, Any]:
    load: Counter[str] = Counter()
    during_stop: Counter[str] = Counter()
    for second, counts in tally.seconds.items():
        (load if second < int(stop_t) else during_stop).update(counts)
    return {
        "load": {k: load[k] for k in FIELDS}
        | {"rps": round(load["requests"] / max(1, int(stop_t)), 1)},
        "during_stop": {k: during_stop[k] for k in FIELDS},
    }


def rss_summary(watch: Watch, stop_t: float) -> dict[str, Any]:
    samples = [s for s in watch.samples if s["t"] <= stop_t]
    mains = [s["main_rss_mb"] for s in samples if s["main_rss_mb"] is not None]
    per_worker: dict[str, list[float]] = {}
    names: dict[str, str] = {}
    for s in samples:
        for pid, w in s["workers"].items():
            if w["rss_mb"]:
                per_worker.setdefault(pid, []).append(w["rss_mb"])
                names[pid] = w["name"]
    return {
        "main": {
            "first_mb": mains[0] if mains else None,
            "last_mb": mains[-1] if mains else None,
            "peak_mb": max(mains, default=None),
        },
        "workers": {
            pid: {"name": names[pid], "first_mb": v[0], "last_mb": v[-1], "peak_mb": max(v)}
            for pid, v in per_worker.items()
        },
    }
