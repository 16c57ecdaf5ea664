"""Every error status the API answers, and the one place that turns any exception into
a JSON response.

=====  ======================  ======================================================
 400   ValidationError         ``{"field": ["message", ...]}`` (or a bad query parameter)
 400   ParseError              ``{"detail": "JSON parse error - ..."}``
 401   NotAuthenticated        no token; ``WWW-Authenticate: Token``
 401   AuthenticationFailed    a bad token (db/'s TokenRejectedError too)
 404   NotFound                db/'s NotFoundError, Sanic's NotFound (unknown path)
 405   MethodNotAllowed        Sanic's MethodNotAllowed; ``Allow``
 408   RequestTimeout          Sanic's RequestTimeout
 409   IdempotencyInProgress   db/'s IdempotencyInProgressError; ``Retry-After``
 412   PreconditionFailed      db/'s PreconditionFailedError (a stale If-Match)
 413   PayloadTooLarge         Sanic's PayloadTooLarge (over REQUEST_MAX_SIZE)
 413   BodyOutOfMemory         MemoryError reading or parsing the body; ``Retry-After: 5``
 415   UnsupportedMediaType    a body that is not JSON
 422   IdempotencyMismatch     db/'s IdempotencyMismatchError (a key used with another body)
 429   Throttled               over the rate limit; ``Retry-After``
 499   ClientClosedRequest     Sanic's RequestCancelled: the client went away
 503   ServiceUnavailable      db/'s DatabaseUnavailableError; ``Retry-After: 1``
 503   ResponseTimeout         Sanic's ServiceUnavailable (the response timed out)
 503   StorageFault            the database cannot take a write; ``Retry-After: 30``
 507   StorageFault            ... because its disk is full
 503   OutcomeUnknown          db/'s OutcomeUnknownError: the write may have been stored
 503   StatementTimeout        a statement ran past STATEMENT_TIMEOUT; ``Retry-After: 5``
 503   OutOfMemory             MemoryError anywhere else; ``Retry-After: 5``; a write's
                               detail says it may have been stored
 4xx                           any other client error Sanic raises: its status and text
 500                           anything else: opaque, with the request id, logged once
=====  ======================  ======================================================

api/ raises its classes where the error happens. db/ never imports Sanic: it raises its
own errors, answered as the API error that ``FROM_DB`` names; a failed statement whose
cause is the database's storage (``db.health``: disk full, read-only, corrupt, the file
gone) is a ``StorageFault``; a statement stopped at ``STATEMENT_TIMEOUT`` is a
``StatementTimeout``; Sanic's own are answered as the one ``_from_sanic`` names. A
``MemoryError`` is answered by ``out_of_memory``, never as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from sanic import Request
from sanic import exceptions as sanic_exc
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse

from api.request_ids import request_id
from api.responses import json
from db import health as db_health
from db.errors import (
    DatabaseError,
    DatabaseFaultError,
    DatabaseUnavailableError,
    IdempotencyInProgressError,
    IdempotencyMismatchError,
    NotFoundError,
    OutcomeUnknownError,
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
# The database could not be reached, or refused the statement: nothing was written.
UNAVAILABLE: Final = (
    "Service temporarily unavailable, try again later: the database could not be reached,"
    " and nothing was changed."
)
OUTCOME_UNKNOWN: Final = (
    "The database connection was lost after the write was sent: it may have been stored."
    " Retrying with the same Idempotency-Key is safe (it is never applied twice); without"
    " one, GET the resource (or the list) to check before writing again."
)
IDEMPOTENCY_IN_PROGRESS: Final = "A request with this Idempotency-Key is in progress."
IDEMPOTENCY_MISMATCH: Final = "This Idempotency-Key was used with a different request."
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


class MethodNotAllowed(APIError):
    status_code = 405

    def __init__(self, method: str, allowed: Iterable[str]) -> None:
        super().__init__(
            METHOD_NOT_ALLOWED.format(method=method), headers={"Allow": allow_header(allowed)}
        )


class RequestTimeout(APIError):
    status_code = 408
    default_detail = TIMEOUT


class PreconditionFailed(APIError):
    status_code = 412
    default_detail = PRECONDITION_FAILED


class PayloadTooLarge(APIError):
    status_code = 413

    def __init__(self, limit: Any) -> None:
        super().__init__(TOO_LARGE.format(n=limit))


class UnsupportedMediaType(APIError):
    status_code = 415

    def __init__(self, media_type: str) -> None:
        super().__init__(UNSUPPORTED_MEDIA.format(media_type=media_type))


class Throttled(APIError):
    status_code = 429

    def __init__(self, wait: int) -> None:
        super().__init__(THROTTLED.format(n=wait), headers={"Retry-After": str(wait)})


class ClientClosedRequest(APIError):
    """Nobody reads this answer, and it is no server fault."""

    status_code = 499
    default_detail = "Client closed the request."


class ServiceUnavailable(APIError):
    status_code = 503
    default_detail = UNAVAILABLE

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class ResponseTimeout(APIError):
    status_code = 503
    default_detail = TIMEOUT


class StatementTimeout(APIError):
    """A statement stopped at the time limit; the detail says what to change."""

    status_code = 503

    def __init__(self, exc: StatementTimeoutError) -> None:
        seconds = f"{exc.seconds:g}" if exc.seconds is not None else "?"
        detail = (COUNT_TIMEOUT if exc.counting else STATEMENT_TIMEOUT).format(s=seconds)
        super().__init__(detail, headers={"Retry-After": "5"})


class StorageFault(APIError):
    """A write the database's storage cannot take: its detail says why and what to do."""

    status_code = 503

    def __init__(self, fault: DatabaseFaultError) -> None:
        super().__init__(str(fault), headers={"Retry-After": "30"})
        if fault.reason == db_health.DISK_FULL:
            self.status_code = 507  # type: ignore[misc]


