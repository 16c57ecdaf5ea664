"""The OpenAPI document's shared parts: schemas, error responses, headers, security
schemes and parameters, named once and referred to by each operation beside its handler
(``api.openapi.describe``)."""

from __future__ import annotations

from typing import Any, Final

from sanic_ext.extensions.openapi.definitions import Parameter

from api.pagination import DEEP_OFFSET, MAX_OFFSET
from api.protocol import HEADER_TOO_LARGE, MALFORMED_FIELD
from db.backend import COUNT_EXACT_UP_TO, COUNT_SCAN_LIMIT
from db.schema import NAMES, ORDERABLE, WRITABLE

JSON: Final = "application/json"
SECURITY: Final = [{"TokenAuth": []}, {"BearerAuth": []}]


# --------------------------------------------------------------------------- schemas


def ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


_TEXT: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
}
_PRICE_OUT: Final = {
    "type": "string",
    "pattern": r"^\d{1,3}\.\d{2}$",
    "description": "A decimal serialized as a string with 2 places, 0.00 to 999.99.",
    "example": "12.50",
}
_BOOK_PROPERTIES: Final = {
    "id": {"type": "integer", "minimum": 1, "readOnly": True, "example": 1},
    "title": {**_TEXT, "example": "Dune"},
    "author": {**_TEXT, "example": "Frank Herbert"},
    "published_date": {"type": "string", "format": "date", "example": "1965-08-01"},
    "price": _PRICE_OUT,
}
# Every field of the one definition (db.schema) is described, and nothing else.
assert tuple(_BOOK_PROPERTIES) == NAMES, "describe each field of db.schema.FIELDS"
_CHAR_IN: Final = (
    "1 to 255 characters after trimming surrounding whitespace. A JSON number is accepted "
    "and stored as its text, as DRF's CharField does."
)
_INPUT_PROPERTIES: Final = {
    "id": {"type": "integer", "readOnly": True, "description": "Ignored in request bodies."},
    "title": {
        "anyOf": [{"type": "string"}, {"type": "number"}],
        "description": _CHAR_IN,
        "example": "Dune",
    },
    "author": {
        "anyOf": [{"type": "string"}, {"type": "number"}],
        "description": _CHAR_IN,
        "example": "Frank Herbert",
    },
    "published_date": {
        "type": "string",
        "format": "date",
        "description": "A real calendar date, YYYY-MM-DD.",
        "example": "1965-08-01",
    },
    "price": {
        "description": (
            'A decimal as a JSON string (`"12.5"`) or number (`12.5`): at most 5 digits '
            "in total and 2 after the point, not negative (0 to 999.99)."
        ),
        "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0, "maximum": 999.99}],
        "example": "12.50",
    },
}
_MESSAGES: Final = {"type": "array", "items": {"type": "string"}}

SCHEMAS: Final[dict[str, Any]] = {
    "Book": {
        "type": "object",
        "required": list(_BOOK_PROPERTIES),
        "properties": _BOOK_PROPERTIES,
        "additionalProperties": False,
    },
    "SparseBook": {
        "type": "object",
        "description": "A Book; with `fields=...` only the fields asked for.",
        "properties": _BOOK_PROPERTIES,
        "additionalProperties": False,
    },
    "BookInput": {
        "type": "object",
        "description": "Every writable field is required. Unknown fields are ignored.",
        "required": list(WRITABLE),
        "properties": _INPUT_PROPERTIES,
    },
    "BookPatch": {
        "type": "object",
        "description": (
            "A partial update: only the fields present change. Unknown fields are ignored."
        ),
        "properties": _INPUT_PROPERTIES,
    },
    "BookCreate": {
        "description": "One book, or an array of 1 to 1000 books created all-or-nothing.",
        "oneOf": [
            ref("schemas", "BookInput"),
            {
                "type": "array",
                "items": ref("schemas", "BookInput"),
                "minItems": 1,
                "maxItems": 1000,
            },
        ],
    },
    "BookPage": {
        "type": "object",
        "description": (
            "DRF's LimitOffsetPagination envelope. `count` is absent on pages fetched "
            "with a `cursor`, and with `Prefer: count=none`. It is exact for the whole "
            "table, for `author` alone, and for a filter with at most "
            f"{COUNT_EXACT_UP_TO:,} matches (up to {COUNT_SCAN_LIMIT:,} where an index "
            "finds them cheaply); above, an estimate from a sample of the table whose size "
            "does not grow with it, at least the matches counted and at most the table's "
            "size, unless `Prefer: count=exact` asks otherwise. `X-Count-Kind` says "
            "which. The pages themselves are exact."
        ),
        "required": ["next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0, "example": 1234},
            "next": {"type": "string", "format": "uri", "nullable": True},
            "previous": {"type": "string", "format": "uri", "nullable": True},
            "results": {"type": "array", "items": ref("schemas", "SparseBook")},
        },
        "additionalProperties": False,
    },
    "ApiRoot": {
        "type": "object",
        "required": ["books"],
        "properties": {"books": {"type": "string", "format": "uri"}},
        "additionalProperties": False,
    },
    "Detail": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": False,
    },
    "FieldErrors": {
        "type": "object",
        "description": (
            "One list of messages per invalid field (or `non_field_errors`); for a bulk "
            "create, one such object per invalid item, keyed by the item's index."
        ),
        "minProperties": 1,
        "additionalProperties": {
            "anyOf": [_MESSAGES, {"type": "object", "additionalProperties": _MESSAGES}],
        },
        "example": {
            "title": ["This field is required."],
            "price": ["Ensure that there are no more than 5 digits in total."],
        },
    },
    "ServerError": {
        "type": "object",
        "required": ["detail", "request_id"],
        "properties": {
            "detail": {"type": "string", "example": "Internal server error."},
            "request_id": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "example": "ok"},
            "database": {"type": "string"},
        },
    },
}

