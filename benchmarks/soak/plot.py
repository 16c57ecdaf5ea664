"""The soak's plot: RSS per process, answers per second, 5xx and errors per second, with
the kills and the SIGTERM marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = doc["seconds"]
    ts = [s["t"] for s in seconds]
    fig, (ax_rss, ax_rps, ax_err) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    ax_rss.plot(ts, [s["main_rss_mb"] for s in seconds], label="main", color="black")
    pids = sorted({pid for s in seconds for pid in s["worker_rss_mb"]}, key=int)
    names = {pid: w["name"] for pid, w in doc["rss"]["workers"].items()}
    for pid in pids:
        ax_rss.plot(
            ts,
            [s["worker_rss_mb"].get(pid) for s in seconds],
            label=f"{names.get(pid, 'worker').replace('Sanic-', '')} pid {pid}",
        )
    ax_rss.set_ylabel("RSS (MB)")
    ax_rss.legend(loc="upper left", fontsize="small", ncol=2)
    answered = [s["requests"] - s["errors"] - s["timeouts"] for s in seconds]
    ax_rps.plot(ts, answered, label="answered", color="#1f77b4")
    ax_rps.plot(ts, [s["ok"] for s in seconds], label="2xx", color="#2ca02c", linewidth=0.8)
    ax_rps.set_ylabel("answers/s")
    ax_rps.legend(loc="upper left", fontsize="small")
    ax_err.plot(ts, [s["c5xx"] for s in seconds], label="5xx", color="#d62728")
    ax_err.plot(
        ts,
        [s["errors"] + s["timeouts"] for s in seconds],
        label="errors + timeouts",
        color="#ff7f0e",
    )
    ax_err.set_ylabel("per second")
    ax_err.set_xlabel("seconds since the load began")
    ax_err.legend(loc="upper left", fontsize="small")
    for ax in (ax_rss, ax_rps, ax_err):
        for k in doc["kills"]:
            if k.get("pid"):
                paused = k.get("how") == "pause"
                ax.axvline(
                    k["t"],
                    color="#9467bd" if paused else "#d62728",
                    linestyle="-." if paused else "--",
                    linewidth=0.8,
                )
        ax.axvline(doc["stop"]["t"], color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    ax_rss.set_title(
        "Soak: red dashes = kill -9 of a worker, purple = a worker paused (SIGSTOP), "
        f"dotted = SIGTERM; lost writes {doc['verify']['lost_writes']}, "
        f"duplicates {doc['verify'].get('duplicates', 'n/a')}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
