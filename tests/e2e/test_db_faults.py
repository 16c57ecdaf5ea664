"""A database that cannot be used stops every command at once with one line and status 2.

Real files, real permissions, a real read-only mount and a real closed port; each command
runs as a subprocess with a deadline, so a hang fails the test instead of the suite.
Root reads and writes any file whatever its mode: the unreadable-file and read-only-folder
cases run the command without the capabilities that let root ignore modes (``setpriv``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faults import a_database, corrupt, tmpfs, with_books, without_dac_override
from server_process import ROOT, make_token

COMMANDS = (("migrate",), ("token", "list"), ("token", "create", "alice"), ("serve",))


def run_main(
    url: str, *args: str, prefix: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """``python main.py ARGS`` with DATABASE_URL; killed (with any worker) after 30 s."""
    full_env = {**os.environ, "DATABASE_URL": url, "HOST": "127.0.0.1", "PORT": "1", **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [*prefix, sys.executable, "main.py", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"`main.py {' '.join(args)}` still running after 30 s: it hangs")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("bookshelf: database error: "), line
    for word in words:
        assert word in line, line
    return line


def not_a_database(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.sqlite3"
    if kind == "text":
        path.write_text("name,price\nbook,1.00\n" * 100)
    elif kind == "random":
        path.write_bytes(os.urandom(16384))
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_text_file_stops_every_command_at_once(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = not_a_database(tmp_path, "text")
    one_line(run_main(f"sqlite://{path}", *command), str(path), "not an SQLite database")


@pytest.mark.parametrize("kind", ["random", "folder"])
def test_random_bytes_or_a_folder_stop_the_command(tmp_path: Path, kind: str) -> None:
    path = not_a_database(tmp_path, kind)
    words = ("not an SQLite database",) if kind == "random" else ("is a folder",)
    one_line(run_main(f"sqlite://{path}", "token", "create", "alice"), str(path), *words)


def test_an_unreadable_file_stops_serve(tmp_path: Path) -> None:
    prefix = without_dac_override()
    path = a_database(tmp_path / "db.sqlite3")
    path.chmod(0)
    one_line(run_main(f"sqlite://{path}", "serve", prefix=prefix), str(path), "cannot be read")


def test_a_read_only_folder_stops_serve(tmp_path: Path) -> None:
    prefix = without_dac_override()
    folder = tmp_path / "ro"
    folder.mkdir()
    a_database(folder / "db.sqlite3")
    folder.chmod(0o555)
    try:
        for name in ("db.sqlite3", "new.sqlite3"):  # an existing database, or a new one
            url = f"sqlite://{folder / name}"
            one_line(run_main(url, "serve", prefix=prefix), str(folder), "read-only")
    finally:
        folder.chmod(0o755)


def test_a_read_only_mount_stops_every_command(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt") as mnt:
        a_database(mnt / "db.sqlite3")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        for command in (("serve",), ("token", "list")):
            url = f"sqlite://{mnt / 'db.sqlite3'}"
            one_line(run_main(url, *command), str(mnt), "read-only")
        one_line(run_main(f"sqlite://{mnt / 'sub' / 'db.sqlite3'}", "serve"), "Read-only")


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("token", "list")], ids=" ".join)
def test_postgres_down_stops_the_command_with_one_line(command: tuple[str, ...]) -> None:
    # Port 1: nothing listens; serve migrates first (MIGRATE_ON_START defaults to true).
    url = "postgres://postgres:secret@127.0.0.1:1/test"
    line = one_line(run_main(url, *command), "cannot reach the database", "127.0.0.1:1")
    assert "secret" not in line


def test_a_corrupt_schema_stops_migrate_with_one_line(tmp_path: Path) -> None:
    path = a_database(tmp_path / "db.sqlite3")
    with open(path, "r+b") as fh:  # the schema's root page, past the file's header
        fh.seek(100)
        fh.write(os.urandom(4096 - 100))
    one_line(run_main(f"sqlite://{path}", "migrate"), str(path), "corrupt")


@pytest.mark.parametrize("check", ["quick", "full"])
def test_corrupt_pages_stop_serve_with_one_line(tmp_path: Path, check: str) -> None:
    """The file opens and its schema reads well; the pages of its books do not."""
    path = tmp_path / "db.sqlite3"
    make_token(f"sqlite://{path}")
    corrupt(path, with_books(path))
    result = run_main(f"sqlite://{path}", "serve", DB_CHECK=check)
    one_line(result, str(path), "corrupt", f"{check}_check" if check == "quick" else "integrity")
