"""Worker processes under SIGKILL: a dead worker is replaced and logged; with none left the
instance exits 1; the main process killed takes its workers with it, so the port is free; a
worker killed during start-up, or stopped (SIGSTOP: no heartbeat), is replaced and logged."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from server_process import Server, launch_server, processes_of, running_server, stop

pytestmark = pytest.mark.server


def _ready_pids(server: Server) -> list[int]:
    return [int(pid) for pid in re.findall(r"Worker ready \[(\d+)\]", server.log())]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has died too
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition, timeout: float, what: str, server: Server) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout} s:\n{server.log()[-3000:]}")


def _json_lines(server: Server) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_a_killed_worker_is_replaced_and_logged(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        first = _ready_pids(server)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        _wait(lambda: len(_ready_pids(server)) == 3, 60, "no new worker", server)
        new = _ready_pids(server)[-1]
        assert new not in first and _alive(new) and _alive(first[1])
        assert not _alive(first[0])
        died = [
            line
            for line in _json_lines(server)
            if line.get("name") == "bookshelf.workers" and line.get("pid") == first[0]
        ]
        assert len(died) == 1 and died[0]["exit_code"] == -signal.SIGKILL
        # A new connection each time, so both workers take some of them.
        for _ in range(20):
            response = httpx.get(f"{server.url}/healthz", headers={"Connection": "close"})
            assert response.status_code == 200
        assert server.process.poll() is None


def test_with_every_worker_killed_the_instance_exits_1(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        for pid in _ready_pids(server):
            os.kill(pid, signal.SIGKILL)
        code = server.process.wait(30)
        assert code == 1, server.log()[-3000:]
        assert "no worker is left" in server.log()
        with socket.socket() as s:  # the listening socket went with it
            assert s.connect_ex(("127.0.0.1", server.port)) != 0


def test_killing_the_main_process_stops_its_workers(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        workers = _ready_pids(server)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
        _wait(lambda: not any(_alive(p) for p in workers), 15, "workers still alive", server)
        # Sanic's state process and multiprocessing's resource tracker too: nothing is left.
        group = server.process.pid
        _wait(
            lambda: not processes_of(group=group),
            10,
            f"{processes_of(group=group)} still alive",
            server,
        )
        with socket.socket() as s:  # a restart can bind the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", server.port))
        assert "the main process" in server.log()


def _started_pids(server: Server) -> list[int]:
    return [int(pid) for pid in re.findall(r"Starting worker \[(\d+)\]", server.log())]


def test_a_worker_killed_during_start_up_is_replaced(tmp_path: Path) -> None:
    server = launch_server(tmp_path, {"WORKERS": "2"})
    try:
        _wait(lambda: _started_pids(server), 60, "no worker started", server)
        first = _started_pids(server)[0]
        os.kill(first, signal.SIGKILL)  # before it is ready: its start-up runs
        _wait(
            lambda: len([p for p in _ready_pids(server) if _alive(p)]) == 2,
            30,
            "not two live workers",
            server,
        )
        assert first not in _ready_pids(server)
        died = [
            line
            for line in _json_lines(server)
            if line.get("name") == "bookshelf.workers" and line.get("pid") == first
        ]
        assert len(died) == 1 and died[0]["exit_code"] == -signal.SIGKILL
        assert server.process.poll() is None
    finally:
        stop(server.process)


def test_a_stopped_worker_misses_its_heartbeat_and_is_replaced(tmp_path: Path) -> None:
    env = {"WORKERS": "2", "WORKER_HEARTBEAT_TIMEOUT": "2"}
    with running_server(tmp_path, env) as server:
        paused, other = _ready_pids(server)
        os.kill(paused, signal.SIGSTOP)
        _wait(lambda: not _alive(paused), 20, "the stopped worker still alive", server)
        _wait(lambda: len(_ready_pids(server)) == 3, 60, "no new worker", server)
        assert _alive(other) and _alive(_ready_pids(server)[-1])
        hung = [
            line
            for line in _json_lines(server)
            if line.get("pid") == paused and "WORKER_HEARTBEAT_TIMEOUT" in str(line["message"])
        ]
        assert len(hung) == 1, server.log()[-3000:]
        for _ in range(20):
            response = httpx.get(f"{server.url}/healthz", headers={"Connection": "close"})
            assert response.status_code == 200
        assert server.process.poll() is None


def _connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server's end of the connection from ``client_port``."""
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            inode = fields[9]
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_a_worker_killed_mid_request_is_replaced_and_logged(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        workers = _ready_pids(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as client:
            # A request under way: its headers read, its body still arriving.
            client.sendall(
                b"POST /books/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            owner: list[int] = []

            def found() -> bool:
                pid = _connection_owner(server.port, client.getsockname()[1], workers)
                owner[:] = [pid] if pid else []
                return bool(owner)

            _wait(found, 10, "no worker holds the connection", server)
            os.kill(owner[0], signal.SIGKILL)
            try:
                answer = client.recv(1024)
            except ConnectionResetError:
                answer = b""
            assert answer == b""  # closed, no answer
        _wait(lambda: len(_ready_pids(server)) == 3, 60, "no new worker", server)
        died = [
            line
            for line in _json_lines(server)
            if line.get("name") == "bookshelf.workers" and line.get("pid") == owner[0]
        ]
        assert len(died) == 1 and died[0]["exit_code"] == -signal.SIGKILL
        response = httpx.get(f"{server.url}/healthz", headers={"Connection": "close"})
        assert response.status_code == 200
