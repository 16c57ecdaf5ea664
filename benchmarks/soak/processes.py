"""The server's processes: which are workers, their RSS each second, a kill -9 of one,
which new worker replaced it, and nothing of the server left running at the end."""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psutil

from benchmarks import servers
from benchmarks.servers import Server
from benchmarks.soak.options import WORKERS, SoakError

# Sanic names each serving process in its environment (sanic/worker/process.py); its
# other children (the multiprocessing manager, the resource tracker) have no such name.
WORKER_ENV: Final = "SANIC_WORKER_NAME"


@dataclass
class Watch:
    """The server's main process and its workers, by pid, sampled once a second."""

    main: Any  # psutil.Process
    t0: float = 0.0
    workers: dict[int, tuple[Any, str]] = field(default_factory=dict)  # pid -> (proc, name)
    others: dict[int, Any] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def discover(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in self.main.children():
                if child.pid in self.workers or child.pid in self.others:
                    continue
                try:
                    name = child.environ().get(WORKER_ENV, "")
                except psutil.Error:
                    continue
                if "-Server-" in name:
                    self.workers[child.pid] = (child, name)
                    self.first_seen[child.pid] = round(time.monotonic() - self.t0, 2)
                else:
                    self.others[child.pid] = child

    @staticmethod
    def _alive(proc: Any) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def alive(self) -> list[tuple[Any, str]]:
        return sorted(
            ((p, name) for p, name in self.workers.values() if self._alive(p)),
            key=lambda item: item[1],
        )

    @staticmethod
    def _rss(proc: Any) -> float | None:
        try:
            return round(proc.memory_info().rss / 2**20, 1)
        except psutil.Error:
            return None

    def sample(self) -> dict[str, Any]:
        self.discover()
        row = {
            "t": round(time.monotonic() - self.t0, 2),
            "main_rss_mb": self._rss(self.main) if self._alive(self.main) else None,
            "workers": {
                str(p.pid): {"name": name, "rss_mb": self._rss(p)} for p, name in self.alive()
            },
            "others_rss_mb": round(
                sum(r for p in self.others.values() if self._alive(p) and (r := self._rss(p))), 1
            ),
        }
        self.samples.append(row)
        return row

    def everything(self) -> list[Any]:
        return [self.main, *(p for p, _ in self.workers.values()), *self.others.values()]


def kill_one(
    watch: Watch, last_slot: str | None, t: float, signum: int = signal.SIGKILL
) -> dict[str, Any]:
    """Send ``signum`` (SIGKILL, or SIGSTOP to pause it) to a live worker, another slot
    than the last one hit when there is one."""
    how = "kill -9" if signum == signal.SIGKILL else "pause"
    alive = watch.alive()
    if not alive:
        return {
            "t": round(t, 2),
            "pid": None,
            "worker": None,
            "how": how,
            "skipped": "no live worker",
        }
    slot = {name: name.rsplit("-", 1)[0] for _, name in alive}
    proc, name = next(((p, n) for p, n in alive if slot[n] != last_slot), alive[0])
    try:
        proc.send_signal(signum)  # psutil checks the pid is still this process
    except psutil.Error as exc:
        return {"t": round(t, 2), "pid": proc.pid, "worker": name, "how": how, "skipped": str(exc)}
    return {"t": round(t, 2), "pid": proc.pid, "worker": name, "how": how, "proc": proc}


def resume(kill: dict[str, Any]) -> None:
    """SIGCONT a worker paused by ``kill_one`` (nothing when it was replaced meanwhile)."""
    proc = kill.pop("proc", None)
    if proc is not None:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGCONT)


def replacements(kills: list[dict[str, Any]], watch: Watch, start_pids: set[int]) -> None:
    """Pair each kill with the first worker that appeared after it (Sanic replacing it)."""
    new = sorted((t, pid) for pid, t in watch.first_seen.items() if pid not in start_pids)
    for kill in kills:
        if kill.get("skipped"):
            continue
        match = next(((t, pid) for t, pid in new if t >= kill["t"]), None)
        if match:
            new.remove(match)
            kill["replaced_by"] = match[1]
            kill["replaced_after_s"] = round(match[0] - kill["t"], 2)
        else:
            kill["replaced_by"] = None
            kill["replaced_after_s"] = None


def _log_tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(empty log)"


def wait_ready(server: Server, watch: Watch, timeout: float = 120.0) -> None:
    """Until both workers have said they are ready and /readyz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SoakError(
                f"the server exited on start-up ({server.process.returncode}): "
                f"{_log_tail(server.log_path)} (log: {server.log_path})"
            )
        watch.discover()
        log = server.log_path.read_text(errors="replace")
        if log.count("Worker ready") >= WORKERS and len(watch.alive()) >= WORKERS:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=5.0).status_code == 200:
                    return
        time.sleep(0.2)
    raise SoakError(
        f"the server was not ready after {timeout:.0f} s: {_log_tail(server.log_path)} "
        f"(log: {server.log_path})"
    )


def cleanup(watch: Watch | None, server: Server) -> None:
    """SIGKILL whatever of the server is still running (psutil checks each pid)."""
    procs = watch.everything() if watch else []
    with contextlib.suppress(psutil.Error):
        procs += psutil.Process(server.process.pid).children(recursive=True)
    servers.reap(server, [p for p in procs if Watch._alive(p)])
