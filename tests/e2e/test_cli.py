"""`python main.py token create|list|revoke` as real subprocesses on a real database file."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from db import tokens

ROOT = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{40,}$")


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "main.py", "token", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def db_url(db_file: Path) -> str:
    return f"sqlite:///{db_file.relative_to('/')}"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_create_list_revoke(db_file: Path, db_url: str) -> None:
    created = cli(db_url, "create", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n"  # stdout is the key alone, for scripts
    assert KEY_RE.match(key)
    assert "alice" in created.stderr and key not in created.stderr
    other = cli(db_url, "create", "bob")
    assert other.returncode == 0
    assert other.stdout.strip() != key

    # Only a hash of the key is stored.
    with sqlite3.connect(db_file) as conn:
        stored = conn.execute("SELECT name, key_hash FROM api_token ORDER BY id").fetchall()
    assert [name for name, _ in stored] == ["alice", "bob"]
    assert stored[0][1] == tokens.hash_key(key)
    assert key.encode() not in db_file.read_bytes()

    listed = cli(db_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout and other.stdout.strip() not in listed.stdout
    assert tokens.hash_key(key) not in listed.stdout
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 3
    assert "NAME" in lines[0] and "CREATED" in lines[0] and "LAST USED" in lines[0]
    alice = lines[1].split()
    assert alice[0] == "alice"
    assert re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", alice[1])
    assert alice[2] == "never"
    assert alice[3] == "active"

    revoked = cli(db_url, "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert "alice" in revoked.stdout
    after = cli(db_url, "list").stdout.strip().splitlines()
    assert after[1].split()[0] == "alice" and after[1].split()[-1] == "revoked"
    assert after[2].split()[0] == "bob" and after[2].split()[-1] == "active"


def test_duplicate_name_fails_with_one_line(db_url: str) -> None:
    assert cli(db_url, "create", "alice").returncode == 0
    again = cli(db_url, "create", "alice")
    line = one_error_line(again)
    assert "alice" in line and "exists" in line
    listed = cli(db_url, "list").stdout.strip().splitlines()
    assert len(listed) == 2


def test_unknown_name_fails_with_one_line(db_url: str) -> None:
    line = one_error_line(cli(db_url, "revoke", "nobody"))
    assert "nobody" in line


def test_bad_name_fails_with_one_line(db_url: str) -> None:
    for name in ("x" * 101, "", "   "):
        line = one_error_line(cli(db_url, "create", name))
        assert "token name" in line, name


def test_list_of_an_empty_database(db_url: str) -> None:
    listed = cli(db_url, "list")
    assert listed.returncode == 0
    assert len(listed.stdout.strip().splitlines()) == 1


def test_bad_database_url_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(cli("mysql://nope", "list"))
    assert "DATABASE_URL" in line


@pytest.mark.asyncio
async def test_cli_token_works_and_revocation_is_seen_at_once(
    client: httpx.AsyncClient, database_url: str, book_data: dict[str, Any]
) -> None:
    """A token made by the CLI works against the running app on the same file; revoked by the
    CLI (another process), the very next write is refused; last use shows in the list."""
    created = cli(database_url, "create", "deploy")
    assert created.returncode == 0, created.stderr
    headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
    response = await client.post("/books/", json=book_data, headers=headers)
    assert response.status_code == 201, response.text

    listed = cli(database_url, "list").stdout.strip().splitlines()
    (deploy,) = [line.split() for line in listed[1:] if line.split()[0] == "deploy"]
    assert deploy[2] != "never"
    assert re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", deploy[2])

    assert cli(database_url, "revoke", "deploy").returncode == 0
    refused = await client.post("/books/", json=book_data, headers=headers)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid token."}
    assert (await client.get("/books/")).json()["count"] == 1


@pytest.mark.asyncio
async def test_create_token_refuses_bad_names(client: httpx.AsyncClient) -> None:
    for name in ("x" * 101, "", "   ", "tab\there", "new\nline"):
        with pytest.raises(tokens.TokenNameError, match="token name"):
            await tokens.create_token(name=name)
    assert await tokens.list_tokens() == []
    assert await tokens.create_token(name="x" * 100)
