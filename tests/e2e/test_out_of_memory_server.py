"""A real server under an address-space limit (RLIMIT_AS, as ``prlimit --as`` sets it):
a body that exhausts its memory is a JSON 413 with Retry-After, logged as one line, and the
same worker goes on serving; never a 500, a closed connection or a crashed worker.

The server starts under a generous limit (so it knows allocations can fail), then its
worker's limit is lowered to what it uses plus 64 MiB: a limit that fits this machine's
worker, whatever its size.
"""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

import httpx
import pytest
from server_process import BOOK, make_token, readyz, running_server

pytestmark = pytest.mark.server

ROOM = 64 << 20


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _worker_pid(log: str) -> int:
    (pid,) = re.findall(r"Starting worker \[(\d+)\]", log)
    return int(pid)


def _vm_size(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


def _bodies() -> dict[str, bytes]:
    one = json.dumps({**BOOK, "title": "x" * 1_000_000}).encode()
    small = [{**BOOK, "title": str(i)} for i in range(600_000)]
    return {
        # Past the room: its buffer cannot be made.
        "one buffer too many": b"[" + b",".join([one] * 100) + b"]",
        # Fits as bytes; its parse (orjson: some 14 times its size) does not.
        "a parse too many": json.dumps(small).encode(),
    }


def test_a_body_that_exhausts_memory_is_413_and_the_worker_serves_on(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'server.sqlite3'}"
    auth = make_token(url)
    env = {"DATABASE_URL": url, "MAX_BODY_BYTES": str(256 << 20)}
    bodies = _bodies()
    with running_server(tmp_path, env, preexec_fn=_limit_address_space) as server:
        worker = _worker_pid(server.log())
        answers = {}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # Served a while first: its threads have made their C heaps (64 MiB of
            # address space each, reserved by glibc on a thread's first allocation).
            assert client.post("/books/", json=[BOOK] * 1000, headers=auth).status_code == 201
            assert client.get("/books/?limit=100").status_code == 200
            limit = _vm_size(worker) + ROOM
            resource.prlimit(worker, resource.RLIMIT_AS, (limit, limit))
            for name, body in bodies.items():
                answers[name] = client.post(
                    "/books/",
                    content=body,
                    headers={**auth, "Content-Type": "application/json"},
                )
            bulk = client.post("/books/", json=[BOOK] * 1000, headers=auth)
            listed = client.get("/books/?limit=1")
        readyz(server, 200)
        assert _worker_pid(server.log()) == worker  # the same worker, not a replacement
        log = server.log()
    for name, response in answers.items():
        assert response.status_code == 413, (name, response.status_code, response.text)
        assert "ran out of memory" in response.json()["detail"], name
        assert "nothing was stored" in response.json()["detail"], name
        assert response.headers["retry-after"] == "5"
    assert bulk.status_code == 201, bulk.text
    assert listed.json()["count"] == 2000
    assert "Traceback" not in log
    assert log.count("out of memory: answered 413") == len(bodies)
