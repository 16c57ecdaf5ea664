"""/docs as a browser renders it from the real server, with no internet."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server_process import running_server


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[str]:
    with running_server(tmp_path) as server:
        yield server.url


@pytest.mark.server
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_swagger_ui_renders_in_chromium_without_internet(real_server: str, tmp_path: Path) -> None:
    """The page as a browser renders it, with every host but 127.0.0.1 unresolvable."""
    title = httpx.get(f"{real_server}/docs/openapi.json", timeout=10).json()["info"]["title"]
    assert title == "bookshelf"
    host = urlsplit(real_server).hostname
    result = subprocess.run(
        [
            _chromium() or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{real_server}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    dom = result.stdout
    assert 'class="title">bookshelf' in dom, result.stderr[-2000:]
    for path in ("/books/", "/books/{book_id}/", "/healthz", "/readyz", "/metrics"):
        assert f'data-path="{path}"' in dom, path