HEADERS: Final[dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's own X-Request-ID, else a new UUID.",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "A strong tag that changes whenever the book changes.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[^"]*"$'},
    },
    "X-Count-Kind": {
        "description": (
            "On a page with `count`: `exact`, or `estimated` (a count too costly to take "
            "exactly, or one `Prefer: count=estimated` asked for)."
        ),
        "required": False,
        "schema": {"type": "string", "enum": ["exact", "estimated"]},
    },
    "Preference-Applied": {
        "description": "The `count` preference of `Prefer` that was honoured (RFC 7240).",
        "required": False,
        "schema": {"type": "string", "enum": ["count=exact", "count=estimated", "count=none"]},
    },
    "Vary": {
        "description": "`Prefer` on a page without a `cursor`: its `count` depends on it.",
        "required": False,
        "schema": {"type": "string"},
    },
}


def response(
    description: str,
    schema: dict[str, Any] | None = None,
    *,
    media: str = JSON,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-ID": ref("headers", "X-Request-ID"), **(headers or {})},
    }
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def text_header(description: str, *, required: bool = True, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


def _retry_after() -> dict[str, Any]:
    return text_header("Seconds to wait before trying again.", pattern=r"^\d+$")


RESPONSES: Final[dict[str, Any]] = {
    "BadRequest": response(
        "Invalid fields (`{field: [messages]}`), a bad query parameter (named in the body), "
        'a body that is not JSON or not an object (`{"detail": "JSON parse error - ..."}`), '
        "or a malformed request head (whitespace before a header's colon, a folded header "
        "line: the connection then closes).",
        {"anyOf": [ref("schemas", "Detail"), ref("schemas", "FieldErrors")]},
    ),
    "Unauthorized": response(
        "No token (`Authentication credentials were not provided.`) or a bad one "
        "(`Invalid token.`).",
        ref("schemas", "Detail"),
        headers={"WWW-Authenticate": text_header("`Token`", enum=["Token"])},
    ),
    "NotFound": response(
        "Unknown id (a non-integer id included): `Not found.`", ref("schemas", "Detail")
    ),
    "MethodNotAllowed": response(
        "The route does not have that method.",
        ref("schemas", "Detail"),
        headers={"Allow": text_header("The route's methods.")},
    ),
    "PreconditionFailed": response(
        "`If-Match` names a stale version: nothing changed. `Precondition failed.`",
        ref("schemas", "Detail"),
    ),
    "PayloadTooLarge": response("The body is over `MAX_BODY_BYTES`.", ref("schemas", "Detail")),
    "UnsupportedMediaType": response(
        'The body is not JSON: `Unsupported media type "text/plain" in request.`',
        ref("schemas", "Detail"),
    ),
    "Throttled": response(
        "Over the rate limit (only when `RATE_LIMIT` is set).",
        ref("schemas", "Detail"),
        headers={
            "Retry-After": text_header("Seconds until the next request fits.", pattern=r"^\d+$")
        },
    ),
    "MalformedHead": response(
        "A malformed request head, answered before the operation: whitespace before a "
        f"header's colon or a folded header line (RFC 9112), `{MALFORMED_FIELD}` The "
        "connection then closes.",
        ref("schemas", "Detail"),
    ),
    "HeaderTooLarge": response(
        "The request line and header fields together are over Sanic's "
        "`REQUEST_MAX_HEADER_SIZE` (8192 bytes by default): "
        f"`{HEADER_TOO_LARGE.format(n='N')}`",
        ref("schemas", "Detail"),
    ),
    "StatementTimeout": response(
        "A query ran past `STATEMENT_TIMEOUT` (`Retry-After: 5`); the detail says what to "
        "change (for a count: `Prefer: count=estimated` or `count=none`; else a narrower "
        "filter, or the `next` links rather than a deep offset). Also when the database "
        "does not answer (`Retry-After: 1`).",
        ref("schemas", "Detail"),
        headers={"Retry-After": _retry_after()},
    ),
    "StorageUnavailable": response(
        "The database's storage cannot take the write (read-only, corrupt; "
        "`Retry-After: 30`): the detail says why and what to do. Also when the database "
        "does not answer (`Retry-After: 1`): nothing was changed. When the write was sent "
        "and its outcome was lost (the database connection died before its answer; the "
        "SQLite file moved or replaced under it), the detail says it **may have been "
        "stored**: a retry with the same `Idempotency-Key` is safe, or GET the resource to "
        "check.",
        ref("schemas", "Detail"),
        headers={"Retry-After": _retry_after()},
    ),
    "IdempotencyInProgress": response(
        "A request with this `Idempotency-Key` is still running: `A request with this "
        "Idempotency-Key is in progress.` Retry after `Retry-After` seconds.",
        ref("schemas", "Detail"),
        headers={"Retry-After": _retry_after()},
    ),
    "IdempotencyMismatch": response(
        "This `Idempotency-Key` was used (by this token, within 24 h) with another request "
        "body: `This Idempotency-Key was used with a different request.` Nothing was written.",
        ref("schemas", "Detail"),
    ),
    "InsufficientStorage": response(
        "The database's disk is full: nothing was written; the detail says what to do.",
        ref("schemas", "Detail"),
        headers={"Retry-After": _retry_after()},
    ),
    "ServerError": response(
        "An unexpected failure: opaque, never a stack trace.", ref("schemas", "ServerError")
    ),
}

SECURITY_SCHEMES: Final[dict[str, Any]] = {
    "TokenAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "DRF's TokenAuthentication: the value is `Token <key>` (type the word `Token`, "
            "a space, then the key). Create a key with `python main.py token create NAME`."
        ),
    },
    "BearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as `Authorization: Bearer <key>`.",
    },
}


