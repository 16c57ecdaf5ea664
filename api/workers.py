"""Worker processes: replaced when they die, stopped when the main process dies, stopped
once however many stop signals arrive.

Sanic's worker manager marks a worker that died ``FAILED`` and does nothing more: no new
worker, no log line, and with every worker gone the main process keeps the listening
socket, so connections are accepted that nobody answers. ``Supervisor`` (a thread of the
main process) asks the manager to restart a worker that died, through the manager's own
message pipe (what ``app.m.restart()`` sends), and logs it. It gives up, and the instance
exits 1 so that its own supervisor (systemd, Docker, Kubernetes) restarts it, when no
worker is left alive at once, or when more than ``MAX_RESTARTS`` workers died within
``RESTART_WINDOW`` seconds (a crash loop that restarting here will not fix).

The main process's stop signals: Sanic's handler shuts the workers down from inside the
signal handler, and that writes their states through the state-sharing process's
connection. The main thread uses the same connection every tenth of a second
(``_sync_states``); a signal arriving in the middle of such a call interleaved two requests
on it, each read the other's reply, and the instance died with a traceback and exit
status 1 instead of stopping cleanly. ``Supervisor`` replaces that handler with one that
only asks the manager's monitor loop to shut down (the message a worker's
``app.m.terminate()`` sends), so the shutdown runs between two calls, never inside one.

In each worker (``register``): killed with SIGKILL, the main process cannot stop its
workers; they would live on as orphans holding the port. Each worker watches its parent
and stops when it changes. A second stop signal (a terminal's Ctrl-C reaches the workers
as well as the main process, which then signals them again) used to stop the event loop
in the middle of the graceful shutdown: the database was never closed and aiosqlite's
thread kept the process from exiting. A worker now stops once and ignores the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Final

from sanic import Sanic
from sanic.log import logger as sanic_logger
from sanic.worker.process import ProcessState, WorkerProcess

log = logging.getLogger("bookshelf.workers")

MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 60.0
POLL_SECONDS: Final = 0.25
PARENT_POLL_SECONDS: Final = 0.5
_GONE: Final = (ProcessState.FAILED, ProcessState.COMPLETED)
# The pid of Sanic's state-sharing process (a multiprocessing manager), for the workers.
STATE_PID_ENV: Final = "BOOKSHELF_STATE_PID"


def _served() -> bool:
    """True in a worker of Sanic's multi-process server (never in an ASGI or test app)."""
    return os.environ.get("SANIC_WORKER_PROCESS") == "true"


def register(app: Sanic) -> None:
    """A worker's side: stop once, and stop when the main process is gone."""

    parent: list[int] = []

    @app.after_server_start
    async def _supervised(app: Sanic) -> None:
        if not _served():
            return
        loop = asyncio.get_running_loop()
        stopping = False

        def stop_once() -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                app.stop(terminate=False)

        # Sanic's runner registered app.stop for both signals just before this listener.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_once)
        parent.append(os.getppid())
        app.add_task(_watch_parent(parent[0], stop_once), name="bookshelf.watch_parent")

    @app.before_server_stop
    async def _ignore_further_stops(app: Sanic) -> None:
        # Sanic has removed its handlers; the stop under way is bounded by
        # GRACEFUL_SHUTDOWN_TIMEOUT, and the main process can still SIGKILL.
        if _served():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    @app.after_server_stop
    async def _orphaned(app: Sanic) -> None:
        # The main process is gone: so must be Sanic's state process it started (it
        # ignores SIGTERM, see main.py), else it and multiprocessing's resource tracker
        # live on. The workers' last use of it is behind them.
        state_pid = os.environ.get(STATE_PID_ENV, "")
        if parent and os.getppid() != parent[0] and state_pid.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(state_pid), signal.SIGKILL)


async def _watch_parent(parent: int, stop: Any) -> None:
    try:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_POLL_SECONDS)
    except asyncio.CancelledError:
        # The worker is stopping and Sanic cancels its leftover tasks: a watch has nothing
        # to finish, so it ends quietly (Sanic logs a warning for a task that re-raises).
        return
    log.error(
        "the main process (pid %d) is gone; this worker stops",
        parent,
        extra={"worker_pid": os.getpid(), "main_pid": parent},
    )
    stop()


