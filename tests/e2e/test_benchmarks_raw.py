"""The raw baseline (benchmarks/baselines/raw.py) answers what the service answers, so a
ratio to it compares the same work. Both real servers, each on its own copy of one seed."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.server


def _call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, str | None, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, tag, raw = response.status, response.headers.get("ETag"), response.read()
    except urllib.error.HTTPError as exc:
        status, tag, raw = exc.code, exc.headers.get("ETag"), exc.read()
    port = url.split(":")[2].split("/")[0]
    return status, tag, json.loads(raw.decode().replace(port, "PORT"))


def test_raw_baseline_answers_the_service_bodies(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    from benchmarks import dataset, servers
    from benchmarks.scenarios import RAW, SERVICE

    data = dataset.prepare(300, seed=1, database_url=None, work_dir=tmp_path)
    with (
        servers.running(
            SERVICE,
            workers=1,
            log_dir=tmp_path,
            database_url=dataset.database_for(SERVICE, data, tmp_path),
        ) as svc,
        servers.running(
            RAW, workers=1, log_dir=tmp_path, database_url=dataset.database_for(RAW, data, tmp_path)
        ) as raw,
    ):
        (cursor, *_) = dataset.deep_cursors(svc.url, 300)
        by_price = _call("GET", f"{svc.url}/books/?ordering=price&limit=5")[2]["next"]
        reads = [
            "/books/5/",
            "/books/9999/",
            "/books/?limit=20",
            "/books/",
            f"/books/?author={quote(data.authors[2])}",
            "/books/?search=river",
            "/books/?ordering=price&limit=20",
            f"/books/?limit=20&cursor={cursor}",
            by_price.split("PORT")[1],
        ]
        for path in reads:
            assert _call("GET", svc.url + path) == _call("GET", raw.url + path), path
        auth = {"Authorization": f"Token {data.token}", "Content-Type": "application/json"}
        book = {"title": "T", "author": "A", "published_date": "2000-01-02", "price": "12.5"}
        writes: list[tuple[str, str, Any, dict[str, str]]] = [
            ("POST", "/books/", book, auth),
            ("POST", "/books/", [book, book], auth),
            ("PATCH", "/books/7/", {"price": "3.10"}, {**auth, "If-Match": '"7-1"'}),
            ("PATCH", "/books/7/", {"price": "3.20"}, {**auth, "If-Match": '"7-1"'}),
        ]
        for method, path, body, headers in writes:
            assert _call(method, svc.url + path, body, headers) == _call(
                method, raw.url + path, body, headers
            ), (method, path)


@pytest.mark.parametrize("module", ["raw", "ceiling"])
def test_baselines_run_without_sanic_ext(module: str) -> None:
    """Sanic extends every app with sanic-ext when it is importable: a baseline would pay
    for its dependency injection on every request, and flatter the service's ratios."""
    import importlib

    from sanic.application.ext import setup_ext

    app = importlib.import_module(f"benchmarks.baselines.{module}").create_app()
    setup_ext(app)  # what Sanic calls as the server starts
    assert getattr(app, "_ext", None) is None
