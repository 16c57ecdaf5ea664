"""The OpenAPI document (``/docs/openapi.json``) and an offline Swagger UI (``/docs``).

sanic-ext discovers the routes and builds the document; this module says what each
operation takes and answers, as the contract (``API.md``) states it, by attaching an
operation description to each route's handler just before sanic-ext builds the document.
Routes are matched by name, so an operation added later (``ops.register``) is described
whether it is registered before or after :func:`register` runs, and a route that is gone
is simply not in the document.

The Swagger UI at ``/docs`` is served offline by :mod:`api.swagger_ui`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final

from sanic import Sanic
from sanic_ext.extensions.openapi.builders import (
    OperationBuilder,
    OperationStore,
    SpecificationBuilder,
)
from sanic_ext.extensions.openapi.definitions import Parameter

from api import swagger_ui

TITLE: Final = "bookshelf"
SECURITY: Final = [{"TokenAuth": []}, {"BearerAuth": []}]
JSON: Final = "application/json"

DESCRIPTION: Final = """\
The Book API of the classic Django REST Framework example, rebuilt on Sanic.

* Reads (`GET`, `HEAD`, `OPTIONS`) are open; every write needs an API token, sent as
  `Authorization: Token <key>` (DRF's form) or `Authorization: Bearer <key>`.
  Create one with `python main.py token create NAME`.
* Trailing slashes are optional: `/books` and `/books/` are the same resource.
* Every response, errors included, is JSON and carries `X-Request-ID` (echoed when the
  client sent one). Only `/metrics` (Prometheus text) and these docs are not JSON.
* `HEAD` answers as `GET` without a body; `OPTIONS` answers 200 with an `Allow` header.
  Any other method is a 405 `{"detail": "Method \\"X\\" not allowed."}` with `Allow`.
* With `RATE_LIMIT` set, a client over its budget gets 429 with `Retry-After`.
"""


# --------------------------------------------------------------------------- schemas


def _ref(kind: str, name: str) -> dict[str, str]:
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
        "required": ["title", "author", "published_date", "price"],
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
            _ref("schemas", "BookInput"),
            {
                "type": "array",
                "items": _ref("schemas", "BookInput"),
                "minItems": 1,
                "maxItems": 1000,
            },
        ],
    },
    "BookPage": {
        "type": "object",
        "description": (
            "DRF's LimitOffsetPagination envelope. `count` is absent on pages fetched "
            "with a `cursor`. On SQLite, the `count` of a `search` (three characters or "
            "more) with more than 500 matches is an estimate: at least 501, at most the "
            "table's size. The pages themselves are exact."
        ),
        "required": ["next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0, "example": 1234},
            "next": {"type": "string", "format": "uri", "nullable": True},
            "previous": {"type": "string", "format": "uri", "nullable": True},
            "results": {"type": "array", "items": _ref("schemas", "SparseBook")},
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
}


def _response(
    description: str,
    schema: dict[str, Any] | None = None,
    *,
    media: str = JSON,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "X-Request-ID"), **(headers or {})},
    }
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def _text_header(description: str, *, required: bool = True, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


RESPONSES: Final[dict[str, Any]] = {
    "BadRequest": _response(
        "Invalid fields (`{field: [messages]}`), a bad query parameter (named in the body), "
        'or a body that is not JSON or not an object (`{"detail": "JSON parse error - ..."}`).',
        {"anyOf": [_ref("schemas", "Detail"), _ref("schemas", "FieldErrors")]},
    ),
    "Unauthorized": _response(
        "No token (`Authentication credentials were not provided.`) or a bad one "
        "(`Invalid token.`).",
        _ref("schemas", "Detail"),
        headers={"WWW-Authenticate": _text_header("`Token`", enum=["Token"])},
    ),
    "NotFound": _response(
        "Unknown id (a non-integer id included): `Not found.`", _ref("schemas", "Detail")
    ),
    "MethodNotAllowed": _response(
        "The route does not have that method.",
        _ref("schemas", "Detail"),
        headers={"Allow": _text_header("The route's methods.")},
    ),
    "PreconditionFailed": _response(
        "`If-Match` names a stale version: nothing changed. `Precondition failed.`",
        _ref("schemas", "Detail"),
    ),
    "PayloadTooLarge": _response("The body is over `MAX_BODY_BYTES`.", _ref("schemas", "Detail")),
    "UnsupportedMediaType": _response(
        'The body is not JSON: `Unsupported media type "text/plain" in request.`',
        _ref("schemas", "Detail"),
    ),
    "Throttled": _response(
        "Over the rate limit (only when `RATE_LIMIT` is set).",
        _ref("schemas", "Detail"),
        headers={
            "Retry-After": _text_header("Seconds until the next request fits.", pattern=r"^\d+$")
        },
    ),
    "ServerError": _response(
        "An unexpected failure: opaque, never a stack trace.", _ref("schemas", "ServerError")
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

TAGS: Final = {
    "books": "The Book resource: DRF's ModelViewSet behind a DefaultRouter.",
    "operations": "Liveness, readiness and Prometheus metrics.",
}


# --------------------------------------------------------------------------- parameters


def _query(name: str, schema: dict[str, Any], description: str) -> Parameter:
    # An empty value (`?author=`) is the same as leaving the parameter out.
    return Parameter(
        name, schema, "query", description=description, required=False, allowEmptyValue=True
    )


def _header(name: str, description: str) -> Parameter:
    return Parameter(name, {"type": "string"}, "header", description=description, required=False)


# What str.strip() strips (str.isspace), spelled for an ECMA-262 pattern.
_WS: Final = r"[\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
_FIELD: Final = "(id|title|author|published_date|price)"
# Comma-separated parts, each trimmed; empty parts are skipped.
ORDERING_PATTERN: Final = f"^{_WS}(-?{_FIELD})?{_WS}(,{_WS}(-?{_FIELD})?{_WS})*$"
FIELDS_PATTERN: Final = f"^{_WS}{_FIELD}?{_WS}(,{_WS}{_FIELD}?{_WS})*$"

LIST_PARAMETERS: Final = (
    (
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "Page size, 1 to 100.",
    ),
    (
        "offset",
        {"type": "integer", "minimum": 0, "maximum": 2**53},
        "Start of the page; links then go by offset. Cannot be combined with `cursor`.",
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
        "Comma-separated fields from id, title, author, published_date, price, each optionally "
        "prefixed with `-` for descending; ties are broken by id.",
    ),
    (
        "fields",
        {"type": "string", "pattern": FIELDS_PATTERN, "example": "id,title"},
        "Comma-separated subset of id, title, author, published_date, price to return.",
    ),
)


def _book_id() -> Parameter:
    return Parameter(
        "book_id",
        {"type": "integer"},
        "path",
        required=True,
        description="The book's id. A non-integer or unknown id is a 404.",
    )


def _request_id() -> Parameter:
    return _header("X-Request-ID", "Optional: echoed in the response's X-Request-ID.")


def _if_match() -> Parameter:
    return _header(
        "If-Match",
        "Optional: the ETag the client last saw. A stale tag answers 412 and changes nothing.",
    )


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Op:
    operation_id: str
    summary: str
    responses: dict[str, Any]
    description: str = ""
    tag: str = "books"
    parameters: tuple[Any, ...] = ()
    body: dict[str, Any] | None = None
    secured: bool = False
    query: tuple[tuple[str, dict[str, Any], str], ...] = field(default=())


def _errors(*names: str) -> dict[str, Any]:
    codes = {
        "BadRequest": "400",
        "Unauthorized": "401",
        "NotFound": "404",
        "PreconditionFailed": "412",
        "PayloadTooLarge": "413",
        "UnsupportedMediaType": "415",
        "Throttled": "429",
        "ServerError": "500",
    }
    return {codes[n]: _ref("responses", n) for n in names}


def _body(schema_name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "description": description,
        "content": {JSON: {"schema": _ref("schemas", schema_name)}},
    }


_ETAG: Final = {"ETag": _ref("headers", "ETag")}
_WRITE_ERRORS: Final = (
    "BadRequest",
    "Unauthorized",
    "NotFound",
    "PreconditionFailed",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "Throttled",
    "ServerError",
)


def _operations() -> dict[tuple[str, str], Op]:
    """(route name without the app prefix, method) -> what the operation is."""
    book = _ref("schemas", "Book")
    update = {
        "200": _response("The updated book.", book, headers=_ETAG),
        **_errors(*_WRITE_ERRORS),
    }
    detail = (_book_id(), _request_id())
    return {
        ("books.root", "GET"): Op(
            "apiRoot",
            "API root",
            {
                "200": _response("Links to the resources.", _ref("schemas", "ApiRoot")),
                **_errors("Throttled", "ServerError"),
            },
            description="As DRF's DefaultRouter: the absolute URL of the book list.",
            parameters=(_request_id(),),
        ),
        ("books.list", "GET"): Op(
            "listBooks",
            "List books",
            {
                "200": _response("A page of books.", _ref("schemas", "BookPage")),
                **_errors("BadRequest", "Throttled", "ServerError"),
            },
            description=(
                "Paginated. Without `offset` or `cursor` the page has `count` and its `next` "
                "link carries a cursor; with `offset` the links go by offset. A bad parameter "
                "is a 400 whose body names it."
            ),
            parameters=(*(_query(*p) for p in LIST_PARAMETERS), _request_id()),
        ),
        ("books.list", "POST"): Op(
            "createBooks",
            "Create a book, or up to 1000 at once",
            {
                "201": _response(
                    "The created book (with `Location` and `ETag`), or for an array the "
                    "created books in request order.",
                    {"oneOf": [book, {"type": "array", "items": book}]},
                    headers={
                        "Location": _text_header(
                            "The new book's URL (single create only).", required=False, format="uri"
                        ),
                        "ETag": {
                            **HEADERS["ETag"],
                            "required": False,
                            "description": "The new book's ETag (single create only).",
                        },
                    },
                ),
                **_errors(
                    "BadRequest",
                    "Unauthorized",
                    "PayloadTooLarge",
                    "UnsupportedMediaType",
                    "Throttled",
                    "ServerError",
                ),
            },
            description=(
                "A JSON object creates one book; a JSON array of 1 to 1000 books creates them "
                "all or none (a rejected array's errors are keyed by item index)."
            ),
            parameters=(_request_id(),),
            body=_body("BookCreate", "One book, or an array of up to 1000 books."),
            secured=True,
        ),
        ("books.detail", "GET"): Op(
            "retrieveBook",
            "Retrieve a book",
            {
                "200": _response("The book.", book, headers=_ETAG),
                "304": _response(
                    "`If-None-Match` matches the current ETag: no body.", headers=_ETAG
                ),
                **_errors("NotFound", "Throttled", "ServerError"),
            },
            parameters=(
                *detail,
                _header(
                    "If-None-Match",
                    "Optional: ETags the client holds; the current one answers 304.",
                ),
            ),
        ),
        ("books.detail", "PUT"): Op(
            "updateBook",
            "Replace a book",
            update,
            description="A full update: every writable field is required.",
            parameters=(*detail, _if_match()),
            body=_body("BookInput", "Every writable field."),
            secured=True,
        ),
        ("books.detail", "PATCH"): Op(
            "partialUpdateBook",
            "Update some fields of a book",
            update,
            description="A partial update: only the fields present change.",
            parameters=(*detail, _if_match()),
            body=_body(
                "BookPatch",
                "Any subset of the writable fields; no body changes nothing.",
                required=False,
            ),
            secured=True,
        ),
        ("books.detail", "DELETE"): Op(
            "destroyBook",
            "Delete a book",
            {
                "204": _response("Deleted: no body."),
                **_errors(
                    "Unauthorized", "NotFound", "PreconditionFailed", "Throttled", "ServerError"
                ),
            },
            parameters=(*detail, _if_match()),
            secured=True,
        ),
        ("ops.healthz", "GET"): Op(
            "healthz",
            "Liveness",
            {"200": _response("The process serves.", _ref("schemas", "Status"))},
            description="200 while the process serves.",
            tag="operations",
        ),
        ("ops.readyz", "GET"): Op(
            "readyz",
            "Readiness",
            {
                "200": _response("The database answers.", _ref("schemas", "Status")),
                "503": _response("The database does not answer.", _ref("schemas", "Status")),
            },
            description="200 only when the database answers, else 503.",
            tag="operations",
        ),
        ("ops.metrics", "GET"): Op(
            "metrics",
            "Prometheus metrics",
            {
                "200": _response(
                    "Prometheus text exposition format: requests by route template, method and "
                    "status, and a latency histogram, summed over all workers.",
                    {"type": "string"},
                    media="text/plain",
                )
            },
            tag="operations",
        ),
    }


def _builder(op: Op) -> OperationBuilder:
    builder = OperationBuilder()
    builder.disable_autodoc()
    builder.operationId = op.operation_id
    builder.summary = op.summary
    if op.description:
        builder.description = op.description
    builder.tag(op.tag)
    builder.parameters = [copy.deepcopy(p) for p in op.parameters]
    if op.body is not None:
        builder.requestBody = copy.deepcopy(op.body)
    builder.responses = copy.deepcopy(op.responses)
    if op.secured:
        builder.security = copy.deepcopy(SECURITY)
    return builder


def _method_handler(handler: Any, method: str) -> Any:
    view_class = getattr(handler, "view_class", None)
    if view_class is not None:
        return getattr(view_class, method.lower(), None)
    return handler


def _route_name(app: Sanic, name: str) -> str:
    prefix = f"{app.name}."
    return name[len(prefix) :] if name.startswith(prefix) else name


def _canonical_path(route_name: str) -> str | None:
    # DRF's routes end with a slash; the operations routes do not.
    return {
        "books.root": "/",
        "books.list": "/books/",
        "books.detail": "/books/{book_id}/",
        "ops.healthz": "/healthz",
        "ops.readyz": "/readyz",
        "ops.metrics": "/metrics",
    }.get(route_name)


def _describe_routes(app: Sanic) -> None:
    """Before sanic-ext builds the document: a fresh description on every known handler."""
    spec = SpecificationBuilder()
    # The builder is one per process; start clean so that routes of an app built earlier
    # in this process (tests) never leak into this one's document.
    SpecificationBuilder._setup_instance(spec)
    spec.describe(TITLE, _version(), DESCRIPTION)
    for name, description in TAGS.items():
        spec.tag(name, description)
    for kind, items in (
        ("schemas", SCHEMAS),
        ("responses", RESPONSES),
        ("headers", HEADERS),
        ("securitySchemes", SECURITY_SCHEMES),
    ):
        for name, value in items.items():
            spec.add_component(kind, name, copy.deepcopy(value))

    operations = _operations()
    store = OperationStore()
    for route in app.router.routes:
        name = _route_name(app, route.name)
        for method in route.methods:
            op = operations.get((name, method))
            handler = _method_handler(route.handler, method)
            if op is None or handler is None:
                continue
            store[getattr(handler, "__func__", handler)] = _builder(op)


def _drop_slash_twins(app: Sanic) -> None:
    """After sanic-ext built the document: one path per route, the canonical one."""
    paths = SpecificationBuilder()._paths
    canonical = {c for r in app.router.routes if (c := _canonical_path(_route_name(app, r.name)))}
    for path in list(paths):
        twin = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        if twin not in paths or path in canonical:
            continue
        if twin in canonical or path.endswith("/"):
            del paths[path]


def _version() -> str:
    try:
        return metadata.version("bookshelf")
    except metadata.PackageNotFoundError:
        return "0.1.0"


# --------------------------------------------------------------------------- entry point


def register(app: Sanic) -> None:
    """Describe the API's routes in ``/docs/openapi.json`` and serve ``/docs`` offline.

    Call after ``Extend(app)``, with sanic-ext's own Swagger UI off (``OAS_UI_SWAGGER =
    False``); routes registered later (before the server starts) are
    described too.
    """
    if getattr(app.ctx, "openapi_registered", False) or not getattr(app.config, "OAS", True):
        return
    app.ctx.openapi_registered = True
    app.config.API_TITLE = TITLE
    app.config.API_VERSION = _version()
    app.config.API_DESCRIPTION = DESCRIPTION
    # Keep both /books and /books/ while building; _drop_slash_twins keeps the canonical one.
    app.config.API_URI_FILTER = "all"
    app.config.SWAGGER_UI_CONFIGURATION = {"docExpansion": "list", "validatorUrl": None}
    swagger_ui.register(app, f"{TITLE} API")
    # sanic-ext builds the document in a before_server_start listener of priority -1000:
    # higher priorities run first.
    app.before_server_start(_describe_routes, priority=0)
    app.before_server_start(_drop_slash_twins, priority=-2000)
