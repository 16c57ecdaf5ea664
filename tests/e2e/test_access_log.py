"""The access log of the real server: one JSON line per request when ACCESS_LOG is on."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.server_process import running_server


@pytest.mark.server
def test_access_log_lines_when_enabled(tmp_path: Path) -> None:
    with running_server(tmp_path, {"ACCESS_LOG": "true"}) as server:
        httpx.get(f"{server.url}/books/7/", headers={"X-Request-ID": "trace-me"})
        log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [
        line
        for line in lines
        if line.get("name") == "bookshelf.access" and line.get("request_id") == "trace-me"
    ]
    assert len(access) == 1, log
    entry = access[0]
    assert entry["method"] == "GET" and entry["route"] == "/books/<id>" and entry["status"] == 404
    assert isinstance(entry["duration_ms"], float)


@pytest.mark.server
def test_access_log_is_off_by_default(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        httpx.get(f"{server.url}/books/")
        log = server.log()
    assert "bookshelf.access" not in log
