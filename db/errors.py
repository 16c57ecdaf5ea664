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


class TokenRejectedError(DatabaseError):
    """The write's token is unknown or revoked: nothing was written."""


class StatementTimeoutError(DatabaseError):
    """A statement ran past the statement time limit and was stopped.

    ``counting``: it was the exact count of a list's matches (``Prefer: count=exact``).
    """

    def __init__(self, seconds: float | None, *, counting: bool = False) -> None:
        super().__init__(f"statement stopped after {seconds} s")
        self.seconds = seconds
        self.counting = counting
