"""Whether the database can take a write, checked cheaply while serving (what a person
must fix before the database is opened is ``db.preflight``'s).

- ``watch(url)`` remembers which file (device, inode) an SQLite connection opened.
  SQLite keeps writing into a file that was deleted or replaced (in WAL mode it never
  checks), so such writes would be acknowledged and lost at the next start:
  ``confirm_write()``, called after every write, compares the path with that file (one
  ``stat``, about a microsecond) and raises ``OutcomeUnknownError`` instead (the write is
  in the file the server has open, which may be put back); it does the same when the file
  system refuses a change right after the commit (``_probe``, a few microseconds): ext4
  can report a commit's fsync done as its journal aborts, and lose the commit.
- ``fault_of(exc)`` recognises a statement that failed because of the storage (disk full,
  read-only, corrupt pages, I/O error): a ``DatabaseFaultError`` the API answers 503/507,
  and one log line when such an incident starts (another when it clears), not a
  traceback per request.
- A corrupt page, an I/O error or the file gone (``STOPPING``) stops every write until
  the server is restarted: ``stopped()`` says so before a write starts
  (``api.auth.write_input`` answers 503 from it). A worker that meets one tells the
  others of its instance through a shared integer (``share``: a ``multiprocessing``
  value the main process makes), so each worker reads one integer per write, no file and
  no statement.
- ``problem()``: what ``/readyz`` reports, remembered for a second so that it stays cheap
  under load. A file system that refuses writes is found by asking for a change to the
  database file through a descriptor opened with the connection (``_probe``): a folder
  bind-mounted read-only over the open file, or a file made read-only by ``chmod``, leave
  the open connection writing, and this probe succeeding as the writes do; a file system
  remounted read-only (ext4 after an error, ``errors=remount-ro``) refuses both.
  (``statvfs``'s ``ST_RDONLY`` is set for the bind mount, not for ext4's emergency
  read-only state.)
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from db.errors import DatabaseFaultError, OutcomeUnknownError

__all__ = [
    "confirm_write",
    "fault_of",
    "problem",
    "share",
    "stopped",
    "watch",
]

log = logging.getLogger("bookshelf.db")

# Below this much free space on the database's file system /readyz answers 503.
LOW_SPACE: Final = 1 << 20
# How long /readyz reuses its last answer.
CHECK_EVERY: Final = 1.0
# An incident that nothing else confirms (a write failed for want of space while the file
# system shows free space, as under a quota; a read-only error) is forgotten after this
# long, or as soon as a write goes through.
FORGOTTEN_AFTER: Final = 30.0

GONE: Final = "gone"
DISK_FULL: Final = "disk_full"
READ_ONLY: Final = "read_only"
CORRUPT: Final = "corrupt"
IO_ERROR: Final = "io_error"
UNREACHABLE: Final = "unreachable"

_DETAIL: Final = {
    GONE: "The database file was moved, deleted or replaced while the server was running: "
    "writes are stopped and nothing was stored. Put the file back (or restore it) and "
    "restart the server.",
    DISK_FULL: "The database's disk is full: nothing was stored. Free some space and try again.",
    READ_ONLY: "The database is read-only: nothing was stored. Make the database file "
    "and its folder writable.",
    CORRUPT: "The database file is corrupt: nothing was stored. Restore it from a backup.",
    IO_ERROR: "The database's disk failed to read or write: writes are stopped until the "
    "disk is checked and the server restarted. A write that met the failure may or may not "
    "have been stored: read it back to check.",
    UNREACHABLE: "The database server cannot be reached: requests that need it answer 503 "
    "until it is back.",
}
# A write that ran into the file the server has open, found no longer at its path: it is
# in that file, which may come back (moved away and back) or not.
_WRITTEN_TO_GONE: Final = (
    "The database file was moved, deleted or replaced while the server was running: this "
    "write may have been stored, in the file the server still has open. Put the file back "
    "and restart the server; then GET the resource to check, or retry with the same "
    "Idempotency-Key (it is never applied twice)."
)
# A write whose commit returned while its file system failed (``confirm_write``).
_FAILED_AT_COMMIT: Final = (
    "The database's file system failed as this write was committed: it may or may not "
    "have been stored."
)
# The extended attribute whose removal ``_probe`` asks for (no file has it).
_PROBE_XATTR: Final = "user.bookshelf.probe"
# SQLite's primary result codes (the low byte of an extended code) that mean the storage,
# not the statement, is at fault.
_SQLITE_FAULTS: Final = {
    13: DISK_FULL,  # SQLITE_FULL
    8: READ_ONLY,  # SQLITE_READONLY
    11: CORRUPT,  # SQLITE_CORRUPT
    26: CORRUPT,  # SQLITE_NOTADB
    10: IO_ERROR,  # SQLITE_IOERR
}
# PostgreSQL's: a full disk, a standby (after a failover) or a read-only transaction,
# corrupt data or index pages.
_POSTGRES_FAULTS: Final = (
    (asyncpg.DiskFullError, DISK_FULL),
    (asyncpg.ReadOnlySQLTransactionError, READ_ONLY),
    (asyncpg.DataCorruptedError, CORRUPT),
    (asyncpg.IndexCorruptedError, CORRUPT),
)
_POSTGRES_DETAIL: Final = {
    READ_ONLY: "The database server accepts no writes (a read-only standby or transaction): "
    "nothing was stored. Point DATABASE_URL at the primary.",
    CORRUPT: "The database server reports corrupt data: nothing was stored. Check the "
    "server's log.",
}
# Faults that stop every write of the instance and that only a restart (with the file
# restored, the disk checked) ends; their number in the shared integer is their place here
# plus one.
STOPPING: Final = (GONE, CORRUPT, IO_ERROR)


@dataclass
class _Watch:
    path: str | None = None
    # (st_dev, st_ino) of the database file and of its write-ahead log, as opened.
    files: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    incidents: dict[str, float] = field(default_factory=dict)
    free_at_full: int = 0
    checked_at: float = float("-inf")
    files_checked_at: float = float("-inf")
    last: DatabaseFaultError | None = None
    # A read-only descriptor of the database file, opened with the connection (``_probe``).
    fd: int | None = None


_watch = _Watch()
# The instance's shared integer (``share``): 0, or the STOPPING fault one of its workers met.
_stop: Any = None


def share(flag: Any) -> None:
    """Use ``flag`` (anything with an integer ``value`` every worker of the instance sees,
    such as ``multiprocessing.RawValue("i")``) to stop the other workers' writes."""
    global _stop
    _stop = flag


