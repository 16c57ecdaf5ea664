"""The Books resource: DRF's ModelViewSet actions (list, create, retrieve, update,
partial_update, destroy) as two thin views over the database's backend (``db.backend``)."""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from sanic.views import HTTPMethodView

from api import pagination
from api import schemas as oas
from api.auth import write_input
from api.errors import ValidationError, allow_header
from api.filters import parse_fields
from api.openapi import describe
from api.responses import empty, json, json_bytes
from api.serializers import etag, parse_body, to_values, validate_book, validate_bulk
from db import idempotency
from db.query import BookJSON, BookValues

LIST_METHODS: Final = ("GET", "POST", "HEAD", "OPTIONS")
DETAIL_METHODS: Final = ("GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ROOT_METHODS: Final = ("GET", "HEAD", "OPTIONS")

_BOOK: Final = oas.ref("schemas", "Book")
# The IETF HTTPAPI draft's header: 1 to 255 visible ASCII characters.
_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")
BAD_IDEMPOTENCY_KEY: Final = (
    "Idempotency-Key must be one value of 1 to 255 visible ASCII characters (no spaces)."
)
_UPDATED: Final = {
    "200": oas.response("The updated book.", _BOOK, headers=oas.ETAG),
    **oas.errors(400, 401, 404, 412, 413, 415, 429, 500, 507, unavailable="StorageUnavailable"),
}


def base_url(request: Request) -> str:
    return f"{request.scheme}://{request.host}"


def _options(name: str, methods: tuple[str, ...]) -> HTTPResponse:
    body = {
        "name": name,
        "description": "",
        "renders": ["application/json"],
        "parses": ["application/json"],
    }
    return json(body, headers={"Allow": allow_header(methods)})


def _if_match(request: Request, book_id: int) -> tuple[int, ...] | None:
    """Versions an If-Match header accepts; None when absent or ``*``.

    Strong comparison, tag by tag: only this book's own tags (``"<id>-<version>"``,
    exactly as we send them) name a version. A weak, stale, foreign (another book's)
    or unreadable tag matches no version, so the write answers 412.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    prefix = f'"{book_id}-'
    versions: list[int] = []
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith(prefix) and tag.endswith('"'):
            version = tag[len(prefix) : -1]
            if (
                version.isascii()
                and version.isdigit()
                and len(version) < 10
                and tag == etag(book_id, int(version))
            ):
                versions.append(int(version))
    return tuple(versions) or (-1,)


def _none_match(request: Request, tag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in header.split(","))


def _creations(request: Request) -> tuple[bool, list[BookValues]]:
    """The books a POST creates, and whether it sent a list of them (bulk)."""
    data = parse_body(request.content_type, request.body)
    if isinstance(data, list):
        return True, validate_bulk(data)
    return False, [to_values(validate_book(data))]


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (1 to 255 visible ASCII characters), None when
    it has none; 400 naming the header when it is malformed or given twice."""
    values = request.headers.getall("idempotency-key", None)
    if not values:
        return None
    if len(values) != 1 or not _KEY.fullmatch(values[0]):
        raise ValidationError({"detail": BAD_IDEMPOTENCY_KEY})
    return str(values[0])


def _once(request: Request, token: str, key: str) -> idempotency.Once:
    """A request under ``key``: scoped to its token, known by its method, path and body."""
    print_ = idempotency.fingerprint(request.method, "/books/", request.body or b"")
    return idempotency.Once(scope=token, key=key, fingerprint=print_)


def _body(books: list[BookJSON]) -> bytes:
    """The JSON array of ``books``, from their JSON forms."""
    return b"[" + b",".join([book.json for book in books]) + b"]"


def _created(request: Request, bulk: bool, books: list[BookJSON]) -> idempotency.Outcome:
    """The answer to a create: the books (an array for a bulk create), or the one book
    with its ``Location`` and ``ETag``."""
    if bulk:
        return idempotency.Outcome(201, {}, _body(books))
    (book,) = books
    location = f"{base_url(request)}/books/{book.id}/"
    headers = {"Location": location, "ETag": etag(book.id, book.version)}
    return idempotency.Outcome(201, headers, book.json)


class MethodView(HTTPMethodView):
    """Sanic's class-based view, dispatched through a table made once.

    Sanic's own ``as_view`` makes an instance of the class for every request and looks
    its method up by name; the views here keep no state but the app's context (whose
    ``db`` is the open database's backend, set when the server starts), so one instance
    serves every request. ``view_class`` stays, so sanic-ext documents each method as its
    own operation.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    @classmethod
    def as_view(cls, *class_args: Any, **class_kwargs: Any) -> Any:
        instance = cls(*class_args, **class_kwargs)
        handlers = {
            method: getattr(instance, method.lower())
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            if hasattr(instance, method.lower())
        }

        def view(request: Request, **kwargs: Any) -> Any:
            return handlers[request.method](request, **kwargs)

        view.view_class = cls  # type: ignore[attr-defined]
        view.__doc__ = cls.__doc__
        view.__module__ = cls.__module__
        view.__name__ = cls.__name__
        return view


class BookList(MethodView):
    @describe(
        "listBooks",
        "List books",
        description=(
            "Paginated. Without `offset` or `cursor` the page has `count` and its `next` "
            "link carries a cursor; with `offset` the links go by offset. A bad parameter "
            "is a 400 whose body names it."
        ),
        parameters=(*oas.list_parameters(), oas.prefer(), oas.request_id()),
        responses={
            "200": oas.response(
                "A page of books.", oas.ref("schemas", "BookPage"), headers=oas.COUNT_HEADERS
            ),
            **oas.errors(400, 429, 500, unavailable="StatementTimeout"),
        },
    )
    async def get(self, request: Request) -> HTTPResponse:
        req = pagination.parse(
            request.args,
            fields=parse_fields(request.args),
            max_offset=self.ctx.settings.max_offset,
            prefer=request.headers.getall("prefer", None),
        )
        page = await self.ctx.db.list_books(req.query)
        results = orjson.Fragment(page.json)  # made by db/, in the fields asked for
        url = base_url(request) + request.path
        body = pagination.envelope(req, page, results, url, request.query_string)
        return json(body, headers=pagination.headers(req, page))

    async def head(self, request: Request) -> HTTPResponse:
        return await self.get(request)

    @describe(
        "createBooks",
        "Create a book, or up to 1000 at once",
        description=(
            "A JSON object creates one book; a JSON array of 1 to 1000 books creates them "
            "all or none (a rejected array's errors are keyed by item index). With "
            "`Idempotency-Key`, a retry is never applied twice: it gets the first answer."
        ),
        parameters=(oas.request_id(), oas.idempotency_key()),
        body=oas.body("BookCreate", "One book, or an array of up to 1000 books."),
        responses={
            "201": oas.response(
                "The created book (with `Location` and `ETag`), or for an array the "
                "created books in request order.",
                {"oneOf": [_BOOK, {"type": "array", "items": _BOOK}]},
                headers={
                    "Location": oas.text_header(
                        "The new book's URL (single create only).", required=False, format="uri"
                    ),
                    "ETag": {
                        **oas.HEADERS["ETag"],
                        "required": False,
                        "description": "The new book's ETag (single create only).",
                    },
                },
            ),
            **oas.errors(
                400, 401, 409, 413, 415, 422, 429, 500, 507, unavailable="StorageUnavailable"
            ),
        },
        secured=True,
    )
    async def post(self, request: Request) -> HTTPResponse:
        token, (bulk, items) = await write_input(request, lambda: _creations(request))
        key = idempotency_key(request)
        if key is None:
            created = _created(request, bulk, await self.ctx.db.create_books(items, token=token))
        else:
            created = await self.ctx.db.create_books_once(
                items,
                _once(request, token, key),
                lambda books: _created(request, bulk, books),
                token=token,
            )
        return json_bytes(created.body, status=created.status, headers=created.headers)

    async def options(self, request: Request) -> HTTPResponse:
        return _options("Book List", LIST_METHODS)


class BookDetail(MethodView):
    @describe(
        "retrieveBook",
        "Retrieve a book",
        parameters=(
            oas.book_id(),
            oas.request_id(),
            oas.header(
                "If-None-Match", "Optional: ETags the client holds; the current one answers 304."
            ),
        ),
        responses={
            "200": oas.response("The book.", _BOOK, headers=oas.ETAG),
            "304": oas.response(
                "`If-None-Match` matches the current ETag: no body.", headers=oas.ETAG
            ),
            **oas.errors(404, 429, 500),
        },
    )
    async def get(self, request: Request, book_id: int) -> HTTPResponse:
        book = await self.ctx.db.book_json(book_id)
        tag = etag(book_id, book.version)
        if _none_match(request, tag):
            return empty(status=304, headers={"ETag": tag})
        return json_bytes(book.json, headers={"ETag": tag})

    async def head(self, request: Request, book_id: int) -> HTTPResponse:
        return await self.get(request, book_id)

    async def _update(self, request: Request, book_id: int, *, partial: bool) -> HTTPResponse:
        token, changes = await write_input(  # a list body is a parse error here
            request,
            lambda: validate_book(parse_body(request.content_type, request.body), partial=partial),
        )
        versions = _if_match(request, book_id)
        book = await self.ctx.db.update_book(book_id, changes, if_versions=versions, token=token)
        return json_bytes(book.json, headers={"ETag": etag(book.id, book.version)})

    @describe(
        "updateBook",
        "Replace a book",
        description="A full update: every writable field is required.",
        parameters=(oas.book_id(), oas.request_id(), oas.if_match()),
        body=oas.body("BookInput", "Every writable field."),
        responses=_UPDATED,
        secured=True,
    )
    async def put(self, request: Request, book_id: int) -> HTTPResponse:
        return await self._update(request, book_id, partial=False)

    @describe(
        "partialUpdateBook",
        "Update some fields of a book",
        description="A partial update: only the fields present change.",
        parameters=(oas.book_id(), oas.request_id(), oas.if_match()),
        body=oas.body(
            "BookPatch",
            "Any subset of the writable fields; no body changes nothing.",
            required=False,
        ),
        responses=_UPDATED,
        secured=True,
    )
    async def patch(self, request: Request, book_id: int) -> HTTPResponse:
        return await self._update(request, book_id, partial=True)

    @describe(
        "destroyBook",
        "Delete a book",
        parameters=(oas.book_id(), oas.request_id(), oas.if_match()),
        responses={
            "204": oas.response("Deleted: no body."),
            **oas.errors(401, 404, 412, 429, 500, 507, unavailable="StorageUnavailable"),
        },
        secured=True,
    )
    async def delete(self, request: Request, book_id: int) -> HTTPResponse:
        token, _ = await write_input(request, lambda: None)
        versions = _if_match(request, book_id)
        await self.ctx.db.delete_book(book_id, if_versions=versions, token=token)
        return empty(status=204)

    async def options(self, request: Request, book_id: int) -> HTTPResponse:
        return _options("Book Instance", DETAIL_METHODS)


@describe(
    "apiRoot",
    "API root",
    description="As DRF's DefaultRouter: the absolute URL of the book list.",
    parameters=(oas.request_id(),),
    responses={
        "200": oas.response("Links to the resources.", oas.ref("schemas", "ApiRoot")),
        **oas.errors(429, 500),
    },
)
async def api_root(request: Request) -> HTTPResponse:
    if request.method == "OPTIONS":
        return _options("Api Root", ROOT_METHODS)
    return json({"books": f"{base_url(request)}/books/"})


def register(app: Any) -> None:
    # A blueprint per app: tests build many apps in one process.
    bp = Blueprint("books")
    # DRF's URLs end with a slash: documented so (api.openapi), answered with or without.
    bp.add_route(
        BookList.as_view(app.ctx),
        "/books",
        strict_slashes=False,
        name="list",
        ctx_trailing_slash=True,
    )
    bp.add_route(
        BookDetail.as_view(app.ctx),
        "/books/<book_id:int>",
        strict_slashes=False,
        name="detail",
        ctx_trailing_slash=True,
    )
    bp.add_route(api_root, "/", methods=list(ROOT_METHODS), name="root")
    app.blueprint(bp)