# Every component, by kind, as the document lists them.
COMPONENTS: Final[dict[str, dict[str, Any]]] = {
    "schemas": SCHEMAS,
    "responses": RESPONSES,
    "headers": HEADERS,
    "securitySchemes": SECURITY_SCHEMES,
}


# --------------------------------------------------------------------------- for operations


# The error response of each status an operation can list.
_ERROR_RESPONSES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    409: "IdempotencyInProgress",
    412: "PreconditionFailed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "IdempotencyMismatch",
    429: "Throttled",
    431: "HeaderTooLarge",
    500: "ServerError",
    507: "InsufficientStorage",
}


def errors(*statuses: int, unavailable: str | None = None) -> dict[str, Any]:
    """The shared error responses of ``statuses`` (and 503 as the response named
    ``unavailable``), keyed as an operation lists them, with those of a bad request head
    that any operation can answer: 431, and 400 when the operation has none of its own."""
    out = {str(status): ref("responses", _ERROR_RESPONSES[status]) for status in statuses}
    out.setdefault("400", ref("responses", "MalformedHead"))
    out["431"] = ref("responses", "HeaderTooLarge")
    if unavailable is not None:
        out["503"] = ref("responses", unavailable)
    return dict(sorted(out.items()))


def body(schema_name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "description": description,
        "content": {JSON: {"schema": ref("schemas", schema_name)}},
    }


ETAG: Final = {"ETag": ref("headers", "ETag")}
# The headers of a list page (api.pagination.headers).
COUNT_HEADERS: Final = {
    name: ref("headers", name) for name in ("X-Count-Kind", "Preference-Applied", "Vary")
}


# --------------------------------------------------------------------------- parameters


def query(name: str, schema: dict[str, Any], description: str) -> Parameter:
    # An empty value (`?author=`) is the same as leaving the parameter out.
    return Parameter(
        name, schema, "query", description=description, required=False, allowEmptyValue=True
    )


