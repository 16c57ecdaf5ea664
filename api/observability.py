"""Metrics and the access log: one response middleware for both (log format: api.logs).

The clock starts when Sanic builds the request (``TimedRequest``, as soon as its headers are
parsed), not in a request middleware: a middleware on every route cost a measurable share
of a detail read's CPU time (issue 9).

Metrics go through prometheus-client. With several workers, ``main.py serve`` points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, so every worker
writes its counts there and ``/metrics`` sums them (prometheus-client's multiprocess mode).
Route labels are route templates (``/books/<id>``), never raw paths.

A request adds to plain in-process tallies; they are written to prometheus-client's values
once a second and before this worker answers ``/metrics``. Writing each request straight
through (three values, each a locked write to a memory-mapped file in multiprocess mode)
was a twentieth of a detail read's CPU time (issue 9). So another worker's last second of
requests can be missing from a scrape; it is in the next one.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import os
import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sanic import Request
from sanic.response import BaseHTTPResponse

from api.errors import request_id

access_log = logging.getLogger("bookshelf.access")

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Histogram.observe's bucket bounds, +Inf last.
_UPPER_BOUNDS: Final = (*LATENCY_BUCKETS, float("inf"))
FLUSH_SECONDS: Final = 1.0
UNMATCHED: Final = "<unmatched>"
# Any other method a client makes up is counted as OTHER: labels stay a bounded set.
METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


@functools.lru_cache(maxsize=256)
def _label(route_path: str) -> str:
    path = "/" + route_path if not route_path.startswith("/") else route_path
    return path.replace("<book_id:int>", "<id>").rstrip("/") or "/"


def route_label(request: Request) -> str:
    route = request.route
    return UNMATCHED if route is None else _label(route.path)


class Metrics:
    """The request counter and latency histogram of one app (one registry per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bookshelf_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "bookshelf_http_request_duration_seconds",
            "Time from the request's arrival at the app to its response, by route template.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Per (route path, method, status): [count, sum of seconds, count per bucket...].
        self._pending: dict[tuple[str | None, str, int], list[Any]] = {}

    def observe(self, route_path: str | None, method: str, status: int, seconds: float) -> None:
        """One answered request: its route's path as Sanic has it (None: no route
        matched) and its method as sent; both become labels when flushed."""
        key = (route_path, method, status)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = [0, 0.0] + [0] * len(_UPPER_BOUNDS)
        tally[0] += 1
        tally[1] += seconds
        # Histogram.observe's bucket: the first upper bound at or above the value.
        tally[2 + bisect.bisect_left(_UPPER_BOUNDS, seconds)] += 1

    def flush(self) -> None:
        """Write the tallies to prometheus-client's values. Only on the event loop's thread,
        like ``observe``."""
        pending, self._pending = self._pending, {}
        for (route_path, method, status), tally in pending.items():
            route = UNMATCHED if route_path is None else _label(route_path)
            method = method if method in METHODS else "OTHER"
            self.requests.labels(route, method, str(status)).inc(tally[0])
            child = self.latency.labels(route, method)
            # Histogram has no public way to add many observations at once.
            child._sum.inc(tally[1])
            for bucket, n in zip(child._buckets, tally[2:], strict=True):
                if n:
                    bucket.inc(n)

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TimedRequest(Request):
    """A Sanic request that records when it was made: the start of its latency."""

    # bookshelf_request_id: api.errors.request_id's, made when first asked for. In a slot
    # rather than on request.ctx: making the context object cost every request (issue 9).
    __slots__ = ("started", "bookshelf_request_id")

    def __init__(
        self,
        url_bytes: bytes,
        headers: Any,
        version: str,
        method: str,
        transport: Any,
        app: Any,
        head: bytes = b"",
        stream_id: int = 0,
    ) -> None:
        # Request.__init__'s own parameters, passed on by position: forwarding *args and
        # **kwargs cost a dict per request.
        super().__init__(url_bytes, headers, version, method, transport, app, head, stream_id)
        self.started = time.perf_counter()
        self.bookshelf_request_id: str | None = None


def _observer(metrics: Metrics, log_requests: bool) -> Any:
    """The response middleware: the X-Request-ID header, the metrics, the access log."""

    # Not a coroutine: Sanic calls a plain function without making and awaiting one.
    def observe(request: Request, response: BaseHTTPResponse) -> None:
        rid = response.headers["X-Request-ID"] = request_id(request)
        started = getattr(request, "started", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = request.route
        metrics.observe(
            None if route is None else route.path, request.method, response.status, seconds
        )
        if log_requests:
            _log(request, response, rid, seconds)

    return observe


def _log(request: Request, response: BaseHTTPResponse, rid: str, seconds: float) -> None:
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status,
        extra={
            "request_id": rid,
            "method": request.method,
            "route": route_label(request),
            "path": request.path,
            "status": response.status,
            "duration_ms": round(seconds * 1000, 3),
            "client": request.remote_addr or request.ip,
        },
    )


async def _flush_every_second(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        metrics.flush()


def register(app: Any) -> None:
    metrics = app.ctx.metrics = Metrics()
    app.register_middleware(_observer(metrics, app.ctx.settings.access_log), "response")

    @app.after_server_start
    async def _start_flushing(app: Any) -> None:
        app.add_task(_flush_every_second(metrics), name="bookshelf.metrics.flush")

    @app.after_server_stop
    async def _last_flush(app: Any) -> None:
        metrics.flush()
