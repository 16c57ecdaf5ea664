"""DRF-named API errors and the one place that turns any exception into a JSON response.

Exception tree::

    SanicException
    └── APIError                 status_code, default_detail; body {"detail": ...} or a dict
        ├── ValidationError      400  {"field": ["message", ...]}
        ├── ParseError           400  {"detail": "JSON parse error - ..."}
        ├── NotAuthenticated     401  (with WWW-Authenticate: Token)
        ├── AuthenticationFailed 401  (with WWW-Authenticate: Token)
        ├── NotFound             404
        ├── PreconditionFailed   412
        ├── UnsupportedMediaType 415
        └── Throttled            429  (with Retry-After)

Sanic's own NotFound, MethodNotAllowed, PayloadTooLarge, RequestTimeout and BadRequest,
and db/'s NotFoundError and PreconditionFailedError, are mapped to the same shapes;
db/'s StatementTimeoutError is 503 with Retry-After and a detail saying what to change. Every
other exception is an opaque 500 carrying the request id, logged once with its traceback.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from typing import Any, ClassVar, Final

from sanic import Request
from sanic import exceptions as sanic_exc
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse

from api.responses import json
from db.errors import (
    DatabaseUnavailableError,
    NotFoundError,
    PreconditionFailedError,
    StatementTimeoutError,
    TokenRejectedError,
)

log = logging.getLogger("bookshelf.error")

# DRF's message texts, kept as constants so tests assert on the same strings.
REQUIRED: Final = "This field is required."
NULL: Final = "This field may not be null."
BLANK: Final = "This field may not be blank."
MAX_LENGTH: Final = "Ensure this field has no more than {n} characters."
NOT_STRING: Final = "Not a valid string."
INVALID_NUMBER: Final = "A valid number is required."
MAX_DIGITS: Final = "Ensure that there are no more than {n} digits in total."
MAX_PLACES: Final = "Ensure that there are no more than {n} decimal places."
MAX_WHOLE: Final = "Ensure that there are no more than {n} digits before the decimal point."
MIN_VALUE: Final = "Ensure this value is greater than or equal to {n}."
BAD_DATE: Final = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
NOT_FOUND: Final = "Not found."
NOT_AUTHENTICATED: Final = "Authentication credentials were not provided."
INVALID_TOKEN: Final = "Invalid token."
PRECONDITION_FAILED: Final = "Precondition failed."
INVALID_CURSOR: Final = "Invalid cursor"
SERVER_ERROR: Final = "Internal server error."
METHOD_NOT_ALLOWED: Final = 'Method "{method}" not allowed.'
UNSUPPORTED_MEDIA: Final = 'Unsupported media type "{media_type}" in request.'
THROTTLED: Final = "Request was throttled. Expected available in {n} seconds."
TOO_LARGE: Final = "Request body is too large: the limit is {n} bytes."
TIMEOUT: Final = "Request timed out."
COUNT_TIMEOUT: Final = (
    "Counting every match exactly took longer than the {s} s statement time limit: ask for"
    " an estimated count (Prefer: count=estimated, or count=none for none), or narrow the"
    " filter."
)
STATEMENT_TIMEOUT: Final = (
    "The query took longer than the {s} s statement time limit: narrow the filter, or"
    " follow the next links (a cursor) rather than a deep offset."
)


class APIError(sanic_exc.SanicException):
    status_code: ClassVar[int] = 500
    default_detail: ClassVar[str] = SERVER_ERROR
    quiet = True

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = self.default_detail if detail is None else detail
        super().__init__(str(self.detail), status_code=self.status_code, headers=headers)

    def body(self) -> Any:
        return self.detail if isinstance(self.detail, (dict, list)) else {"detail": self.detail}


class ValidationError(APIError):
    status_code = 400
    default_detail = "Invalid input."


class ParseError(APIError):
    status_code = 400
    default_detail = "Malformed request."


class NotAuthenticated(APIError):
    status_code = 401
    default_detail = NOT_AUTHENTICATED

    def __init__(self, detail: Any = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Token"})


class AuthenticationFailed(NotAuthenticated):
    default_detail = INVALID_TOKEN


class NotFound(APIError):
    status_code = 404
    default_detail = NOT_FOUND


class PreconditionFailed(APIError):
    status_code = 412
    default_detail = PRECONDITION_FAILED


class UnsupportedMediaType(APIError):
    status_code = 415

    def __init__(self, media_type: str) -> None:
        super().__init__(UNSUPPORTED_MEDIA.format(media_type=media_type))


class Throttled(APIError):
    status_code = 429

    def __init__(self, wait: int) -> None:
        super().__init__(THROTTLED.format(n=wait), headers={"Retry-After": str(wait)})


class ServiceUnavailable(APIError):
    status_code = 503
    default_detail = "Service temporarily unavailable, try again later."


METHOD_ORDER: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _id_prefix() -> str:
    """Twenty random hex digits (version 4 and RFC 4122 variant bits set), dashed as
    the first four groups of a UUID."""
    bits = (random.getrandbits(80) & ~(0xF000 << 16 | 0xC000)) | (0x4000 << 16 | 0x8000)
    h = f"{bits:020x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:]}-"


class _RequestIds:
    """This process's request ids: a random prefix and a counter from a random start."""

    def __init__(self) -> None:
        self.reset()
        # A forked child (Sanic spawns its workers, but a fork is not forbidden) must not
        # repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = _id_prefix()
        self.counter = itertools.count(random.getrandbits(48))

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


