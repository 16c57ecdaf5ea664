"""The main process's side of worker supervision: every stop ends, dead or hung workers are
replaced, and nothing outside the server is ever killed.

Sanic's worker manager marks a worker that died ``FAILED`` and does nothing more (no new
worker, no log line; with none left, the port accepts connections nobody answers).
``Supervisor`` (a thread of the main process) logs the death and asks the manager to
restart the worker through its message pipe (what ``app.m.restart()`` sends). It gives up,
and the instance exits 1 for its own supervisor (systemd, Docker, Kubernetes) to restart
it, when no worker is left alive, or when more than ``MAX_RESTARTS`` died within
``RESTART_WINDOW`` seconds. A worker whose heartbeat (``api.workers``) is older than
``WORKER_HEARTBEAT_TIMEOUT`` is stopped or blocked: it is killed (SIGKILL, so its
connections close at once), and so replaced.

Start-up: the manager waits for every worker's acknowledgement before it reads its pipe
(``WorkerManager.wait_for_ack``), sending every message but one back into the pipe and
reading it again at once: a stop spins the main process at full CPU until every worker has
started, or for ever if one has died; a restart waits the same way; after 30 s the manager
kills its whole process group. ``Supervisor.wait_for_ack`` takes its place: it restarts a
worker that died, lets a stop through at once (a worker still starting is sent SIGTERM,
which ends it before it has handlers, without a traceback), and counts the instance
started once every worker beats, so that every worker can then stop gracefully.

Stop signals (``api.stop_signals.StopLatch`` until the manager exists, then
``_Stops._stop_signal``): the manager's own handler writes the workers' states through the
state process's connection from inside the signal handler, while the main thread may be in
the middle of a call on it (the replies get crossed, the instance dies with a traceback).
The handler here only asks the monitor loop to shut down (what a worker's
``app.m.terminate()`` sends). A second signal, or a stop still running
``GRACEFUL_SHUTDOWN_TIMEOUT`` + ``STOP_MARGIN`` seconds after the first, kills the workers
by pid: Sanic's ``WorkerManager.kill`` sends SIGKILL to each worker's process group, the
group of whoever started the server (a shell, a harness).

Losing the state process (Sanic's ``SyncManager``, which holds the workers' states): every
call on it fails with ``BrokenPipeError``; ``api.stop_signals.state_process_lost`` says so
in one line, and the instance stops its workers and exits 1.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Final

from sanic import Sanic
from sanic.log import logger as sanic_logger
from sanic.worker.process import WorkerProcess

from api.stop_signals import StopLatch, state_process_pid
from api.workers import heartbeat_slot

log = logging.getLogger("bookshelf.workers")

MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 60.0
POLL_SECONDS: Final = 0.25
# Seconds past GRACEFUL_SHUTDOWN_TIMEOUT a worker may take to stop (its last requests'
# answers, closing the database) before it is killed; and then the main process to finish.
STOP_MARGIN: Final = 3.0
EXIT_MARGIN: Final = 5.0
# Seconds after a stop signal before a worker that shows no stop under way is sent SIGTERM
# again, and again every other poll.
RESEND_AFTER: Final = 1.0
# A worker that exited with these stopped on a signal that may be on its way to the main
# process too (a process-group SIGTERM): it counts as dead only a second later.
_STOP_EXITS: Final = (0, -signal.SIGTERM, -signal.SIGINT)
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class _Stops:
    """Stop signals, and the bound on a stop: the workers still running past it, or at a
    second signal, are killed by pid; the main process, past a further bound, exits."""

    def __init__(self, manager: Any, grace: float, heartbeats: Any) -> None:
        self.manager = manager
        self.grace = grace
        self.heartbeats = heartbeats
        self.failed = False
        self.stop_requested = False
        self._stop_at = 0.0

    def take_stop_signals(self) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._stop_signal)

    def _stop_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested:
            self._kill_workers("a second stop signal arrived")
            return
        self.stop_requested = True
        self._stop_at = time.monotonic()
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

    def _kill_workers(self, why: str) -> None:
        alive = [p for p in self._servers() if p.pid and p.is_alive()]
        if not alive:
            return
        self.failed = True
        log.error(
            "%s; killing the workers still running: %s",
            why,
            ", ".join(f"{p.name} (pid {p.pid})" for p in alive),
        )
        for process in alive:  # by pid: never the process group, which is not only ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)

    def _slot(self, process: WorkerProcess) -> int | None:
        """``process``'s heartbeat slot, None if it has none (no shared memory)."""
        slot = heartbeat_slot(process.name)
        if self.heartbeats is None or slot is None or 2 * slot + 1 >= len(self.heartbeats):
            return None
        return slot

    def _resend_stop(self) -> None:
        """SIGTERM again to each worker whose heartbeat slot has no stop mark: a stop
        signal that lands in the last steps of a worker's start-up can be lost (Sanic's
        stop there ends only the start-up's run of the loop)."""
        for process in self._servers():
            slot = self._slot(process)
            if slot is None or not process.pid:
                continue
            if int(self.heartbeats[2 * slot]) != -process.pid and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def stop_after_state_loss(self) -> None:
        """The state process died and the manager with it: stop the workers here (SIGTERM,
        then SIGKILL past the stop's bound), from the main thread, before it exits."""
        self.failed = True
        if not self.stop_requested:
            self.stop_requested = True
            self._stop_at = time.monotonic()
        for process in self._servers():
            if process.pid and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = self._stop_at + self.grace + STOP_MARGIN
        while time.monotonic() < deadline and any(p.is_alive() for p in self._servers()):
            time.sleep(0.1)
        self._kill_workers("the workers did not stop in time")

    def _bound_stop(self) -> None:
        if not self._stop_at:
            self._stop_at = time.monotonic()
        since = time.monotonic() - self._stop_at
        if since > RESEND_AFTER and int(since / POLL_SECONDS) % 2 == 0:
            self._resend_stop()
        late = since - self.grace - STOP_MARGIN
        if late > EXIT_MARGIN:
            log.critical("the main process did not finish stopping; it exits now (status 1)")
            state_pid = state_process_pid()
            if state_pid:  # by pid, as the workers
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state_pid, signal.SIGKILL)
            os._exit(1)
        if late > 0:
            self._kill_workers(
                f"the stop has taken more than GRACEFUL_SHUTDOWN_TIMEOUT ({self.grace:g} s) "
                f"+ {STOP_MARGIN:g} s"
            )


