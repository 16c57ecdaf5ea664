"""Start a target's server on 127.0.0.1, wait until it answers, watch its processes, stop it.

The server runs in a process session of its own (setsid), so stopping it reaches every
worker even when the main process is gone; its CPU time and memory are read over the whole
process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil

from benchmarks.scenarios import Target

ROOT: Final = Path(__file__).resolve().parent.parent
HOST: Final = "127.0.0.1"
# Never inherited from the caller's shell: they would change what is measured.
_SCRUBBED: Final = ("RATE_LIMIT", "REDIS_URL", "ACCESS_LOG", "LOG_LEVEL", "CORS_ORIGINS")


def pinned(cpus: str | None) -> list[str]:
    """The ``taskset`` prefix that keeps a command (and its children) on ``cpus``."""
    return ["taskset", "-c", cpus] if cpus else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    target: Target
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self.process.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def start(
    target: Target,
    *,
    workers: int,
    database_url: str | None,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    cpus: str | None = None,
) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        {
            "HOST": HOST,
            "PORT": str(port),
            "WORKERS": str(workers),
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "INFO",  # start-up and shutdown lines only: stop() reads them
            **(extra_env or {}),
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{target.name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*pinned(cpus), sys.executable, *target.command],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(target, process, port, log_path)


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = server.url + server.target.ready_path
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.target.name} exited early "
                f"({server.process.returncode}):\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError):
            if http_get(url, timeout=2.0)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.target.name} not ready after {timeout:.0f} s:\n{server.log_tail()}"
    )


def _workers_done(server: Server) -> bool:
    """Every worker that said it was ready has said it is complete (Sanic's INFO lines)."""
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    ready = log.count("Worker ready")
    return ready > 0 and log.count("Worker complete") >= ready


def stop(server: Server, timeout: float = 15.0) -> None:
    """SIGTERM the server's main process (Sanic stops its workers); SIGKILL whatever of
    its tree is left after ``timeout``. psutil checks each pid is still the same process.

    Sanic 25.12's worker manager ignores a SIGTERM that arrives before it has seen every
    worker's start-up acknowledgement, which can come a second after the first answer:
    the workers stop, the manager never does. So once the workers are gone, the main
    process gets two seconds, not ``timeout``.
    """
    tree = server.processes()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        workers_gone_at: float | None = None
        while server.process.poll() is None and time.monotonic() < deadline:
            if workers_gone_at is None and _workers_done(server):
                workers_gone_at = time.monotonic()
            if workers_gone_at is not None and time.monotonic() - workers_gone_at > 2.0:
                break
            time.sleep(0.1)
    _, alive = psutil.wait_procs(tree, timeout=0.5)
    reap(server, alive)


def reap(server: Server, procs: list[psutil.Process]) -> None:
    """SIGKILL ``procs`` (psutil checks each pid is still the same process), then wait for
    them and for the server's main process."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(5)


@contextlib.contextmanager
def running(
    target: Target,
    *,
    workers: int,
    database_url: str | None,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
    cpus: str | None = None,
) -> Iterator[Server]:
    server = start(
        target,
        workers=workers,
        database_url=database_url,
        log_dir=log_dir,
        extra_env=extra_env,
        cpus=cpus,
    )
    try:
        wait_ready(server, ready_timeout)
        yield server
    finally:
        stop(server)


@dataclass
class Usage:
    cpu_seconds: float
    wall_seconds: float
    peak_rss_mb: float  # the whole tree, at its highest sample
    peak_process_rss_mb: float  # the largest single process (a worker, in practice)
    processes: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cpu_s": round(self.cpu_seconds, 3),
            "cpu_pct": round(100 * self.cpu_seconds / self.wall_seconds, 1)
            if self.wall_seconds
            else 0.0,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_process_rss_mb": round(self.peak_process_rss_mb, 1),
            "processes": self.processes,
        }


@dataclass
class Monitor:
    """CPU time and RSS of a server's process tree while a load runs (``with`` block)."""

    server: Server
    interval: float = 0.1
    _stop: threading.Event = field(default_factory=threading.Event)
    _peak: float = 0.0
    _peak_one: float = 0.0
    _cpu0: dict[int, float] = field(default_factory=dict)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _t0: float = 0.0
    usage: Usage | None = None

    def _cpu(self) -> dict[int, float]:
        out = {}
        for proc in self.server.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[proc.pid] = times.user + times.system
                self._procs.setdefault(proc.pid, proc)
        return out

    def _sample(self) -> None:
        total = 0.0
        for proc in list(self._procs.values()):
            with contextlib.suppress(psutil.Error):
                rss = proc.memory_info().rss / 2**20
                total += rss
                self._peak_one = max(self._peak_one, rss)
        self._peak = max(self._peak, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Monitor:
        self._cpu0 = self._cpu()
        self._t0 = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        wall = time.monotonic() - self._t0
        cpu1 = self._cpu()
        used = sum(cpu1[pid] - self._cpu0.get(pid, 0.0) for pid in cpu1)
        self.usage = Usage(used, wall, self._peak, self._peak_one, len(cpu1))
