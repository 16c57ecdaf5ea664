"""The OpenAPI document lists the contract, and /docs works with no internet.

The document's truth against the live server is checked by schemathesis
(``.ci/schemathesis.sh``); here: that it says what the contract says, and that the
Swagger UI page only loads assets the server itself serves. The page as Chromium renders it
from the real server: tests/e2e/test_swagger_chromium.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from helpers import LIST_PARAMETERS
from sanic import Sanic

from api import Settings, create_app, openapi, swagger_ui
from tests.conftest import app_client, serving

# (path, method) -> statuses the contract requires the document to list.
REQUIRED_STATUSES = {
    ("/", "get"): {"200"},
    ("/books/", "get"): {"200", "400"},
    ("/books/", "post"): {"201", "400", "401", "409", "415", "422", "503"},
    ("/books/{book_id}/", "get"): {"200", "304", "404"},
    ("/books/{book_id}/", "put"): {"200", "400", "401", "404", "412", "415"},
    ("/books/{book_id}/", "patch"): {"200", "400", "401", "404", "412", "415"},
    ("/books/{book_id}/", "delete"): {"204", "401", "404", "412"},
    ("/healthz", "get"): {"200"},
    ("/readyz", "get"): {"200", "503"},
    ("/metrics", "get"): {"200"},
}
WRITES = {
    ("/books/", "post"),
    ("/books/{book_id}/", "put"),
    ("/books/{book_id}/", "patch"),
    ("/books/{book_id}/", "delete"),
}


@pytest.fixture
async def app(app: Sanic) -> Sanic:
    # Until api/app.py calls it (then this second call does nothing).
    openapi.register(app)
    return app


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    return response.json()


def _resolve(spec: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj:
        node: Any = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def _params(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == where}


async def test_document_has_a_title_and_one_path_per_route(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "bookshelf"
    assert spec["info"]["version"]
    assert set(spec["paths"]) == {path for path, _ in REQUIRED_STATUSES}
    for path, ops in spec["paths"].items():
        assert not {"head", "options", "trace"} & set(ops), path


async def test_every_operation_lists_the_contract_statuses(spec: dict[str, Any]) -> None:
    operation_ids = []
    for (path, method), statuses in REQUIRED_STATUSES.items():
        op = spec["paths"][path][method]
        operation_ids.append(op["operationId"])
        assert statuses <= set(op["responses"]), (path, method, sorted(op["responses"]))
        for status, response in op["responses"].items():
            response = _resolve(spec, response)
            assert "X-Request-ID" in response["headers"], (path, method, status)
            if status not in ("204", "304") and path != "/metrics":
                assert "application/json" in response["content"], (path, method, status)
        if path.startswith("/books") or path == "/":
            assert "429" in op["responses"], (path, method)
        if (path, method) in WRITES:
            assert {"413", "415"} & set(op["responses"]) or method == "delete"
            assert {"TokenAuth", "BearerAuth"} == {k for s in op["security"] for k in s}
        else:
            assert not op.get("security"), (path, method)
    assert len(set(operation_ids)) == len(operation_ids)
    # An operation no handler describes (api.openapi.describe) has sanic-ext's made-up id.
    assert not [i for i in operation_ids if "~" in i], operation_ids
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


async def test_list_parameters_and_conditional_headers(spec: dict[str, Any]) -> None:
    listing = spec["paths"]["/books/"]["get"]
    assert set(_params(listing, "query")) == set(LIST_PARAMETERS)
    limit = _params(listing, "query")["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)
    detail = spec["paths"]["/books/{book_id}/"]
    for method in ("get", "put", "patch", "delete"):
        assert _params(detail[method], "path")["book_id"]["required"] is True
        assert "X-Request-ID" in _params(detail[method], "header")
    assert "If-None-Match" in _params(detail["get"], "header")
    for method in ("put", "patch", "delete"):
        assert "If-Match" in _params(detail[method], "header")
    for method in ("get", "put", "patch"):
        assert "ETag" in _resolve(spec, detail[method]["responses"]["200"])["headers"]
    created = spec["paths"]["/books/"]["post"]["responses"]["201"]
    assert {"Location", "ETag"} <= set(created["headers"])


async def test_bodies_and_schemas(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    book = schemas["Book"]
    assert set(book["required"]) == {"id", "title", "author", "published_date", "price"}
    price = re.compile(book["properties"]["price"]["pattern"])
    assert price.match("12.50") and price.match("0.00") and price.match("999.99")
    assert not price.match("12.5") and not price.match("1000.00")
    page = schemas["BookPage"]["properties"]
    assert {"count", "next", "previous", "results"} == set(page)
    post = spec["paths"]["/books/"]["post"]["requestBody"]["content"]["application/json"]
    one, many = _resolve(spec, post["schema"])["oneOf"]
    assert one == {"$ref": "#/components/schemas/BookInput"}
    assert (many["type"], many["maxItems"]) == ("array", 1000)
    put = spec["paths"]["/books/{book_id}/"]["put"]["requestBody"]
    patch = spec["paths"]["/books/{book_id}/"]["patch"]["requestBody"]
    assert _resolve(spec, put["content"]["application/json"]["schema"])["required"]
    assert "required" not in _resolve(spec, patch["content"]["application/json"]["schema"])
    errors = spec["components"]["responses"]
    assert _resolve(spec, errors["BadRequest"]["content"]["application/json"]["schema"]) == {
        "anyOf": [
            {"$ref": "#/components/schemas/Detail"},
            {"$ref": "#/components/schemas/FieldErrors"},
        ]
    }
    assert "WWW-Authenticate" in errors["Unauthorized"]["headers"]
    assert "Retry-After" in errors["Throttled"]["headers"]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["TokenAuth"] == {
        **schemes["TokenAuth"],
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }
    assert schemes["BearerAuth"]["scheme"] == "bearer"


async def test_an_earlier_app_s_routes_stay_out_of_a_later_app_s_document(
    settings: Settings,
) -> None:
    """sanic-ext keeps one document per process: each app starts it afresh."""
    earlier = create_app(settings, name="bookshelf_openapi_earlier")

    @earlier.get("/earlier")
    async def only_here(request: Any) -> Any:
        raise NotImplementedError

    try:
        async with serving(earlier) as c:
            assert "/earlier" in (await c.get("/docs/openapi.json")).json()["paths"]
    finally:
        Sanic.unregister_app(earlier)
    async with app_client(settings) as c:
        paths = (await c.get("/docs/openapi.json")).json()["paths"]
    assert set(paths) == {path for path, _ in REQUIRED_STATUSES}


def _page_urls(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)


@pytest.mark.parametrize("path", ["/docs", "/docs/", "/docs/swagger"])
async def test_docs_page_loads_only_local_assets(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+", page, re.I), "no other hosts"
    urls = _page_urls(page)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls)
    assert "/docs/openapi.json" in page
    for url in urls:
        assert url.startswith("/docs/assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


async def test_oauth2_redirect_page_is_local(client: httpx.AsyncClient) -> None:
    # sanic-ext's own handler fetches this page from a CDN on every request.
    response = await client.get("/docs/oauth2-redirect.html")
    assert response.status_code == 200
    assert "swaggerUIRedirectOauth2" in response.text


async def test_register_is_idempotent(app: Sanic, spec: dict[str, Any]) -> None:
    openapi.register(app)  # a second call adds no routes and no listeners
    listing = spec["paths"]["/books/"]["get"]
    names = [p["name"] for p in listing["parameters"]]
    assert len(names) == len(set(names))


def test_create_app_registers_the_document(settings: Settings) -> None:
    app = create_app(settings, name="bookshelf_openapi_wiring")
    try:
        assert getattr(app.ctx, "openapi_registered", False)
    finally:
        Sanic.unregister_app(app)


async def test_assets_are_the_installed_swagger_ui() -> None:
    assert (swagger_ui.swagger_ui_dir() / "swagger-ui-bundle.js").is_file()


async def test_counts_storage_faults_and_request_heads_are_documented(
    spec: dict[str, Any], settings: Settings
) -> None:
    listing = spec["paths"]["/books/"]["get"]
    ok = _resolve(spec, listing["responses"]["200"])
    assert {"X-Count-Kind", "Preference-Applied", "Vary"} <= set(ok["headers"])
    kind = _resolve(spec, ok["headers"]["X-Count-Kind"])
    assert (kind["schema"]["enum"], kind["required"]) == (["exact", "estimated"], False)
    prefer = _params(listing, "header")["Prefer"]
    assert "count=none" in prefer["description"] and not prefer["required"]
    assert "count" not in spec["components"]["schemas"]["BookPage"]["required"]
    offset = _params(listing, "query")["offset"]
    assert offset["schema"]["maximum"] == settings.max_offset
    assert "MAX_OFFSET" in offset["description"]
    assert "Retry-After" in _resolve(spec, listing["responses"]["503"])["headers"]
    for path, method in WRITES:
        responses = spec["paths"][path][method]["responses"]
        for status in ("503", "507"):
            assert "Retry-After" in _resolve(spec, responses[status])["headers"], (path, status)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status in ("400", "431"):
                content = _resolve(spec, op["responses"][status])["content"]
                assert "application/json" in content, (path, method, status)


async def test_idempotency_key_is_documented(spec: dict[str, Any]) -> None:
    create = spec["paths"]["/books/"]["post"]
    key = _params(create, "header")["Idempotency-Key"]
    assert not key["required"]
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert re.fullmatch(key["schema"]["pattern"], "abc-123_~!")
    assert "24 h" in key["description"]
    responses = create["responses"]
    assert "Retry-After" in _resolve(spec, responses["409"])["headers"]
    assert "different request" in _resolve(spec, responses["422"])["description"]
    assert "may have been stored" in _resolve(spec, responses["503"])["description"]


async def test_offset_maximum_is_the_apps_max_offset(settings: Settings) -> None:
    import dataclasses

    async with app_client(dataclasses.replace(settings, max_offset=500)) as client:
        other = (await client.get("/docs/openapi.json")).json()
    assert _params(other["paths"]["/books/"]["get"], "query")["offset"]["schema"]["maximum"] == 500
