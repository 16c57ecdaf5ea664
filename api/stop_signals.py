"""The main process's stop signals before Sanic's worker manager exists (``StopLatch``), and
Sanic's state process (its ``SyncManager``): remembered, and its loss said in one line."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing import resource_tracker
from typing import Any

from api.workers import STATE_PID_ENV

log = logging.getLogger("bookshelf.workers")


class StopLatch:
    """Stop signals before the worker manager can take them: remembered, then acted on.

    Sanic first starts its state process (a multiprocessing manager). It must outlive a
    SIGTERM sent to the whole process group (systemd's default, `kill -- -PGID`) until the
    workers have stopped, since they report their states through it; it is spawned while
    SIGTERM is ignored, and an ignored signal stays ignored across exec (the main process
    shuts it down last). The main process blocks SIGTERM meanwhile: Linux never discards
    a blocked signal as ignored, it stays pending until ``release`` and is then
    remembered, like a SIGINT. (Only the main thread runs here, the one the kernel picks.)
    multiprocessing's resource tracker, started on first need, unblocks SIGTERM after
    spawning itself: it is started first.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> StopLatch:
        resource_tracker.ensure_running()
        signal.signal(signal.SIGINT, self._note)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        if signal.SIGTERM in signal.sigpending():  # ignoring it would discard it
            self.signum = signal.SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or signum

    def release(self) -> None:
        """A main_process_start listener: the state process exists, the workers not yet."""
        signal.signal(signal.SIGTERM, self._note)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


_state_process: list[multiprocessing.process.BaseProcess] = []


def note_state_process() -> None:
    """A main_process_start listener: remember Sanic's state process, and tell the workers
    (by their environment) its pid."""
    for child in multiprocessing.active_children():
        if child.name.startswith("SyncManager") and child.pid:
            _state_process[:] = [child]
            os.environ[STATE_PID_ENV] = str(child.pid)


def state_process_pid() -> int | None:
    return _state_process[0].pid if _state_process else None


def state_process_lost() -> bool:
    """True, after one log line saying so, if Sanic's state process has died."""
    if not _state_process or _state_process[0].is_alive():
        return False
    process = _state_process[0]
    log.critical(
        "the worker manager's state process (pid %s) died with exit code %s; the instance "
        "stops its workers and exits with status 1",
        process.pid,
        process.exitcode,
        extra={"pid": process.pid, "exit_code": process.exitcode},
    )
    return True