_ids = _RequestIds()


def new_request_id() -> str:
    """A UUID (version 4 in form) for a request that brought no id of its own.

    A random prefix per process and a counter in the last 48 bits: unique within the
    process for 2**48 requests, and between processes but for a chance of 2**-74 per
    pair. Making 122 random bits per request took 2 µs, 3% of a detail read's CPU time;
    this takes a tenth of it (issue 9). ``random`` is seeded from the OS in every process
    (Sanic spawns its workers). A request id is a label, not a secret: ids are
    sequential within a worker.
    """
    return _ids.new()


def request_id(request: Request) -> str:
    """The client's X-Request-ID exactly as sent, else an id made for this request.

    Not Sanic's ``request.id``, which casts a client's id to a UUID or an int (``007``
    came back as ``7``, an upper-case UUID in lower case: the contract says echoed) and
    makes its own with ``uuid.uuid4()`` (see ``new_request_id``). Kept on the request
    (``TimedRequest.bookshelf_request_id``; on ``request.ctx`` for any other request
    class) so every reader (error body, header, logs) gives the same value.
    """
    try:
        rid = request.bookshelf_request_id  # type: ignore[attr-defined]
    except AttributeError:  # not a TimedRequest: its context keeps the id
        ctx = request.ctx
        rid = getattr(ctx, "request_id", None)
        if rid is None:
            rid = ctx.request_id = _request_id_of(request)
        return rid
    if rid is None:
        rid = request.bookshelf_request_id = _request_id_of(request)  # type: ignore[attr-defined]
    return rid


def _request_id_of(request: Request) -> str:
    header = request.app.config.get("REQUEST_ID_HEADER", "X-Request-ID")
    raw = request.headers.getone(header, None)
    return (raw or "").strip() or new_request_id()


def allow_header(methods: Any) -> str:
    wanted = {m.upper() for m in methods}
    return ", ".join(m for m in METHOD_ORDER if m in wanted)


def _translate(request: Request | None, exc: Exception) -> tuple[int, Any, dict[str, str]]:
    if isinstance(exc, APIError):
        return exc.status_code, exc.body(), dict(exc.headers or {})
    if isinstance(exc, TokenRejectedError):
        failed = AuthenticationFailed()
        return failed.status_code, failed.body(), dict(failed.headers or {})
    if isinstance(exc, NotFoundError):
        return 404, {"detail": NOT_FOUND}, {}
    if isinstance(exc, PreconditionFailedError):
        return 412, {"detail": PRECONDITION_FAILED}, {}
    if isinstance(exc, StatementTimeoutError):
        seconds = f"{exc.seconds:g}" if exc.seconds is not None else "?"
        detail = (COUNT_TIMEOUT if exc.counting else STATEMENT_TIMEOUT).format(s=seconds)
        return 503, {"detail": detail}, {"Retry-After": "5"}
    if isinstance(exc, DatabaseUnavailableError):
        return 503, {"detail": ServiceUnavailable.default_detail}, {"Retry-After": "1"}
    if isinstance(exc, sanic_exc.MethodNotAllowed):
        method = request.method if request is not None else "?"
        headers = {"Allow": allow_header(exc.allowed_methods or ())}
        return 405, {"detail": METHOD_NOT_ALLOWED.format(method=method)}, headers
    if isinstance(exc, sanic_exc.NotFound):
        return 404, {"detail": NOT_FOUND}, {}
    if isinstance(exc, sanic_exc.PayloadTooLarge):
        limit = request.app.config.REQUEST_MAX_SIZE if request is not None else "?"
        return 413, {"detail": TOO_LARGE.format(n=limit)}, {}
    if isinstance(exc, (sanic_exc.RequestTimeout, sanic_exc.ServiceUnavailable)):
        return exc.status_code, {"detail": TIMEOUT}, {}
    if isinstance(exc, sanic_exc.RequestCancelled):
        # The client went away: nobody will read this answer, and it is no server fault.
        return 499, {"detail": "Client closed the request."}, {}
    if isinstance(exc, sanic_exc.SanicException) and 400 <= exc.status_code < 500:
        return exc.status_code, {"detail": str(exc) or "Bad request."}, dict(exc.headers or {})
    return 500, None, {}


class APIErrorHandler(ErrorHandler):
    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        status, body, headers = _translate(request, exception)
        rid = request_id(request) if request is not None else ""
        if status >= 500 and body is None:
            # Never guess and never leak str(exc): log the traceback once, answer opaquely.
            log.error(
                "unhandled exception",
                exc_info=exception,
                extra={"request_id": rid},
            )
            body = {"detail": SERVER_ERROR, "request_id": rid}
        if rid:
            headers["X-Request-ID"] = rid
        return json(body, status=status, headers=headers)
