"""The main process's stop signal, arriving while the main thread is in the middle of a
call to Sanic's state-sharing process, leaves that call's answer intact and stops the
workers from the manager's monitor loop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sanic.worker.manager import MonitorCycle, WorkerManager
from sanic.worker.process import ProcessState

from api.supervisor import Supervisor


def _idle(**_settings: Any) -> None:
    time.sleep(60)


class _SignalAfterSend:
    """The proxy's connection, raising SIGTERM once, right after a request went out and
    before its reply is read: the moment a real signal can land in."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.armed = False

    def send(self, obj: Any) -> None:
        self._connection.send(obj)
        if self.armed:
            self.armed = False
            signal.raise_signal(signal.SIGTERM)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@pytest.fixture
def manager() -> Iterator[WorkerManager]:
    context = multiprocessing.get_context("spawn")  # as Sanic's: no handlers inherited
    sync = context.Manager()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    publisher, subscriber = context.Pipe()
    manager = WorkerManager(2, _idle, {}, context, (publisher, subscriber), sync.dict())
    try:
        manager.start()
        yield manager
    finally:
        for process in manager.processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process._current_process.join(5)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        sync.shutdown()


def test_a_stop_signal_inside_a_state_call_neither_corrupts_it_nor_is_lost(
    manager: WorkerManager,
) -> None:
    supervisor = Supervisor(manager)  # its thread is not started: only its signal handler
    supervisor.take_stop_signals()
    worker = next(iter(manager.transient_processes)).name
    expected = dict(manager.worker_state[worker])
    wrapped = _SignalAfterSend(manager.worker_state._tls.connection)
    manager.worker_state._tls.connection = wrapped

    wrapped.armed = True
    # What the monitor loop asks every tenth of a second (WorkerManager._sync_states).
    assert manager.worker_state[worker] == expected
    assert not wrapped.armed, "the signal was raised inside the call"
    assert supervisor.stop_requested
    assert manager.worker_state[worker] == expected  # the connection is still in step

    # The monitor loop's next cycle carries the shutdown out.
    assert manager._poll_monitor() is MonitorCycle.BREAK
    assert manager._shutting_down
    for process in manager.transient_processes:
        assert process.state is ProcessState.TERMINATED
        process._current_process.join(10)
        assert not process.is_alive()
