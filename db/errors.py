"""The exceptions db/ raises: the only ones api/ catches from the data layer."""

from __future__ import annotations


class DatabaseError(Exception):
    """Base of every error the data layer reports."""


class NotFoundError(DatabaseError):
    """The row does not exist."""


class PreconditionFailedError(DatabaseError):
    """A conditional write's version did not match the stored one: nothing was written."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached."""


class ConnectTimeoutError(DatabaseUnavailableError):
    """No connection to the database within the connect timeout (DB_CONNECT_TIMEOUT): a
    server that accepts TCP but does not answer. Nothing was sent to it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no connection within {seconds:g} s (DB_CONNECT_TIMEOUT)")
        self.seconds = seconds


class TokenRejectedError(DatabaseError):
    """The write's token is unknown or revoked: nothing was written."""


class DatabaseConfigError(DatabaseError):
    """The database that DATABASE_URL names cannot be used as it is (not an SQLite file,
    unreadable, read-only): a person must fix it. Its text is one line saying what to do."""


class DatabaseFaultError(DatabaseUnavailableError):
    """The database's storage cannot take a write now (disk full, read-only, corrupt, the
    file deleted or replaced): nothing was acknowledged. ``reason`` names the fault; the
    text says what happened and what to do."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class StatementTimeoutError(DatabaseError):
    """A statement ran past the statement time limit and was stopped.

    ``counting``: it was the exact count of a list's matches (``Prefer: count=exact``).
    """

    def __init__(self, seconds: float | None, *, counting: bool = False) -> None:
        super().__init__(f"statement stopped after {seconds} s")
        self.seconds = seconds
        self.counting = counting


class OutcomeUnknownError(DatabaseUnavailableError):
    """A write was sent and its answer was lost (the connection died or timed out during
    the statement or its COMMIT; SQLite: an I/O error at commit, or the file found moved
    or replaced after the write ran): it may or may not have been stored. ``reason`` names
    a storage fault behind it (``db.health``), if one is known."""

    def __init__(self, detail: str = "", *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class IdempotencyInProgressError(DatabaseError):
    """A request with this Idempotency-Key is still running (its transaction holds the
    key): ``retry_after``, the seconds to wait before trying again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("in progress")
        self.retry_after = retry_after


class IdempotencyMismatchError(DatabaseError):
    """This Idempotency-Key was used with another request (another fingerprint)."""
