"""A worker's side of supervision: it shows the main process its event loop runs, stops
once however many stop signals arrive, and stops when the main process dies. The main
process's side is ``api.supervisor``.

Heartbeat: the main process shares a small array of doubles with its workers
(``app.shared_ctx.heartbeats``, created in a main_process_start listener, which is how Sanic
shares memory with workers); a worker owns two slots, by its name's number: its pid, then
the ``time.monotonic()`` (one clock for every process) of its event loop's last beat, a
timer every ``WORKER_HEARTBEAT_TIMEOUT`` / 5 seconds (at most 1 s). A stopped process
(SIGSTOP) or a blocked loop stops beating; no request pays for it.

Killed with SIGKILL, the main process cannot stop its workers; they would live on as
orphans holding the port. Each worker watches its parent and stops when it changes. A
second stop signal (a terminal's Ctrl-C reaches the workers as well as the main process,
which then signals them again) would stop the event loop in the middle of the graceful
shutdown, leaving the database open and aiosqlite's thread holding the process: a worker
stops once and ignores the rest. A stop signal that arrives while start-up's last
listeners run is carried out once the loop serves (Sanic's stop would end only the
listeners' run, and the loop would serve on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import time
from typing import Any, Final

from sanic import Sanic

log = logging.getLogger("bookshelf.workers")

PARENT_POLL_SECONDS: Final = 0.5
_SLOT: Final = re.compile(r"Sanic-Server-(\d+)-")
# The pid of Sanic's state-sharing process (a multiprocessing manager), for the workers.
STATE_PID_ENV: Final = "BOOKSHELF_STATE_PID"


def _served() -> bool:
    """True in a worker of Sanic's multi-process server (never in an ASGI or test app)."""
    return os.environ.get("SANIC_WORKER_PROCESS") == "true"


def heartbeat_slot(worker_name: str) -> int | None:
    """The heartbeat slot of a server worker (``Sanic-Server-N-0``: N), else None."""
    match = _SLOT.match(worker_name)
    return int(match.group(1)) if match else None


def register(app: Sanic) -> None:
    """A worker's side: beat, stop once, and stop when the main process is gone."""

    parent: list[int] = []

    @app.main_process_start
    async def _share_heartbeats(app: Sanic) -> None:
        # Two doubles per worker: its pid, its last beat. Written by one process each.
        app.shared_ctx.heartbeats = multiprocessing.Array("d", 2 * app.state.workers, lock=False)

    @app.after_server_start
    async def _supervised(app: Sanic) -> None:
        if not _served():
            return
        loop = asyncio.get_running_loop()
        stopping = False

        def stop_once() -> None:
            nonlocal stopping
            if stopping:
                return
            if not app.state.is_running:
                # The rest of start-up still runs in run_until_complete: Sanic's stop
                # (loop.stop()) would end only that, and the loop would then serve on.
                loop.call_later(0.05, stop_once)
                return
            stopping = True
            _mark_stopping(app)
            app.stop(terminate=False)

        # Sanic's runner registered app.stop for both signals just before this listener.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_once)
        parent.append(os.getppid())
        app.add_task(_watch_parent(parent[0], stop_once), name="bookshelf.watch_parent")
        _beat(app, loop)

    @app.before_server_stop
    async def _ignore_further_stops(app: Sanic) -> None:
        # Sanic has removed its handlers; the stop under way is bounded by
        # GRACEFUL_SHUTDOWN_TIMEOUT, and the main process can still SIGKILL.
        if _served():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _mark_stopping(app)

    @app.after_server_stop
    async def _orphaned(app: Sanic) -> None:
        # The main process is gone: so must be Sanic's state process it started (it
        # ignores SIGTERM, see api.stop_signals.StopLatch), else it and multiprocessing's
        # resource tracker live on. The workers' last use of it is behind them.
        state_pid = os.environ.get(STATE_PID_ENV, "")
        if parent and os.getppid() != parent[0] and state_pid.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(state_pid), signal.SIGKILL)


def _slots(app: Sanic) -> tuple[Any, int] | tuple[None, None]:
    """The shared heartbeat array and this worker's first slot in it, if it has one."""
    beats = getattr(app.shared_ctx, "heartbeats", None)
    slot = heartbeat_slot(os.environ.get("SANIC_WORKER_NAME", ""))
    if beats is None or slot is None or 2 * slot + 1 >= len(beats):
        return None, None
    return beats, 2 * slot


def _mark_stopping(app: Sanic) -> None:
    """Tell the main process this worker's stop is under way (its pid, negated): a stop
    signal lost in start-up is sent again to a worker without the mark, never to one
    with it."""
    beats, at = _slots(app)
    if beats is not None:
        beats[at] = -float(os.getpid())


def _beat(app: Sanic, loop: asyncio.AbstractEventLoop) -> None:
    """Start this worker's heartbeat: a timer in its event loop, not a cost per request."""
    beats, first = _slots(app)
    if beats is None:
        return
    interval = min(1.0, app.ctx.settings.worker_heartbeat_timeout / 5)
    at = first + 1

    owned = False

    def beat() -> None:
        nonlocal owned
        beats[at] = time.monotonic()
        if not owned and app.state.is_running:
            # Start-up is over (its last listeners can hold the loop for a while): the
            # pid, written after a time, makes the slot this worker's.
            owned = True
            if beats[at - 1] != -os.getpid():  # not once its stop is under way
                beats[at - 1] = float(os.getpid())
        loop.call_later(interval if owned else 0.01, beat)

    beat()


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
