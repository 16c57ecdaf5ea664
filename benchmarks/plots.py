"""PNG plots of a run: throughput and p99 by scenario and concurrency, and the scale run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
# One hue per target, lighter to darker with concurrency.
SHADES = {
    "service": ["#9ecae1", "#4292c6", "#08519c", "#08306b"],
    "raw": ["#fdae6b", "#f16913", "#d94801", "#7f2704"],
}


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _tick(scenario: str) -> str:
    return f"{scenario}\n(100 books a request)" if scenario == "bulk_create" else scenario


def _width(scenarios: int, per: float = 0.3) -> float:
    """Inches of a figure with ``scenarios`` groups of bars: the matrix has hundreds."""
    return max(13.0, per * scenarios)


def _labels(ax: Any, names: list[str]) -> None:
    many = len(names) > 12
    ax.set_xticks(
        range(len(names)),
        [_tick(n) for n in names],
        rotation=90 if many else 20,
        ha="center" if many else "right",
        fontsize=7 if many else None,
    )


def _color(target: str, conc: int, concs: list[int], i: int) -> str:
    shades = SHADES.get(target)
    if not shades:
        return COLORS[i % len(COLORS)]
    rank = concs.index(conc) if conc in concs else 0
    return shades[min(len(shades) - 1, rank + (1 if len(concs) <= 2 else 0))]


def _series(closed: list[dict[str, Any]], rows: int) -> tuple[list[str], list[tuple[str, int]]]:
    scenarios: list[str] = []
    series: list[tuple[str, int]] = []
    for r in closed:
        if r["rows"] != rows:
            continue
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if (r["target"], r["concurrency"]) not in series:
            series.append((r["target"], r["concurrency"]))
    return scenarios, sorted(series, key=lambda s: (s[0] != "service", s[0], s[1]))


def _bars(
    doc: dict[str, Any], prefix: Path, metric: str, ylabel: str, title: str, log: bool
) -> Path:
    summary = doc["summary"]
    closed = summary["closed"]
    sizes = sorted({r["rows"] for r in closed})
    count = max(len(_series(closed, rows)[0]) for rows in sizes)
    tall = 2.5 if count > 12 else 0.0  # room for the names, written upright
    fig, axes = plt.subplots(
        len(sizes), 1, figsize=(_width(count), (4.2 + tall) * len(sizes)), squeeze=False
    )
    for ax, rows in zip(axes[:, 0], sizes, strict=True):
        scenarios, series = _series(closed, rows)
        index = {
            (r["scenario"], r["target"], r["concurrency"]): r for r in closed if r["rows"] == rows
        }
        width = 0.8 / max(1, len(series))
        concs = sorted({c for _, c in series})
        for i, (target, conc) in enumerate(series):
            xs, ys = [], []
            for j, scenario in enumerate(scenarios):
                rec = index.get((scenario, target, conc))
                if rec and rec[metric] is not None:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(rec[metric])
            bars = ax.bar(
                xs,
                ys,
                width,
                label=f"{target}, c={conc}",
                color=_color(target, conc, concs, i),
                hatch="//" if target != "service" else None,
                edgecolor="white",
            )
            ax.bar_label(
                bars,
                labels=[_short(y) for y in ys],
                fontsize=7,
                padding=1,
                rotation=90 if len(series) > 2 else 0,
            )
        for k, c in enumerate(summary["ceiling"]):
            value = c["rps"] if metric == "rps" else c["p99_ms"]
            if value:
                ax.axhline(
                    value,
                    color="black",
                    linestyle="--" if k == 0 else ":",
                    linewidth=1,
                    label=f"ceiling, c={c['concurrency']}: {value:,.0f}"
                    if metric == "rps"
                    else f"ceiling p99, c={c['concurrency']}",
                )
        _labels(ax, scenarios)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} — {rows:,} rows, {doc['config']['workers']} worker(s)")
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)  # room for the labels above the bars
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = prefix.with_name(f"{prefix.name}_{metric.replace('.', '')}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scale(doc: dict[str, Any], prefix: Path) -> Path | None:
    scale = [s for s in doc["summary"]["scale"] if s["target"] == "service"]
    if not scale:
        return None
    conc = max(s["concurrency"] for s in scale)
    scale = [s for s in scale if s["concurrency"] == conc]
    small, large = scale[0]["small_rows"], scale[0]["large_rows"]
    names = [s["scenario"] for s in scale]
    tall = 2.5 if len(names) > 12 else 0.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * _width(len(names), 0.2), 4.5 + tall))
    for ax, (a, b), label, log in (
        (left, ("rps_small", "rps_large"), "requests/s", False),
        (right, ("p99_small", "p99_large"), "p99 latency, ms (log)", True),
    ):
        xs = range(len(names))
        for offset, key, rows, color in ((-0.2, a, small, COLORS[0]), (0.2, b, large, COLORS[3])):
            vals = [s[key] or 0 for s in scale]
            bars = ax.bar([x + offset for x in xs], vals, 0.4, label=f"{rows:,} rows", color=color)
            ax.bar_label(bars, labels=[_short(v) for v in vals], fontsize=7, padding=1)
        _labels(ax, names)
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    left.set_title(f"Throughput at {small:,} vs {large:,} rows (service, c={conc})")
    right.set_title("p99 latency")
    fig.tight_layout()
    path = prefix.with_name(f"{prefix.name}_scale.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(doc: dict[str, Any], prefix: Path) -> list[Path]:
    if not doc["summary"]["closed"]:
        return []
    paths = [
        _bars(doc, prefix, "rps", "requests/s", "Throughput (closed loop)", log=False),
        _bars(doc, prefix, "p99", "p99 latency, ms (log)", "p99 latency (closed loop)", log=True),
    ]
    scale = _scale(doc, prefix)
    return paths + ([scale] if scale else [])


def versus(
    points: list[tuple[str, float, float]],
    within: float,
    title: str,
    xlabel: str,
    ylabel: str,
    path: Path,
) -> Path:
    """A log-log scatter of (name, x, y) points, with the lines y = x and y = within·x;
    the names of the five points furthest above the second line written beside them."""
    fig, ax = plt.subplots(figsize=(8, 7))
    values = [v for _, x, y in points for v in (x, y)]
    span = [min(values) / 2, max(values) * 2]
    for beyond, color in ((False, COLORS[0]), (True, COLORS[3])):
        mine = [(x, y) for _, x, y in points if (y > within * x) == beyond]
        if mine:
            label = f"{'beyond' if beyond else 'within'} {within:g}x: {len(mine)}"
            ax.scatter(*zip(*mine, strict=True), s=14, color=color, alpha=0.7, label=label)
    ax.plot(span, span, color="black", linestyle="--", linewidth=1, label="y = x")
    ax.plot(
        span, [within * v for v in span], color="black", linestyle=":", label=f"y = {within:g}x"
    )
    worst = sorted((p for p in points if p[2] > within * p[1]), key=lambda p: p[1] / p[2])
    for name, x, y in worst[:5]:
        ax.annotate(name, (x, y), fontsize=6, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(span)
    ax.set_ylim(span)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ranked(values: list[float], title: str, ylabel: str, path: Path) -> Path:
    """``values``, largest first, as a line on a log scale."""
    fig, ax = plt.subplots(figsize=(9, 5))
    ordered = sorted(values, reverse=True)
    ax.plot(range(1, len(ordered) + 1), ordered, marker=".", color=COLORS[0])
    ax.set_yscale("log")
    ax.set_xlabel("shapes, slowest first")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
