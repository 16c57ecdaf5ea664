"""The log configuration: one JSON object a line on stderr, whatever library writes it.

Sanic's and bookshelf's loggers have the JSON handler; every other logger (asyncio,
Tortoise, asyncpg, aiosqlite, multiprocessing, Python's warnings) reaches it through the
root logger, at WARNING and above. ``capture_process`` routes what would otherwise be
printed as plain text into the same log: warnings, and uncaught exceptions of the process
and of its threads. A traceback is one field (``exc_info``) of one line, never lines of
its own.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
from types import TracebackType
from typing import Any

from sanic.logging.formatter import JSONFormatter

log = logging.getLogger("bookshelf")


class CompactJSONFormatter(JSONFormatter):
    """One JSON object a line: time, level, logger, message and the record's extras."""

    FIELDS = ["name"]


def log_config(level: str, *, root: bool = False) -> dict[str, Any]:
    """The dictConfig of the named loggers; with ``root``, of the root logger too (a
    served process's, see ``capture_process``; an app made in a test leaves it alone)."""
    formatter = {"()": CompactJSONFormatter}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    names = ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets", "bookshelf")
    loggers: dict[str, Any] = {
        name: {"level": level, "handlers": ["console"], "propagate": False} for name in names
    }
    # Sanic's own access log is off: bookshelf writes one structured line per request.
    loggers["sanic.access"] = {"level": "CRITICAL", "handlers": [], "propagate": False}
    loggers["tortoise"] = {"level": "WARNING", "handlers": ["console"], "propagate": False}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {"console": handler},
        "loggers": loggers,
    }
    if root:
        config["root"] = {"level": "WARNING", "handlers": ["console"]}
    return config


def _uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.critical("uncaught exception: %s", exc_type.__name__, exc_info=(exc_type, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    log.error(
        "uncaught exception in thread %s: %s",
        name,
        args.exc_type.__name__,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _unraisable(unraisable: Any) -> None:
    exc = unraisable.exc_value
    log.warning(
        "%s: %r",
        unraisable.err_msg or "Exception ignored in",
        unraisable.object,
        exc_info=(unraisable.exc_type, exc, unraisable.exc_traceback) if exc else None,
    )


def capture_process(level: str) -> None:
    """Configure this process's logging now (before Sanic does, so that start-up's own
    messages are JSON too) and route warnings and uncaught exceptions into it."""
    logging.config.dictConfig(log_config(level, root=True))
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    sys.unraisablehook = _unraisable
