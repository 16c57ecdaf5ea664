"""Every stop ends: SIGTERM at any moment of start-up ends the instance and every process it
started; a second SIGTERM or a stuck stop kills the server's own processes, never another
process of its process group; losing the worker manager's state process is one log line and
exit 1, with no traceback and nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from server_process import Server, launch_server, pid_alive, session_processes, stop, wait_ready

pytestmark = pytest.mark.server

GRACE = 2.0
# Bounds on waits, not expectations: a stop takes GRACE + 3 s at most, plus start-up time
# on a loaded machine.
EXIT_WAIT = 60.0


def _wait_gone(server: Server, keep: frozenset[int] = frozenset()) -> list[int]:
    """The server's session's processes still alive (``keep`` aside) after at most 10 s."""
    deadline = time.monotonic() + 10
    left = [p for p in session_processes(server.process.pid) if p not in keep]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in session_processes(server.process.pid) if p not in keep]
    return left


def _until_healthy(server: Server) -> None:
    deadline = time.monotonic() + EXIT_WAIT
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.02)
    pytest.fail(f"never healthy:\n{server.log()[-3000:]}")


@pytest.mark.parametrize("moment", [0.0, 0.3, 0.8, 1.5, "first /healthz 200"])
def test_sigterm_at_any_moment_of_start_up_ends_the_instance(
    tmp_path: Path, moment: float | str
) -> None:
    server = launch_server(tmp_path, {"WORKERS": "2", "GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACE)})
    try:
        if isinstance(moment, str):
            _until_healthy(server)
        else:
            time.sleep(moment)
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after SIGTERM:\n{server.log()[-3000:]}")
        left = _wait_gone(server)
        log = server.log()
    finally:
        stop(server.process)
    assert left == [], f"left running: {left}\n{log[-3000:]}"
    # Ended by the signal itself only before Python set its handlers; else a clean stop.
    assert code == 0 or (code == -signal.SIGTERM and "Starting worker" not in log), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("how", ["second SIGTERM", "stuck stop"])
def test_a_forced_stop_kills_only_the_servers_own_processes(tmp_path: Path, how: str) -> None:
    # A shell that starts a bystander in the server's process group, then becomes the server.
    prefix = ["sh", "-c", 'sleep 300 & exec "$@"', "sh"]
    env = {"WORKERS": "2", "GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACE)}
    server = launch_server(tmp_path, env, prefix)
    try:
        wait_ready(server, 2)
        (bystander,) = [
            p
            for p in session_processes(server.process.pid)
            if Path(f"/proc/{p}/comm").read_text().strip() == "sleep"
        ]
        worker = int(server.log().split("Worker ready [", 1)[1].split("]", 1)[0])
        # A worker that cannot stop: the stop waits for it.
        os.kill(worker, signal.SIGSTOP)
        server.process.send_signal(signal.SIGTERM)
        if how == "second SIGTERM":
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running:\n{server.log()[-3000:]}")
        left = _wait_gone(server, keep=frozenset({bystander}))
        survived = pid_alive(bystander)
        log = server.log()
    finally:
        stop(server.process)
    assert survived, f"the bystander in the server's process group was killed:\n{log[-3000:]}"
    assert left == [], f"left running: {left}\n{log[-3000:]}"
    assert code == 1, log[-3000:]
    assert f"(pid {worker})" in log


def test_losing_the_state_process_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"WORKERS": "2", "GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACE)}
    server = launch_server(tmp_path, env)
    try:
        wait_ready(server, 2)
        workers = {int(p.split("]", 1)[0]) for p in server.log().split("Worker ready [")[1:]}
        children = {
            p
            for p in session_processes(server.process.pid)
            if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
        }
        (state,) = children - workers
        os.kill(state, signal.SIGKILL)
        try:
            code = server.process.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running:\n{server.log()[-3000:]}")
        left = _wait_gone(server)
        log = server.log()
    finally:
        stop(server.process)
    assert code == 1, log[-3000:]
    assert left == [], f"left running: {left}\n{log[-3000:]}"
    assert "Traceback" not in log and "BrokenPipeError" not in log, log[-3000:]
    said = [line for line in log.splitlines() if "state process" in line]
    assert len(said) == 1 and f"(pid {state}) died" in said[0], log[-3000:]