def _fault(reason: str) -> DatabaseFaultError:
    return DatabaseFaultError(reason, _DETAIL[reason])


def _begin(reason: str, cause: str = "") -> None:
    """An incident starts: one log line, however many requests it fails."""
    if reason not in _watch.incidents:
        if reason == DISK_FULL:
            _watch.free_at_full = _free_space()
        _watch.incidents[reason] = time.monotonic()
        if reason in STOPPING and _stop is not None and not _stop.value:
            _stop.value = STOPPING.index(reason) + 1
        extra = {"database_fault": reason, **({"cause": cause} if cause else {})}
        log.error("database fault: %s", _DETAIL[reason], extra=extra)
        _watch.checked_at = float("-inf")


def _end(reason: str) -> None:
    if _watch.incidents.pop(reason, None) is not None:
        log.warning("database fault cleared: %s", reason, extra={"database_fault": reason})
        _watch.checked_at = float("-inf")


# ---------------------------------------------------------------- while serving


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def watch(url: str | None) -> None:
    """The database was opened: remember which SQLite file (and write-ahead log) it is."""
    from db import sqlite_path

    global _watch
    if _watch.fd is not None:
        os.close(_watch.fd)
    _watch = _Watch()
    logging.getLogger("asyncpg.pool").addFilter(_POOL_RETRIES)  # once: filters are a set
    path = sqlite_path(url) if url else None
    if not path:
        return
    _watch.path = path
    try:
        _watch.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        _watch.fd = None
    for name in (path, f"{path}-wal"):
        ident = _identity(name)
        if ident is not None:
            _watch.files.append((name, ident))


def _connection_failure(exc: BaseException) -> BaseException | None:
    from tortoise.exceptions import DBConnectionError

    seen: set[int] = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if isinstance(
            item,
            (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, DBConnectionError),
        ):
            return item
        item = item.__cause__ or item.__context__
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unreachable(exc: BaseException) -> None:
    """A statement failed for want of a connection: the start of an outage is logged
    once, with its cause on the same line."""
    failure = _connection_failure(exc)
    if failure is not None:
        _begin(UNREACHABLE, _one_line(failure))


def reachable() -> None:
    """A statement went through: an outage, if one was logged, is over."""
    if UNREACHABLE in _watch.incidents:
        _end(UNREACHABLE)


