"""Every line the server writes is one JSON object, whatever library writes it: Sanic,
asyncio, Python's warnings, uncaught exceptions (a traceback is a field, not lines)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_process import ROOT, running_server


def _parsed(text: str) -> list[dict[str, object]]:
    lines = text.splitlines()
    bad = [line for line in lines if not _is_json_object(line)]
    assert bad == [], "lines that are not JSON:\n" + "\n".join(bad[:20])
    return [json.loads(line) for line in lines]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.mark.server
def test_every_line_of_a_served_instance_is_json(tmp_path: Path) -> None:
    # Development mode makes asyncio log (slow callbacks) and shows every warning.
    env = {"WORKERS": "2", "PYTHONDEVMODE": "1", "PYTHONWARNINGS": "always"}
    with running_server(tmp_path, env) as server:
        for raw in (
            b"NONSENSE\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            b"POST /books/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",  # hangs up mid-body
        ):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                s.sendall(raw)
                time.sleep(0.05)
        assert httpx.get(f"{server.url}/books/999/").status_code == 404
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    records = _parsed(server.log())
    names = {record.get("name") for record in records}
    # asyncio's slow-callback lines (development mode) come on a busy machine, as here.
    assert {"sanic.server", "sanic.root"} <= names, names


def test_warnings_and_uncaught_exceptions_are_json_lines() -> None:
    program = (
        "from api.logs import capture_process\n"
        "capture_process('INFO')\n"
        "import logging, threading, warnings\n"
        "warnings.warn('a warning')\n"
        "logging.getLogger('asyncpg.pool').warning('a library says\\nover two lines')\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='doomed'); t.start(); t.join()\n"
        "raise RuntimeError('boom')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    records = _parsed(done.stderr)
    by_name = {record["name"]: record for record in records}
    assert "a warning" in str(by_name["py.warnings"]["message"])
    assert by_name["asyncpg.pool"]["message"] == "a library says\nover two lines"
    thread, uncaught = [r for r in records if r["name"] == "bookshelf"]
    assert "ZeroDivisionError" in str(thread["exc_info"]) and "doomed" in str(thread["message"])
    assert str(uncaught["exc_info"]).startswith("Traceback") and "boom" in str(uncaught["exc_info"])
    assert uncaught["level"] == "CRITICAL"