class Supervisor(_Stops, threading.Thread):
    """Replace dead or hung workers, bound every stop; ``failed`` when the instance should
    exit 1 (it gave up, or a stop had to kill)."""

    def __init__(
        self,
        manager: Any,
        *,
        grace: float = 15.0,
        heartbeat_timeout: float = 5.0,
        heartbeats: Any = None,
    ) -> None:
        _Stops.__init__(self, manager, grace, heartbeats)
        threading.Thread.__init__(self, name="bookshelf-supervisor", daemon=True)
        self.heartbeat_timeout = heartbeat_timeout
        self._deaths: collections.deque[float] = collections.deque()
        self._replacing: dict[str, int] = {}  # worker name -> pid that died
        self._seen_gone: dict[tuple[str, int], float] = {}
        self._signalled: set[int] = set()
        self._hung: set[int] = set()

    @classmethod
    def start_for(cls, app: Sanic, latch: StopLatch | None = None) -> Supervisor:
        """A main_process_ready listener: the manager exists, its workers do not yet."""
        settings = app.ctx.settings
        supervisor = cls(
            app.manager,
            grace=float(app.config.GRACEFUL_SHUTDOWN_TIMEOUT),
            heartbeat_timeout=settings.worker_heartbeat_timeout,
            heartbeats=getattr(app.shared_ctx, "heartbeats", None),
        )
        app.manager.wait_for_ack = supervisor.wait_for_ack
        supervisor.take_stop_signals()
        early = latch.signum if latch else None
        if early or app.manager._shutting_down:
            supervisor._stop_signal(early or signal.SIGTERM, None)
        supervisor.start()
        return supervisor

    def wait_for_ack(self) -> None:
        """In place of ``WorkerManager.wait_for_ack`` (see the module's docstring)."""
        manager = self.manager
        deadline = time.monotonic() + manager.THRESHOLD / 10
        while not self.stop_requested and not self._all_started():
            if time.monotonic() > deadline:
                self._give_up(f"a worker did not start within {manager.THRESHOLD / 10:.0f} s")
            elif manager.monitor_subscriber.poll(0.1):
                message = manager.monitor_subscriber.recv()
                if message == "__TERMINATE_EARLY__":
                    self._give_up("a worker failed to start (its error is logged above)")
                elif isinstance(message, str) and not message.startswith("__"):
                    manager._handle_message(message)  # a restart: a worker died
                else:
                    manager.monitor_publisher.send(message)  # a stop: the monitor loop's
                    break
        if self._stopping():
            self._signal_starting_workers()

    def _all_started(self) -> bool:
        if not self.manager._all_workers_ack():
            return False
        return all(
            p.is_alive() and (self._beat(p) is not None or self._slot(p) is None)
            for p in self._servers()
        )

    def _signal_starting_workers(self) -> None:
        """SIGTERM, once, to each worker that has not set its stop handlers (no heartbeat):
        it ends at once. The manager's shutdown then sends SIGINT, which would raise
        KeyboardInterrupt, with a traceback, in a worker still importing."""
        for process in self._servers():
            pid = process.pid
            if pid and pid not in self._signalled and self._beat(process) is None:
                self._signalled.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def _beat(self, process: WorkerProcess) -> float | None:
        """The monotonic time of ``process``'s last heartbeat; None before its first."""
        slot = self._slot(process)
        if slot is None or not process.pid or int(self.heartbeats[2 * slot]) != process.pid:
            return None
        return float(self.heartbeats[2 * slot + 1])

    def run(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            try:
                if self._stopping():
                    self._bound_stop()
                else:
                    self.check()
            except Exception:  # never let the supervisor die silently
                log.exception("worker supervision failed")

    def check(self) -> None:
        servers = self._servers()
        now = time.monotonic()
        self._kill_hung(servers, now)
        dead = [
            p
            for p in servers
            if p.pid
            and not p.is_alive()
            and self._replacing.get(p.name) != p.pid
            and self._dead_for(p, now) >= (1.0 if p.exitcode in _STOP_EXITS else 0.0)
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
        if not any(p.is_alive() for p in servers):
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

    def _kill_hung(self, servers: list[WorkerProcess], now: float) -> None:
        for process in servers:
            beat = self._beat(process)
            if beat is None or now - beat <= self.heartbeat_timeout or process.pid in self._hung:
                continue
            if not process.is_alive():  # dead, not hung: check() replaces it
                continue
            self._hung.add(process.pid)
            log.error(
                "worker %s (pid %s) has shown no live event loop for %.1f s "
                "(WORKER_HEARTBEAT_TIMEOUT=%g): it is killed and replaced",
                process.name,
                process.pid,
                now - beat,
                self.heartbeat_timeout,
                extra={"worker": process.name, "pid": process.pid},
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)

    def _dead_for(self, process: WorkerProcess, now: float) -> float:
        """Seconds since this check first saw ``process`` gone."""
        first = self._seen_gone.setdefault((process.name, process.pid), now)
        return now - first

    def _give_up(self, why: str) -> None:
        if self._stopping():
            return
        self.failed = True
        log.critical("%s; the instance stops (exit status 1) for its supervisor to restart it", why)
        os.kill(os.getpid(), signal.SIGTERM)