class _PoolRetries(logging.Filter):
    """asyncpg's pool logs a warning with a traceback each time it fails to restore its
    minimum of connections (every 1 to 60 s for as long as the server is down): the
    outage's one line comes from ``unreachable`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Failed to restore the pool"):
            if record.exc_info[1] is not None:
                unreachable(record.exc_info[1])
            return False
        return True


_POOL_RETRIES: Final = _PoolRetries()


def _gone() -> bool:
    """Whether the database file or its write-ahead log is no longer the one opened."""
    return any(_identity(name) != ident for name, ident in _watch.files)


def confirm_write() -> None:
    """After a write: raise OutcomeUnknownError when the file written to is no longer the
    one at the database's path (moved, deleted or replaced), so the write is not
    acknowledged: it went into a file that may or may not come back; or when its file
    system no longer takes a change to the file (``_probe``).

    ext4 reports a commit's fsync done when its journal aborts during that fsync: the
    log's new blocks reach the disk, but the extents that make them part of the file are
    in the transaction the abort discards, so the next mount cuts the log back to its
    length before the commit. The journal has aborted by the time such an fsync returns,
    so the probe after it is refused (tests/e2e/test_ext4_errors.py)."""
    if _watch.files:
        # The file itself every time (one stat); its write-ahead log (deleted with it, in
        # practice) at most once a second.
        name, ident = _watch.files[0]
        try:
            st = os.stat(name)
            gone = (st.st_dev, st.st_ino) != ident
        except OSError:
            gone = True
        now = time.monotonic()
        if now - _watch.files_checked_at >= CHECK_EVERY:
            _watch.files_checked_at = now
            gone = gone or _gone()
        if gone:
            _begin(GONE)
            raise OutcomeUnknownError(_WRITTEN_TO_GONE, reason=GONE)
    denied = _probe()
    if denied is not None:
        _begin(denied)
        raise OutcomeUnknownError(_FAILED_AT_COMMIT, reason=denied)
    if _watch.incidents:
        # A write went through: whatever stopped the last ones has cleared.
        for reason in [r for r in _watch.incidents if r not in STOPPING]:
            _end(reason)


def stopped() -> DatabaseFaultError | None:
    """The fault that stops every write now (a STOPPING one, met by this worker or by
    another of the instance), or None. Cheap enough to ask before every write."""
    code = _stop.value if _stop is not None else 0
    if not _watch.incidents and not code:
        return None
    for reason in STOPPING:
        if reason in _watch.incidents:
            return _fault(reason)
    if code:
        # Another worker met it and logged it: remembered here without a line of its own.
        reason = STOPPING[code - 1]
        _watch.incidents[reason] = time.monotonic()
        return _fault(reason)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it (causes, contexts, a wrapped first argument,
    as Tortoise's OperationalError(exc) has)."""
    found: list[BaseException] = []
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        todo += [item.__cause__, item.__context__, *item.args[:1]]
    return found


def _storage_fault(error: BaseException) -> DatabaseFaultError | None:
    if isinstance(error, sqlite3.Error):
        reason = _SQLITE_FAULTS.get(getattr(error, "sqlite_errorcode", 0) & 0xFF)
        return None if reason is None else _fault(reason)
    for kind, reason in _POSTGRES_FAULTS:
        if isinstance(error, kind):
            return DatabaseFaultError(reason, _POSTGRES_DETAIL.get(reason, _DETAIL[reason]))
    return None


def fault_of(exc: BaseException, *, record: bool = True) -> DatabaseFaultError | None:
    """The storage fault behind a failed statement, if that is what it was (recorded as an
    incident, logged once, unless ``record`` is false)."""
    if isinstance(exc, DatabaseFaultError):
        return exc
    for error in _chain(exc):
        fault = _storage_fault(error)
        if fault is not None:
            if record:
                _begin(fault.reason)
            return fault
    return None


def _free_space() -> int:
    folder = os.path.dirname(_watch.path or "") or "."
    try:
        st = os.statvfs(folder)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _probe() -> str | None:
    """READ_ONLY when the file system refuses to change the database file (through the
    descriptor opened with the connection, so through the same mount), IO_ERROR when its
    disk fails, else None (a permission error says nothing of the open connection).

    The change asked for is the removal of an extended attribute the file does not have
    (``_PROBE_XATTR``): nothing changes, yet ext4 starts a journal handle for it, which
    fails as soon as its journal has aborted, before ext4 calls itself read-only (a
    ``futimens`` is refused only from then on). Where that is not allowed (no user
    attributes, a file not writable by this user) the file's times are touched instead."""
    if _watch.fd is None:
        return None
    try:
        try:
            os.removexattr(_watch.fd, _PROBE_XATTR)  # Linux only: AttributeError elsewhere
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
                raise
            os.utime(_watch.fd)
        except AttributeError:
            os.utime(_watch.fd)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return READ_ONLY
        if exc.errno == errno.EIO:
            _begin(IO_ERROR)
            return IO_ERROR
    return None


def _check() -> DatabaseFaultError | None:
    if _watch.path is None:
        return None
    if _watch.files and _gone():
        _begin(GONE)
    fault = stopped()
    if fault is not None:
        return fault
    denied = _probe()
    if denied is not None:
        return _fault(denied)
    free = _free_space()
    if free < LOW_SPACE:
        return _fault(DISK_FULL)
    now = time.monotonic()
    for reason in (DISK_FULL, READ_ONLY):
        since = _watch.incidents.get(reason)
        if since is None:
            continue
        freed = reason == DISK_FULL and free >= _watch.free_at_full + LOW_SPACE
        if freed or now - since >= FORGOTTEN_AFTER:
            _end(reason)
        else:
            return _fault(reason)
    return None


def problem() -> DatabaseFaultError | None:
    """Why the database cannot take a write now, or None; checked at most once a second
    (a fault that stops writes, at once)."""
    fault = stopped()
    if fault is not None:
        return fault
    now = time.monotonic()
    if now - _watch.checked_at >= CHECK_EVERY:
        _watch.last = _check()
        _watch.checked_at = now
    return _watch.last
