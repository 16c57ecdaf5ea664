"""The statement guard of an SQLite connection: its progress handler stops a statement at
the statement time limit, or once a bounded statement has used its budget of work."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Final

from db.errors import StatementTimeoutError

# SQLite calls a connection's progress handler every STEPS virtual-machine instructions
# of a statement (some 0.1-0.5 ms of work): a list page or a detail read takes fewer and
# never calls it. A bounded count may run COUNT_BUDGET of those periods (counting 10,000
# entries of an index takes some 70,000 instructions) before it is stopped and estimated.
STEPS: Final = 10_000
COUNT_BUDGET: Final = 20
# The connection that counts exactly (``Prefer: count=exact``) keeps a smaller page cache
# than the main one: its scans read from the OS page cache.
COUNTER_PRAGMAS: Final = {"cache_size": -2000, "query_only": "ON"}


class OverBudgetError(Exception):
    """A bounded statement did more work than its budget allowed (it was stopped)."""


class Guard:
    """A connection's progress handler, and what aiosqlite's thread runs each statement
    through (``run``): a statement is stopped once past its deadline, or once it has
    used its budget of progress-handler periods.

    Its state is the statement's, set and reset in the connection's own thread around
    each statement (aiosqlite runs one at a time), so it needs no lock.
    """

    __slots__ = ("budget", "deadline", "installed", "stopped")

    def __init__(self) -> None:
        self.deadline = math.inf
        self.budget = -1  # periods left; -1: no budget
        self.stopped = ""
        self.installed: sqlite3.Connection | None = None

    def __call__(self) -> int:
        if self.budget >= 0:
            self.budget -= 1
            if self.budget < 0:
                self.stopped = "budget"
                return 1
        if time.monotonic() > self.deadline:
            self.stopped = "time"
            return 1
        return 0

    def run(
        self,
        conn: sqlite3.Connection,
        deadline: float,
        budget: int,
        timeout: float | None,
        sql: str,
        values: Sequence[Any],
    ) -> list[Any]:
        if self.installed is not conn:  # a new connection (Tortoise opened it again)
            conn.set_progress_handler(self, STEPS)
            self.installed = conn
        self.deadline, self.budget, self.stopped = deadline, budget, ""
        try:
            return conn.execute(sql, values).fetchall()
        except sqlite3.OperationalError:
            if self.stopped == "time":
                raise StatementTimeoutError(timeout) from None
            if self.stopped == "budget":
                raise OverBudgetError() from None
            raise
        finally:
            self.deadline, self.budget = math.inf, -1
