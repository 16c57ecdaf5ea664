"""Metrics and the access log: one response middleware for both (log format: api.logs).

The clock starts when Sanic builds the request (``TimedRequest``, as soon as its headers are
parsed), not in a request middleware: a middleware on every route cost a measurable share
of a detail read's CPU time (issue 9).

Metrics are prometheus-client's multiprocess files: ``main.py serve`` points
PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, every worker writes
its own files there, and ``/metrics`` sums every file in it (``MultiProcessCollector``), a
stopped or killed worker's included. Route labels are route templates (``/books/<id>``),
never raw paths.

A request adds to its values in place, in this worker's memory-mapped files: no lock (only
this worker's event loop writes them) and nothing left for later, so a scrape on any worker
counts every request answered before it. prometheus-client's own values take a lock and
check the process id on each write, three values a request: a twentieth of a detail read's
CPU time.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import os
import shutil
import tempfile
import time
import weakref
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString
from sanic import Request
from sanic.response import BaseHTTPResponse

from api.request_ids import request_id

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
UNMATCHED: Final = "<unmatched>"
# Any other method a client makes up is counted as OTHER: labels stay a bounded set.
METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
REQUESTS: Final = "bookshelf_http_requests"
LATENCY: Final = "bookshelf_http_request_duration_seconds"
_HELP: Final = {
    REQUESTS: "HTTP requests answered, by route template, method and status.",
    LATENCY: "Time from the request's arrival at the app to its response, by route template.",
}
_REQUEST_LABELS: Final = ("route", "method", "status")
_LATENCY_LABELS: Final = ("route", "method")
# Tells apart the files of two Metrics in one process.
_serials = itertools.count()
# The views of a Metrics with no files open: no slot points into them.
_NO_VALUES: Final = memoryview(b"").cast("d")
# Where one (route, method, status) is counted: the index of its count in the counter
# file's values, of its route's latency sum and of each of its buckets in the histogram's.
_Slots = tuple[int, int, tuple[int, ...]]


@functools.lru_cache(maxsize=256)
def _label(route_path: str) -> str:
    path = "/" + route_path if not route_path.startswith("/") else route_path
    return path.replace("<book_id:int>", "<id>").rstrip("/") or "/"


def route_label(request: Request) -> str:
    route = request.route
    return UNMATCHED if route is None else _label(route.path)


class Metrics:
    """The request counter and latency histogram of one app, in files the whole instance reads.

    Each process writes its own pair of prometheus-client multiprocess files (one for the
    counter, one for the histogram) in ``directory``: PROMETHEUS_MULTIPROC_DIR when set
    (``main.py serve`` sets it for its workers), else a folder of this object's own.
    ``exposition`` sums every file there with prometheus-client's ``MultiProcessCollector``,
    so the text is the library's multiprocess exposition.
    """

    def __init__(self, directory: str | None = None) -> None:
        directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            directory = tempfile.mkdtemp(prefix="bookshelf-metrics-")
            weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self.directory = directory
        self._serial = next(_serials)
        self._files: dict[str, MmapedDict] = {}
        # Keyed by (route path, method, status) as observe gets them.
        self._slots: dict[tuple[str | None, str, int], _Slots] = {}
        # This process's files as doubles, written in place.
        self._counts = self._latency = _NO_VALUES

    def observe(self, route_path: str | None, method: str, status: int, seconds: float) -> None:
        """One answered request: its route's path as Sanic has it (None: no route matched)
        and its method as sent. Only on the event loop's thread: the values are read,
        added to and written back without a lock, and no other process writes them."""
        slots = self._slots.get((route_path, method, status))
        if slots is None:
            slots = self._add(route_path, method, status)
        count, total, buckets = slots
        self._counts[count] += 1.0
        latency = self._latency
        latency[total] += seconds
        # Histogram.observe's bucket: the first upper bound at or above the value.
        latency[buckets[bisect.bisect_left(_UPPER_BOUNDS, seconds)]] += 1.0

    def _add(self, route_path: str | None, method: str, status: int) -> _Slots:
        """The slots of a combination not seen before in this process: its values made
        in the files as prometheus-client's own Counter and Histogram would make them."""
        method = method if method in METHODS else "OTHER"
        key = (route_path, method, status)
        slots = self._slots.get(key)
        if slots is not None:  # a made-up method, counted as OTHER: never a key of its own
            return slots
        route = UNMATCHED if route_path is None else _label(route_path)
        # A new value may grow a file, which maps it afresh: views are taken after.
        self._counts = self._latency = _NO_VALUES
        counts = self._file("counter")
        latency = self._file("histogram")
        count = _slot(
            counts, REQUESTS, f"{REQUESTS}_total", _REQUEST_LABELS, (route, method, str(status))
        )
        total = _slot(latency, LATENCY, f"{LATENCY}_sum", _LATENCY_LABELS, (route, method))
        buckets = tuple(
            _slot(
                latency,
                LATENCY,
                f"{LATENCY}_bucket",
                (*_LATENCY_LABELS, "le"),
                (route, method, floatToGoString(bound)),
            )
            for bound in _UPPER_BOUNDS
        )
        self._counts = memoryview(counts._m).cast("d")
        self._latency = memoryview(latency._m).cast("d")
        slots = self._slots[key] = (count, total, buckets)
        return slots

    def _file(self, kind: str) -> MmapedDict:
        file = self._files.get(kind)
        if file is None:
            # Named apart from the files prometheus-client's own metrics would write in
            # this process (``counter_<pid>.db``); only the part before "_" is read.
            name = f"{kind}_bookshelf-{os.getpid()}-{self._serial}.db"
            file = self._files[kind] = MmapedDict(os.path.join(self.directory, name))
        return file

    def close(self) -> None:
        """Close this process's files; a later request opens them again and counts on."""
        self._counts = self._latency = _NO_VALUES
        self._slots.clear()
        for file in self._files.values():
            file.close()
        self._files.clear()

    def exposition(self) -> tuple[bytes, str]:
        """Every process's counts summed: reads files, so keep it off the event loop."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _slot(
    file: MmapedDict,
    metric: str,
    sample: str,
    labelnames: tuple[str, ...],
    labelvalues: tuple[str, ...],
) -> int:
    """The index, in a view of ``file`` as doubles, of one sample's value (made at 0 if new)."""
    key = mmap_key(metric, sample, list(labelnames), list(labelvalues), _HELP[metric])
    file.read_value(key)  # makes the entry, as prometheus-client's values do
    # Entries are 8-byte aligned: the value is a double at this byte offset.
    return file._positions[key] // 8


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

    async def receive_body(self) -> None:
        """The body, read into one buffer of its Content-Length made before its first byte.

        Sanic's own keeps the chunks in a list and joins them: twice the body's size, in
        many allocations. Out of memory, the one that failed was anywhere, often the event
        loop's read of the next chunk, which closes the connection without an answer. A
        body that does not fit fails here instead, in this request (MemoryError: 413,
        ``api.errors.out_of_memory``). The body stays a bytearray (every reader of it,
        orjson and json, takes one): no copy.
        """
        length = self.headers.get("content-length", "")
        if self.body or self.stream is None or not length.isdigit():
            return await super().receive_body()
        buffer = bytearray(int(length))  # at most MAX_BODY_BYTES: Sanic refused more
        filled = 0
        with memoryview(buffer) as view:
            async for data in self.stream:
                view[filled : filled + len(data)] = data
                filled += len(data)
        self.body = buffer if filled == len(buffer) else buffer[:filled]


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


def register(app: Any) -> None:
    metrics = app.ctx.metrics = Metrics()
    app.register_middleware(_observer(metrics, app.ctx.settings.access_log), "response")

    @app.after_server_stop
    async def _close_metrics(app: Any) -> None:
        metrics.close()
