"""The real server: /metrics sums every worker's requests at once, and stopping it logs
nothing of its own above INFO."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import running_server, stop

REQUESTS = 20


def _requests_counted(exposition: str, route: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "bookshelf_http_requests_total" and sample.labels["route"] == route
    )


def _wait_dead(pid: int) -> None:
    """Until ``pid`` (not our child) is gone or a zombie: it takes no connection."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(500):
        try:
            if stat.read_text().rpartition(")")[2].split()[0] in ("Z", "X"):
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"worker {pid} still runs after SIGKILL")


@pytest.mark.server
def test_a_scrape_right_after_20_requests_counts_all_20_on_two_workers(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        served_by = set()
        for _ in range(REQUESTS):
            # A client of its own per request: a fresh connection, which either worker takes.
            response = httpx.get(f"{server.url}/healthz")
            assert response.status_code == 200
            # A made-up request id is a per-process prefix and a 12-digit counter.
            served_by.add(response.headers["x-request-id"][:-12])
        exposition = httpx.get(f"{server.url}/metrics").text
    assert len(served_by) == 2, "both workers must have answered some of the requests"
    assert _requests_counted(exposition, "/healthz") == REQUESTS
    latency = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "bookshelf_http_request_duration_seconds_bucket"
        and sample.labels["route"] == "/healthz"
    }
    assert latency["+Inf"] == REQUESTS


@pytest.mark.server
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_killed_workers_requests_stay_counted(tmp_path: Path) -> None:
    with running_server(tmp_path, {"WORKERS": "2"}) as server:
        for _ in range(REQUESTS):
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        pids = re.findall(r"Worker ready \[(\d+)\]", server.log())
        os.kill(int(pids[0]), signal.SIGKILL)
        _wait_dead(int(pids[0]))
        exposition = httpx.get(f"{server.url}/metrics").text
    assert _requests_counted(exposition, "/healthz") == REQUESTS


@pytest.mark.server
def test_stopping_the_server_logs_no_warning_and_leaves_no_metrics_folder(
    tmp_path: Path,
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    with running_server(tmp_path, {"WORKERS": "2", "TMPDIR": str(temp)}) as server:
        assert len(list(temp.glob("bookshelf-metrics-*"))) == 1
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert stop(server.process) == 0
    lines = server.log().splitlines()
    assert any("Server Stopped" in line for line in lines)
    levels = {line: json.loads(line)["level"] for line in lines if line.startswith("{")}
    # Every line is a JSON record: a warning printed some other way would be missed.
    assert len(levels) == len(lines)
    assert [line for line, level in levels.items() if level not in ("DEBUG", "INFO")] == []
    assert list(temp.glob("bookshelf-metrics-*")) == []
