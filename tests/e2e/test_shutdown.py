"""A stop under load: SIGTERM while clients keep writing on keep-alive connections.

Every request already received is answered (its connection closed after the answer), the
instance exits 0 within GRACEFUL_SHUTDOWN_TIMEOUT, and nothing is stored without its
answer having been sent: the ids stored are exactly the ids the clients were given.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import book
from server_process import run_cli, start_server, stop

WORKERS = 2
CLIENTS = 4
GRACE = 5.0
# Each round starts an instance (a few seconds on a busy 2-core machine);
# BOOKSHELF_STOP_ROUNDS=20 for the full check.
ROUNDS = int(os.environ.get("BOOKSHELF_STOP_ROUNDS", "4"))


def _writer(port: int, auth: str, answered: list[int], go: threading.Event) -> None:
    """POST on one keep-alive connection until the server stops answering."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GRACE + 10)
    body = json.dumps(book(1)).encode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    go.wait()
    try:
        for _ in range(10_000):  # bounded; the server stops long before
            conn.request("POST", "/books/", body, headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 201:
                break
            answered.append(json.loads(payload)["id"])
            if response.getheader("Connection", "").lower() == "close":
                conn.close()  # the next request opens a new connection, if one is accepted
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


@pytest.mark.server
def test_sigterm_under_keep_alive_writes_answers_every_stored_write(tmp_path: Path) -> None:
    db_path = tmp_path / "stop.sqlite3"
    db_url = f"sqlite://{db_path}"
    created = run_cli("token", "create", "stopper", env={"DATABASE_URL": db_url})
    assert created.returncode == 0, created.stderr
    auth = f"Token {created.stdout.strip()}"
    env = {
        "WORKERS": str(WORKERS),
        "DATABASE_URL": db_url,
        "GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACE),
        "MIGRATE_ON_START": "false",  # migrated by `token create` above
    }
    seen: set[int] = set()
    for round_ in range(ROUNDS):
        server = start_server(tmp_path, env)
        answered: list[int] = []
        go = threading.Event()
        clients = [
            threading.Thread(target=_writer, args=(server.port, auth, answered, go))
            for _ in range(CLIENTS)
        ]
        try:
            for client in clients:
                client.start()
            go.set()
            time.sleep(0.3)  # writes under way on every connection
            stopped_at = time.monotonic()
            if round_ % 2:
                # The whole process group, as a terminal's Ctrl-C or `kill -- -PGID` does:
                # each worker gets this signal and the main process's own stop signal.
                os.killpg(server.process.pid, signal.SIGTERM)
            else:
                server.process.send_signal(signal.SIGTERM)
            try:
                code = server.process.wait(GRACE + 5)
            except subprocess.TimeoutExpired:
                pytest.fail(f"round {round_}: no exit after SIGTERM:\n{server.log()[-3000:]}")
            took = time.monotonic() - stopped_at
            for client in clients:
                client.join(GRACE + 10)
        finally:
            go.set()
            stop(server.process)
        assert code == 0, f"round {round_}: exit {code}\n{server.log()[-3000:]}"
        assert took < GRACE + 3, f"round {round_}: {took:.1f} s"
        assert answered, f"round {round_}: no write was answered"
        with sqlite3.connect(db_path) as db:
            stored = {row[0] for row in db.execute("SELECT id FROM book")}
        new, seen = stored - seen, stored
        assert new == set(answered), (
            f"round {round_}: stored but never answered {sorted(new - set(answered))}, "
            f"answered but not stored {sorted(set(answered) - new)}"
        )