def header(name: str, description: str) -> Parameter:
    return Parameter(name, {"type": "string"}, "header", description=description, required=False)


# What str.strip() strips (str.isspace), spelled for an ECMA-262 pattern.
_WS: Final = r"[\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
_FIELD: Final = f"({'|'.join(NAMES)})"
# Comma-separated parts, each trimmed; empty parts are skipped.
ORDERING_PATTERN: Final = f"^{_WS}(-?{_FIELD})?{_WS}(,{_WS}(-?{_FIELD})?{_WS})*$"
FIELDS_PATTERN: Final = f"^{_WS}{_FIELD}?{_WS}(,{_WS}{_FIELD}?{_WS})*$"


def _offset_text(limit: str, n: object) -> str:
    return (
        "Start of the page; links then go by offset. Cannot be combined with `cursor`. "
        f"At most the server's `MAX_OFFSET` ({limit}); deeper is a 400: "
        f"`{DEEP_OFFSET.format(n=n)}`"
    )


LIST_PARAMETERS: Final = (
    (
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "Page size, 1 to 100.",
    ),
    (
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        _offset_text(f"{MAX_OFFSET:,} by default", "MAX_OFFSET"),
    ),
    (
        "cursor",
        {"type": "string"},
        "Opaque keyset cursor taken from `next`/`previous`; the page then has no `count`. "
        "A malformed cursor is a 400.",
    ),
    ("author", {"type": "string"}, "Exact, case-sensitive match of the author."),
    (
        "search",
        {"type": "string"},
        "Case-insensitive substring of title or author (`%` and `_` are literal).",
    ),
    (
        "published_after",
        {"type": "string", "format": "date"},
        "Books published on or after this date (YYYY-MM-DD).",
    ),
    (
        "published_before",
        {"type": "string", "format": "date"},
        "Books published on or before this date (YYYY-MM-DD).",
    ),
    ("min_price", {"type": "number"}, "Books priced at least this much."),
    ("max_price", {"type": "number"}, "Books priced at most this much."),
    (
        "ordering",
        {"type": "string", "pattern": ORDERING_PATTERN, "example": "-published_date,title"},
        f"Comma-separated fields from {', '.join(ORDERABLE)}, each optionally "
        "prefixed with `-` for descending; ties are broken by id, in the direction "
        "of the last field.",
    ),
    (
        "fields",
        {"type": "string", "pattern": FIELDS_PATTERN, "example": "id,title"},
        f"Comma-separated subset of {', '.join(NAMES)} to return.",
    ),
)


def book_id() -> Parameter:
    return Parameter(
        "book_id",
        {"type": "integer"},
        "path",
        required=True,
        description="The book's id. A non-integer or unknown id is a 404.",
    )


def offset(max_offset: int) -> Parameter:
    """The ``offset`` query parameter of a server whose MAX_OFFSET is ``max_offset``."""
    return query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": max_offset},
        _offset_text(f"here {max_offset:,}", max_offset),
    )


def list_parameters() -> tuple[Any, ...]:
    """The list's query parameters; ``offset`` made for each app (``api.openapi.describe``),
    its maximum the app's MAX_OFFSET."""
    return tuple(
        _app_offset if name == "offset" else query(name, schema, text)
        for name, schema, text in LIST_PARAMETERS
    )


def _app_offset(app: Any) -> Parameter:
    settings = getattr(app.ctx, "settings", None)
    return offset(getattr(settings, "max_offset", MAX_OFFSET))


def prefer() -> Parameter:
    return header(
        "Prefer",
        "Optional (RFC 7240): `count=exact` to count every match, `count=estimated` for an "
        "estimate when counting exactly is costly, `count=none` for no `count`. "
        "`Preference-Applied` says which was honoured; other preferences are ignored.",
    )


def request_id() -> Parameter:
    return header("X-Request-ID", "Optional: echoed in the response's X-Request-ID.")


def idempotency_key() -> Parameter:
    return Parameter(
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
        "header",
        description=(
            "Optional (IETF HTTPAPI draft): 1 to 255 visible ASCII characters, unique per "
            "write, chosen by the client. The write runs at most once per key and token; a "
            "retry with the same key and body gets the first answer again (status, headers, "
            "body) without writing, for at least 24 h; another body is 422; while the first "
            "is still running, 409. A malformed key is 400."
        ),
        required=False,
    )


def if_match() -> Parameter:
    return header(
        "If-Match",
        "Optional: the ETag the client last saw. A stale tag answers 412 and changes nothing.",
    )