class Supervisor(threading.Thread):
    """The main process's side: replace dead workers, or give up (``gave_up``)."""

    def __init__(self, manager: Any) -> None:
        super().__init__(name="bookshelf-supervisor", daemon=True)
        self.manager = manager
        self.gave_up = False
        self._deaths: collections.deque[float] = collections.deque()
        self._replacing: dict[str, int] = {}  # worker name -> pid that died
        self._seen_gone: dict[tuple[str, int], float] = {}
        self.stop_requested = False

    @staticmethod
    def note_state_process() -> None:
        """Tell the workers (by their environment) the pid of Sanic's state process; a
        main_process_start listener: it exists by then, the workers do not yet."""
        for child in multiprocessing.active_children():
            if child.name.startswith("SyncManager") and child.pid:
                os.environ[STATE_PID_ENV] = str(child.pid)

    @classmethod
    def start_for(cls, app: Sanic) -> Supervisor:
        """A main_process_ready listener: the manager exists and has set its handlers."""
        supervisor = cls(app.manager)
        supervisor.take_stop_signals()
        supervisor.start()
        return supervisor

    def take_stop_signals(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop_signal)

    def _stop_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested:
            if self.manager._shutting_down:
                # A second signal once the shutdown runs: Sanic's own answer, kill all.
                self.manager.shutdown_signal(signum, frame)
            return
        self.stop_requested = True
        sanic_logger.info("Received signal %s. Shutting down.", signal.Signals(signum).name)
        # One small message, one write(): whole even if the interrupted code was sending.
        self.manager.monitor_publisher.send("__TERMINATE__")

    def _servers(self) -> list[WorkerProcess]:
        return [
            process
            for process in self.manager.transient_processes
            if process.name.startswith(f"Sanic-{WorkerProcess.SERVER_LABEL}-")
        ]

    def _stopping(self) -> bool:
        return self.stop_requested or bool(getattr(self.manager, "_shutting_down", False))

    def run(self) -> None:
        while not self._stopping() and not self.gave_up:
            time.sleep(POLL_SECONDS)
            try:
                self.check()
            except Exception:  # never let the supervisor die silently
                log.exception("worker supervision failed")

    def check(self) -> None:
        servers = self._servers()
        now = time.monotonic()
        dead = [
            p
            for p in servers
            if p.state in _GONE
            and not p.is_alive()
            and self._replacing.get(p.name) != p.pid
            and self._dead_for(p, now) >= (0.0 if p.state is ProcessState.FAILED else 1.0)
        ]
        if not dead or self._stopping():
            return
        for process in dead:
            self._deaths.append(now)
            log.error(
                "worker %s (pid %s) died with exit code %s",
                process.name,
                process.pid,
                process.exitcode,
                extra={"worker": process.name, "pid": process.pid, "exit_code": process.exitcode},
            )
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW:
            self._deaths.popleft()
        alive = [p for p in servers if p.is_alive()]
        if not alive:
            self._give_up("no worker is left")
            return
        if len(self._deaths) > MAX_RESTARTS:
            self._give_up(
                f"{len(self._deaths)} workers died within {RESTART_WINDOW:.0f} s "
                f"(more than {MAX_RESTARTS})"
            )
            return
        for process in dead:
            self._replacing[process.name] = process.pid
            log.warning(
                "starting a new worker in place of %s",
                process.name,
                extra={"worker": process.name},
            )
            # What app.m.restart() sends: the manager restarts it from its monitor loop.
            self.manager.monitor_publisher.send(process.name)

    def _dead_for(self, process: WorkerProcess, now: float) -> float:
        """Seconds since this check first saw ``process`` gone. A worker that exited 0
        was stopped by a signal: the same signal may be on its way to the main process
        (a process-group SIGTERM), so such a worker counts as dead only a second later,
        if the instance is not stopping by then; one that failed counts at once."""
        first = self._seen_gone.setdefault((process.name, process.pid), now)
        return now - first

    def _give_up(self, why: str) -> None:
        if self._stopping():
            return
        self.gave_up = True
        log.critical("%s; the instance stops (exit status 1) for its supervisor to restart it", why)
        os.kill(os.getpid(), signal.SIGTERM)