class OutcomeUnknown(APIError):
    """A write sent whose outcome was lost: 503, saying it may have been stored."""

    status_code = 503

    def __init__(self, exc: OutcomeUnknownError) -> None:
        # A storage fault behind it (the file moved or replaced) says what to do itself.
        detail = str(exc) if exc.reason == db_health.GONE else OUTCOME_UNKNOWN
        retry = "30" if exc.reason == db_health.GONE else "1"
        super().__init__(detail, headers={"Retry-After": retry})


class IdempotencyInProgress(APIError):
    status_code = 409
    default_detail = IDEMPOTENCY_IN_PROGRESS

    def __init__(self, exc: IdempotencyInProgressError) -> None:
        super().__init__(headers={"Retry-After": str(exc.retry_after)})


class IdempotencyMismatch(APIError):
    status_code = 422
    default_detail = IDEMPOTENCY_MISMATCH


# -- running out of memory -------------------------------------------------------------
OUT_OF_MEMORY: Final = "The server ran out of memory for this request; try again later."
OUT_OF_MEMORY_BODY: Final = (
    "The server ran out of memory reading this request's body; nothing was stored. Send a"
    " smaller body (fewer books per request), or try again later."
)
OUT_OF_MEMORY_WRITE: Final = (
    "The server ran out of memory handling this write, which may have been stored: check"
    " before sending it again, or send it again with the same Idempotency-Key."
)
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class OutOfMemory(APIError):
    status_code = 503

    def __init__(self, detail: str = OUT_OF_MEMORY) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class BodyOutOfMemory(APIError):
    """Raised where a write's body is parsed and validated (``api.auth.write_input``):
    nothing has been sent to the database yet."""

    status_code = 413

    def __init__(self) -> None:
        super().__init__(OUT_OF_MEMORY_BODY, headers={"Retry-After": "5"})


def _body_unread(request: Request) -> bool:
    """Whether a body was sent that Sanic has not finished reading (it reads the whole body
    before the handler runs: a MemoryError there leaves ``request.body`` empty)."""
    if request.body:
        return False
    headers = request.headers
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    length = headers.get("content-length", "0").strip()
    return length.isdigit() and int(length) > 0


