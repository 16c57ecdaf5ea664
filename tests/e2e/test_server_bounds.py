"""Bounds against abusive clients and a clean shutdown, on the real server process."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.server_process import BOOK, run_cli, running_server


@pytest.mark.server
def test_body_over_max_body_bytes_is_413_json(tmp_path: Path) -> None:
    with running_server(tmp_path, {"MAX_BODY_BYTES": "2048"}) as server:
        token = run_cli(
            "token",
            "create",
            "big",
            env={"DATABASE_URL": f"sqlite://{tmp_path / 'server.sqlite3'}"},
        ).stdout.strip()
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        big = json.dumps([BOOK] * 100).encode()
        assert len(big) > 2048
        response = httpx.post(f"{server.url}/books/", content=big, headers=headers)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert "2048" in response.json()["detail"]
        small = httpx.post(
            f"{server.url}/books/", json=BOOK, headers={"Authorization": f"Token {token}"}
        )
        assert small.status_code == 201


@pytest.mark.server
def test_a_client_trickling_headers_is_cut_off_without_holding_the_worker(tmp_path: Path) -> None:
    header = b"GET /books/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    with running_server(tmp_path, {"REQUEST_TIMEOUT": "1"}) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.settimeout(0.2)
        received = b""
        sent = 0
        try:
            for byte in header:
                slow.sendall(bytes([byte]))
                sent += 1
                # Meanwhile the one worker still serves everybody else.
                if sent % 10 == 0:
                    assert httpx.get(f"{server.url}/healthz").status_code == 200
                try:
                    chunk = slow.recv(4096)
                except TimeoutError:
                    continue
                received += chunk
                break
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            slow.close()
    assert sent < len(header), "the server waited for the whole trickled request"
    if received:
        assert received.startswith(b"HTTP/1.1 408"), received


@pytest.mark.server
def test_sigterm_during_a_burst_of_writes_loses_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "server.sqlite3"
    env = {"WORKERS": "2", "GRACEFUL_SHUTDOWN_TIMEOUT": "20"}
    outcomes: dict[str, object] = {}

    async def burst(url: str, headers: dict[str, str], server_process) -> None:  # type: ignore[no-untyped-def]
        limits = httpx.Limits(max_keepalive_connections=0)  # a fresh connection each
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:

            async def write(i: int) -> None:
                title = f"burst-{i}"
                await asyncio.sleep(i * 0.004)
                try:
                    r = await c.post("/books/", json={**BOOK, "title": title}, headers=headers)
                    outcomes[title] = r.status_code
                except httpx.TransportError as exc:
                    outcomes[title] = type(exc).__name__

            async def terminate() -> None:
                await asyncio.sleep(0.4)
                server_process.send_signal(signal.SIGTERM)

            await asyncio.gather(terminate(), *(write(i) for i in range(400)))

    with running_server(tmp_path, env) as server:
        token = run_cli(
            "token", "create", "burst", env={"DATABASE_URL": f"sqlite://{db_path}"}
        ).stdout.strip()
        asyncio.run(burst(server.url, {"Authorization": f"Token {token}"}, server.process))
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.process.returncode == 0, server.log()
        log = server.log()

    statuses = [o for o in outcomes.values() if isinstance(o, int)]
    assert statuses.count(201) > 0, outcomes
    assert all(s < 500 for s in statuses), outcomes
    with sqlite3.connect(db_path) as db:
        stored = {row[0] for row in db.execute("SELECT title FROM book")}
    for title, outcome in outcomes.items():
        if outcome == 201:
            assert title in stored, f"{title} was acknowledged but is not in the database"
        elif not isinstance(outcome, int):
            # A connection the server never took: it must have left no trace either.
            assert title not in stored, f"{title} was written but the client got {outcome}"
    assert "Traceback" not in log, log
