"""The OpenAPI document (``/docs/openapi.json``) and its Swagger UI (``/docs``).

sanic-ext discovers the routes and builds the document. Each handler says what its
operation takes and answers with :func:`describe`, beside its code; the parts operations
share (schemas, error responses, headers, parameters) are in :mod:`api.schemas`, and the
offline Swagger UI in :mod:`api.swagger_ui`.

A route that takes an optional trailing slash is documented under one spelling: with the
slash when it is registered with ``ctx_trailing_slash=True`` (DRF's router's URLs),
else without.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, Final, TypeVar

from sanic import Sanic
from sanic_ext.extensions.openapi.builders import OperationStore, SpecificationBuilder
from sanic_ext.extensions.openapi.definitions import Parameter

from api import swagger_ui
from api.schemas import COMPONENTS, SECURITY

TITLE: Final = "bookshelf"

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

TAGS: Final = {
    "books": "The Book resource: DRF's ModelViewSet behind a DefaultRouter.",
    "operations": "Liveness, readiness and Prometheus metrics.",
}

Handler = TypeVar("Handler", bound=Callable[..., Any])
# A parameter that depends on the app's settings, made for each app's document.
PerApp = Callable[[Sanic], Parameter]
# (operation, index in its parameters, maker) of every such parameter.
_PER_APP: list[tuple[Any, int, PerApp]] = []


def describe(
    operation_id: str,
    summary: str,
    *,
    responses: dict[str, Any],
    description: str = "",
    tag: str = "books",
    parameters: Iterable[Parameter | PerApp] = (),
    body: dict[str, Any] | None = None,
    secured: bool = False,
) -> Callable[[Handler], Handler]:
    """The OpenAPI operation of the handler (or view method) it decorates.

    Feeds sanic-ext's operation store, as its own ``openapi.*`` decorators do. Parameters,
    body and responses are OpenAPI objects as written (``api.schemas`` builds them):
    sanic-ext's ``openapi.response`` and ``openapi.parameter`` would turn a ``$ref`` or a
    plain JSON schema into a model of their own. A parameter given as a function of the
    app is made for each app's document, from its settings. The handler's docstring stays
    out of the document.
    """

    def decorate(handler: Handler) -> Handler:
        operation = OperationStore()[handler]
        operation.disable_autodoc()
        operation.name(operation_id)
        operation.describe(summary=summary, description=description)
        operation.tag(tag)
        operation.parameters = []
        for index, parameter in enumerate(parameters):
            if isinstance(parameter, Parameter):
                operation.parameters.append(parameter)
            else:
                operation.parameters.append(None)  # made by _start_document
                _PER_APP.append((operation, index, parameter))
        if body is not None:
            operation.requestBody = body  # type: ignore[assignment]
        operation.responses = responses
        if secured:
            for requirement in SECURITY:
                operation.secured(requirement)
        return handler

    return decorate


def _version() -> str:
    try:
        return metadata.version("bookshelf")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _documented_path(route: Any) -> str:
    """A route's path as sanic-ext spells it in the document (``/books/{book_id}``)."""
    path = "/" + re.sub(r"<([^:>]+)[^>]*>", r"{\1}", route.path)
    if getattr(route.ctx, "trailing_slash", False) and not path.endswith("/"):
        path += "/"
    return path


def _drop_slash_twins(app: Sanic) -> None:
    """After sanic-ext built the document: each route under one path.

    sanic-ext lists a route that takes an optional trailing slash under both spellings
    (``API_URI_FILTER = "all"``), or under one spelling for every route of the app; DRF's
    routes end with a slash and the operations routes do not. sanic-ext has no public way
    to leave one path out, so the twin is deleted from its specification's path table:
    the one use of sanic-ext's private state here.
    """
    paths = SpecificationBuilder()._paths
    for route in app.router.routes:
        path = _documented_path(route)
        if route.strict or path == "/" or path not in paths:
            continue
        paths.pop(path[:-1] if path.endswith("/") else path + "/", None)


def _start_document(app: Sanic) -> None:
    """Before sanic-ext builds the document: a new one, with the parts operations share.

    sanic-ext keeps one document per process; starting afresh keeps the routes of an app
    built earlier in this process (tests) out of this one's. ``app.ext.openapi`` still
    names the old one: ``SpecificationBuilder()`` is the current document.
    """
    SpecificationBuilder.reset()
    spec = SpecificationBuilder()
    spec.describe(TITLE, _version(), DESCRIPTION)
    for name, text in TAGS.items():
        spec.tag(name, text)
    for kind, items in COMPONENTS.items():
        for name, value in items.items():
            spec.add_component(kind, name, value)
    for operation, index, make in _PER_APP:
        operation.parameters[index] = make(app)


def register(app: Sanic) -> None:
    """Describe the API in ``/docs/openapi.json`` and serve ``/docs`` offline.

    Call after ``Extend(app)``, with sanic-ext's own Swagger UI off (``OAS_UI_SWAGGER =
    False``). Routes registered later (before the server starts) are in the document too.
    """
    if getattr(app.ctx, "openapi_registered", False) or not getattr(app.config, "OAS", True):
        return
    app.ctx.openapi_registered = True
    # Keep both /books and /books/ while building; _drop_slash_twins keeps the documented one.
    app.config.API_URI_FILTER = "all"
    app.config.SWAGGER_UI_CONFIGURATION = {"docExpansion": "list", "validatorUrl": None}
    swagger_ui.register(app, f"{TITLE} API")
    # sanic-ext builds the document in a before_server_start listener of priority -1000:
    # higher priorities run first.
    app.before_server_start(_start_document, priority=0)
    app.before_server_start(_drop_slash_twins, priority=-2000)
