"""Start the real server (`python main.py serve`) on 127.0.0.1 for tests where workers,
signals or sockets matter, and always stop it; with what those tests share (a book body, a
token on a fresh database, waiting for /readyz)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from db import close_db, open_db, tokens

ROOT = Path(__file__).resolve().parent.parent
# A valid book body for writes to a real server.
BOOK = {"title": "T", "author": "A", "published_date": "2020-01-01", "price": "1.00"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_ready(server: Server, workers: int, timeout: float = 60.0) -> None:
    """Until every worker has said it is ready and one of them answers /readyz."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited early ({server.process.returncode}):\n{server.log()}"
            )
        if server.log().count("Worker ready") >= workers:
            try:
                if httpx.get(f"{server.url}/readyz", timeout=5.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not become ready in time:\n{server.log()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # Whatever of its session is left (a test that killed the main process): never leak.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


def launch_server(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    **popen: Any,
) -> Server:
    """`main.py serve` in a session of its own, not waited for; ``prefix`` runs it through
    another command (a shell that `exec`s it); ``popen``: more of Popen's arguments
    (``preexec_fn``). The caller stops it (``stop``)."""
    port = free_port()
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "DATABASE_URL": f"sqlite://{tmp_path / 'server.sqlite3'}",
        **(env or {}),
    }
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*prefix, sys.executable, "main.py", "serve"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
    return Server(process, port, log_path)


def start_server(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    **popen: Any,
) -> Server:
    """`main.py serve` in a session of its own, ready (every worker up); the caller stops it
    (``stop(server.process)``). ``prefix`` and ``popen`` as for ``launch_server``."""
    server = launch_server(tmp_path, env, prefix, **popen)
    try:
        wait_ready(server, int((env or {}).get("WORKERS", "1")))
    except BaseException:
        stop(server.process)
        raise
    return server


def processes_of(*, session: int | None = None, group: int | None = None) -> list[int]:
    """The live (not zombie) processes of a session (a server started here and everything
    it started) or of a process group."""
    field, wanted = (3, session) if session is not None else (2, group)
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[field]) == wanted and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def session_processes(sid: int) -> list[int]:
    """The live processes of session ``sid`` (``processes_of``)."""
    return processes_of(session=sid)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has died)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@contextlib.contextmanager
def running_server(
    tmp_path: Path, env: dict[str, str] | None = None, **popen: Any
) -> Iterator[Server]:
    server = start_server(tmp_path, env, **popen)
    try:
        yield server
    finally:
        stop(server.process)


def make_token(url: str) -> dict[str, str]:
    """Migrate the database at ``url`` and give a new token's Authorization header."""

    async def create() -> str:
        await open_db(url, pool_min=1, pool_max=1)
        try:
            return await tokens.create_token(name="writer")
        finally:
            await close_db()

    return {"Authorization": f"Token {asyncio.run(create())}"}


def readyz(server: Server, status: int) -> dict[str, Any]:
    """/readyz's body once it answers ``status`` (it re-checks at most once a second)."""
    for _ in range(50):
        response = httpx.get(f"{server.url}/readyz", timeout=10)
        if response.status_code == status:
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"/readyz still {response.status_code}: {response.text}")