def out_of_memory(request: Request | None) -> APIError:
    """The answer to a MemoryError, logged as one line (no traceback: formatting one needs
    memory too). A write that got past its body may have been committed before memory ran
    out (building its answer, say): its answer never says that nothing was stored."""
    if request is None or request.method in _SAFE_METHODS:
        error: APIError = OutOfMemory()
    elif _body_unread(request):
        error = BodyOutOfMemory()
    else:
        error = OutOfMemory(OUT_OF_MEMORY_WRITE)
    _log_out_of_memory(request, error)
    return error


def _log_out_of_memory(request: Request | None, error: APIError) -> None:
    rid = request_id(request) if request is not None else ""
    log.warning("out of memory: answered %s", error.status_code, extra={"request_id": rid})


# db/'s errors, each answered as an API error (the first that matches).
FROM_DB: Final[tuple[tuple[type[DatabaseError], type[APIError]], ...]] = (
    (TokenRejectedError, AuthenticationFailed),
    (NotFoundError, NotFound),
    (PreconditionFailedError, PreconditionFailed),
    (IdempotencyMismatchError, IdempotencyMismatch),
    (DatabaseUnavailableError, ServiceUnavailable),
)
# Answers without arguments are made once: making an exception took 2 µs, on every 404.
_FROM_DB_MADE: Final = tuple((db_error, api_error()) for db_error, api_error in FROM_DB)
_NOT_FOUND: Final = NotFound()

METHOD_ORDER: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def allow_header(methods: Any) -> str:
    wanted = {m.upper() for m in methods}
    return ", ".join(m for m in METHOD_ORDER if m in wanted)


def _from_sanic(request: Request | None, exc: Exception) -> APIError | None:
    """The API error for one of Sanic's own, or None."""
    if isinstance(exc, sanic_exc.MethodNotAllowed):
        method = request.method if request is not None else "?"
        return MethodNotAllowed(method, exc.allowed_methods or ())
    if isinstance(exc, sanic_exc.NotFound):
        return _NOT_FOUND
    if isinstance(exc, sanic_exc.PayloadTooLarge):
        return PayloadTooLarge(request.app.config.REQUEST_MAX_SIZE if request is not None else "?")
    if isinstance(exc, sanic_exc.RequestTimeout):
        return RequestTimeout()
    if isinstance(exc, sanic_exc.ServiceUnavailable):
        return ResponseTimeout()
    if isinstance(exc, sanic_exc.RequestCancelled):
        return ClientClosedRequest()
    return None


def _api_error(request: Request | None, exc: Exception) -> APIError | None:
    if isinstance(exc, APIError):
        if isinstance(exc, (BodyOutOfMemory, OutOfMemory)):
            _log_out_of_memory(request, exc)
        return exc
    if isinstance(exc, MemoryError):
        return out_of_memory(request)
    if isinstance(exc, DatabaseError):
        if isinstance(exc, StatementTimeoutError):
            return StatementTimeout(exc)
        if isinstance(exc, OutcomeUnknownError):
            return OutcomeUnknown(exc)
        if isinstance(exc, IdempotencyInProgressError):
            return IdempotencyInProgress(exc)
        for db_error, api_error in _FROM_DB_MADE:
            if isinstance(exc, db_error):
                return api_error
        return None
    return _from_sanic(request, exc)


def _translate(request: Request | None, exc: Exception) -> tuple[int, Any, dict[str, str]]:
    error = _api_error(request, exc)
    if isinstance(exc, OutcomeUnknownError):
        # Its answer stays "may have been stored"; a fault or an outage behind it is still
        # logged once per incident.
        if db_health.fault_of(exc) is None:
            db_health.unreachable(exc)
    elif error is None or isinstance(exc, DatabaseUnavailableError):
        # A storage fault (disk full, read-only, corrupt, file gone) is logged once per
        # incident; so is the start of an outage.
        fault = db_health.fault_of(exc)
        if fault is not None:
            error = StorageFault(fault)
        elif isinstance(exc, DatabaseUnavailableError):
            db_health.unreachable(exc)
    if error is not None:
        return error.status_code, error.body(), dict(error.headers or {})
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
