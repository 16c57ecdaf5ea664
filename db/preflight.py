"""What a person must fix before the database is opened, said in one line.

``preflight_sqlite(path)`` tries an SQLite file with ``sqlite3`` before Tortoise opens it.
Tortoise's connection wrapper takes its client's lock before it opens the connection and
never releases it when the opening fails ("file is not a database", "unable to open
database file"): every later statement then waits on that lock for ever. A file that is
not a database, a folder, an unreadable or read-only file or folder is refused here with
``DatabaseConfigError``, whose text is one line saying what to do. ``describe(exc, url)``
is the one line for any database problem a command meets.

A file whose pages are damaged opens and answers until a statement reads a bad page:
``serve`` first runs SQLite's ``quick_check`` (every b-tree page's structure, not the
indexes' agreement with their tables) for at most QUICK_CHECK_SECONDS, and refuses the
file when it finds damage; ``DB_CHECK=full`` runs ``integrity_check`` to the end, however
long it takes; ``DB_CHECK=off`` neither.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from db.errors import ConnectTimeoutError, DatabaseConfigError, DatabaseUnavailableError
from db.health import fault_of

# DB_CHECK's values, and how long the quick one may run (past it the rest is unchecked).
DB_CHECKS: Final = ("quick", "full", "off")
QUICK_CHECK_SECONDS: Final = 2.0
_INTERRUPTED: Final = 9  # SQLITE_INTERRUPT


def _config(message: str) -> DatabaseConfigError:
    return DatabaseConfigError(message)


def preflight_sqlite(path: str, check: str = "off") -> None:
    """Refuse, with one line, an SQLite path that Tortoise could not open or write, or
    whose pages fail ``check`` (one of DB_CHECKS)."""
    file = Path(path)
    folder = file.parent
    if file.is_dir():
        raise _config(
            f"{path} is a folder, not an SQLite database file; point DATABASE_URL at a file"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _config(
            f"cannot create the folder {folder}: {exc.strerror}; create it, or point "
            "DATABASE_URL at a writable place"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _config(
            f"the folder {folder} is read-only (or not searchable) for this user: SQLite "
            "writes its journal and lock files beside the database; make it writable, or "
            "point DATABASE_URL at a writable place"
        )
    if not file.exists():
        return
    if not os.access(file, os.R_OK | os.W_OK):
        raise _config(
            f"{path} cannot be read and written by this user (uid {os.getuid()}); "
            "fix its owner or mode"
        )
    try:
        conn = sqlite3.connect(f"file:{quote(str(file.absolute()))}?mode=rw", uri=True)
    except sqlite3.Error as exc:
        raise _config(f"cannot open {path} as an SQLite database: {exc}") from None
    try:
        # Reads the header and the whole schema, as opening it through Tortoise will.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if check != "off":
            _check_pages(conn, path, check)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == 26:  # SQLITE_NOTADB
            raise _config(
                f"{path} is not an SQLite database ({exc}); point DATABASE_URL at an "
                "SQLite file, or move this file away to start a new database there"
            ) from None
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == 11:  # SQLITE_CORRUPT
            raise _config(f"{path} is corrupt ({exc}); restore it from a backup") from None
        raise _config(f"cannot read {path} as an SQLite database: {exc}") from None
    finally:
        conn.close()


def _check_pages(conn: sqlite3.Connection, path: str, check: str) -> None:
    """Refuse the file when SQLite's check of its pages finds damage; the quick check
    stops, the file accepted, after QUICK_CHECK_SECONDS."""
    pragma = "integrity_check" if check == "full" else "quick_check"
    if check != "full":
        deadline = time.monotonic() + QUICK_CHECK_SECONDS
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        found = conn.execute(f"PRAGMA {pragma}(1)").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _INTERRUPTED:
            return  # the budget is spent: what was read is sound
        raise
    finally:
        conn.set_progress_handler(None, 0)
    if found != "ok":
        found = " ".join(found.replace("*** in database main ***", "").split())
        raise _config(
            f"{path} is corrupt ({pragma}: {found}); restore it from a backup "
            "(DB_CHECK=full checks every page and index, DB_CHECK=off starts without a check)"
        )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _connect_timeout(exc: BaseException | None) -> ConnectTimeoutError | None:
    """The ConnectTimeoutError ``exc`` is, or that caused it (Tortoise may wrap it)."""
    for _ in range(8):
        if exc is None or isinstance(exc, ConnectTimeoutError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def describe(exc: BaseException, url: str) -> str | None:
    """One line for a database problem a command met (bad file, server down, wrong
    password, no such database), else None: a bug, whose traceback is wanted."""
    from tortoise.exceptions import DBConnectionError

    if isinstance(exc, DatabaseConfigError):
        return str(exc)
    fault = fault_of(exc, record=False)
    if fault is not None:
        return f"{_redacted(url)}: {fault}"
    timeout = _connect_timeout(exc)
    if timeout is not None:
        return (
            f"the database at {_redacted(url)} did not answer a connection within "
            f"{timeout.seconds:g} s (DB_CONNECT_TIMEOUT); check that it is running and that "
            "DATABASE_URL is right, or raise DB_CONNECT_TIMEOUT"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"{_redacted(url)}: the server refused the credentials ({exc}); fix DATABASE_URL"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{_redacted(url)}: {exc}; create it, or fix DATABASE_URL"
    if url.startswith("sqlite"):
        if isinstance(exc, OSError) and exc.filename:
            return f"cannot use {exc.filename}: {exc.strerror}; fix it, or change DATABASE_URL"
        return None
    if isinstance(
        exc,
        (
            DatabaseUnavailableError,
            DBConnectionError,
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
        ),
    ):
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return (
            f"cannot reach the database at {_redacted(url)} ({reason}); check that it "
            "is running and that DATABASE_URL is right"
        )
    return None
