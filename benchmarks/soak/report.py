"""The soak's results: ``<prefix>.json``, ``.md`` (summary, per-minute and kill tables)
and ``.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.soak.plot import plot


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def summary_rows(doc: dict[str, Any]) -> list[list[Any]]:
    c, v, stop, tot = doc["config"], doc["verify"], doc["stop"], doc["totals"]["load"]
    kills = [k for k in doc["kills"] if not k.get("skipped")]
    replaced = [k for k in kills if k.get("replaced_by")]
    after = [k["replaced_after_s"] for k in replaced]
    rss = doc["rss"]
    workers = ", ".join(
        f"{w['name']} (pid {pid}) {w['first_mb']:.0f}→{w['last_mb']:.0f} (peak {w['peak_mb']:.0f})"
        for pid, w in rss["workers"].items()
    )
    ack, unknown = v["acknowledged"], v["unknown_outcome"]
    return [
        [
            "load",
            f"{c['minutes']:g} min, {c['clients']} clients, {c['workers']} workers, "
            f"{c['database']}, {c['rows']:,} seeded rows",
        ],
        ["requests", f"{tot['requests']:,} ({tot['rps']:,.1f}/s)"],
        ["2xx / 4xx / 5xx", f"{tot['ok']:,} / {tot['c4xx']:,} / {tot['c5xx']:,}"],
        ["connection errors / timeouts", f"{tot['errors']:,} / {tot['timeouts']:,}"],
        [
            "workers killed (kill -9) / paused (SIGSTOP)",
            f"{sum(k.get('how', 'kill -9') == 'kill -9' for k in kills)} / "
            f"{sum(k.get('how') == 'pause' for k in kills)} "
            f"(skipped: {len(doc['kills']) - len(kills)})",
        ],
        [
            "workers replaced",
            f"{len(replaced)} of {len(kills)}"
            + (f", after {min(after):.1f}–{max(after):.1f} s" if after else ""),
        ],
        [
            "acknowledged writes",
            f"{ack['total']:,} (create {ack['create']:,}, "
            f"patch {ack['patch']:,}, delete {ack['delete']:,})",
        ],
        [
            "writes with unknown outcome",
            f"{sum(unknown.values()):,} (create {unknown['create']}, "
            f"patch {unknown['patch']}, delete {unknown['delete']})",
        ],
        ["**lost writes**", f"**{v['lost_writes']}**"],
        ["**duplicate creates**", f"**{v.get('duplicates', 'n/a')}**"],
        [
            "creates cut by the client / retried with their key",
            f"{v.get('creates_cut', 0):,} / {v.get('creates_retried', 0):,}"
            + (
                " (retries after: "
                + ", ".join(f"{why} {n:,}" for why, n in v["retries_by_cause"].items())
                + ")"
                if v.get("retries_by_cause")
                else ""
            ),
        ],
        [
            "stored without an answer",
            f"{v['stored_without_answer']} (unexplained: {v['unexplained_rows']})",
        ],
        [
            "wrong fields / bad answers / stale reads",
            f"{v['wrong_fields']} / {v['bad_answers']} / {v['stale_reads']}",
        ],
        ["integrity_check", v["integrity_check"] or "n/a (PostgreSQL)"],
        [
            "book_count = count(*)",
            f"{v['book_count']} = {v['count']}: "
            f"{'yes' if v['counter_ok'] else 'NO'}; per author: "
            f"{'yes' if v['author_counts_ok'] else 'NO'}",
        ],
        [
            "RSS main MB (first→last, peak)",
            f"{mb(rss['main']['first_mb'])}→"
            f"{mb(rss['main']['last_mb'])} (peak {mb(rss['main']['peak_mb'])})",
        ],
        ["RSS workers MB", workers or "-"],
        [
            "SIGTERM under load",
            (
                f"not sent: the server had exited by itself, exit code {stop['exit_code']}"
                if stop.get("by_itself")
                else f"exit code {stop['exit_code']} after {stop['seconds']:.1f} s"
                if stop["exited"]
                else f"did not exit within {stop['seconds']:.0f} s (killed)"
            )
            + (f"; workers left running: {stop['workers_left']}" if stop["workers_left"] else ""),
        ],
        [
            "answers during the stop",
            "{ok:,} 2xx, {c5xx:,} 5xx, {errors:,} errors, {timeouts:,} timeouts".format(
                **doc["totals"]["during_stop"]
            ),
        ],
        ["data verified", "yes" if v["ok"] else "**NO**"],
    ]


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Soak, {doc['started_at']}", ""]
    lines += table(["", "value"], summary_rows(doc))
    lines += ["", "## Per minute", ""]
    lines += table(
        [
            "minute",
            "requests",
            "req/s",
            "2xx",
            "4xx",
            "5xx",
            "errors",
            "timeouts",
            "p50 ms",
            "p99 ms",
            "workers",
            "kills",
            "RSS main MB",
            "RSS worker max MB",
        ],
        [
            [
                m["minute"],
                m["requests"],
                m["rps"],
                m["ok"],
                m["c4xx"],
                m["c5xx"],
                m["errors"],
                m["timeouts"],
                m["p50_ms"],
                m["p99_ms"],
                f"{m['workers_min']}–{m['workers_max']}" if m["workers_min"] is not None else "-",
                m["kills"],
                m["main_rss_mb"],
                m["worker_rss_max_mb"],
            ]
            for m in doc["minutes"]
        ],
    )
    if doc["kills"]:
        lines += ["", "## Kills and pauses", ""]
        lines += table(
            ["t (s)", "fault", "worker", "pid", "replaced by", "after (s)"],
            [
                [
                    k["t"],
                    k.get("how", "kill -9"),
                    k.get("worker"),
                    k.get("pid"),
                    k.get("skipped") or k.get("replaced_by"),
                    k.get("replaced_after_s"),
                ]
                for k in doc["kills"]
            ],
        )
    if doc["unexpected_statuses"]:
        lines += [
            "",
            "Unexpected statuses: "
            + ", ".join(f"{k}: {n}" for k, n in doc["unexpected_statuses"].items()),
        ]
    lines += [
        "",
        f"Command: `python -m benchmarks.soak --minutes {doc['config']['minutes']:g} "
        f"--kill-every {doc['config']['kill_every_s']:g} "
        f"--pause-seconds {doc['config'].get('pause_s', 0):g} --clients "
        f"{doc['config']['clients']}`",
        "",
    ]
    return "\n".join(lines)


def write(doc: dict[str, Any], prefix: Path, with_plot: bool) -> list[Path]:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")]
    paths[0].write_text(json.dumps(doc, indent=1) + "\n")
    paths[1].write_text(markdown(doc))
    if with_plot:
        paths.append(prefix.with_name(prefix.name + ".png"))
        plot(doc, paths[-1])
    return paths
