"""The log configuration: one JSON object a line on stderr."""

from __future__ import annotations

from typing import Any

from sanic.logging.formatter import JSONFormatter


class CompactJSONFormatter(JSONFormatter):
    """One JSON object a line: time, level, logger, message and the record's extras."""

    FIELDS = ["name"]


def log_config(level: str) -> dict[str, Any]:
    formatter = {"()": CompactJSONFormatter}
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    names = ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets", "bookshelf")
    loggers: dict[str, Any] = {
        name: {"level": level, "handlers": ["console"], "propagate": False} for name in names
    }
    # Sanic's own access log is off: bookshelf writes one structured line per request.
    loggers["sanic.access"] = {"level": "CRITICAL", "handlers": [], "propagate": False}
    loggers["tortoise"] = {"level": "WARNING", "handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {"console": handler},
        "loggers": loggers,
    }
