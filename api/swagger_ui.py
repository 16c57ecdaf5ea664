"""Swagger UI at ``/docs``, served from the installed ``swagger-ui-bundle`` package.

sanic-ext's own page loads Swagger UI from a public CDN (and fetches its OAuth2 redirect
page from one on every request): a blank page in a private network. With sanic-ext's UI
turned off (``OAS_UI_SWAGGER = False``), :func:`register` answers the same routes of its
docs blueprint (``/docs``, ``/docs/swagger``, ``/docs/oauth2-redirect.html``,
``/docs/swagger-config``) from local files, and the assets under ``/docs/assets/``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Final

from sanic import Request, Sanic
from sanic.response import HTTPResponse, file
from sanic.response import html as html_response
from sanic.response import json as json_response

ASSETS_URI: Final = "/assets"  # under OAS_URL_PREFIX, i.e. /docs/assets


def swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


_PAGE: Final = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
<style>body {{ margin: 0; background: #fafafa; }}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="{assets}/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{spec_url}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    validatorUrl: null,
    oauth2RedirectUrl: window.location.origin + "{oauth2}",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  }});
}};
</script>
</body>
</html>
"""


def _docs_urls(app: Sanic) -> dict[str, str]:
    config = app.config
    prefix = getattr(config, "OAS_URL_PREFIX", "/docs").rstrip("/")
    return {
        "prefix": prefix,
        "assets": prefix + ASSETS_URI,
        "spec_url": prefix + "/" + getattr(config, "OAS_URI_TO_JSON", "/openapi.json").lstrip("/"),
        "oauth2": prefix
        + "/"
        + getattr(config, "OAS_UI_SWAGGER_OAUTH2_REDIRECT", "/oauth2-redirect.html").lstrip("/"),
    }


def register(app: Sanic, title: str) -> None:
    """Serve the UI, titled ``title``, in sanic-ext's docs blueprint (its routes keep their
    names: sanic-ext's start-up banner links ``openapi.index``)."""
    config = app.config
    assets = swagger_ui_dir()
    urls = _docs_urls(app)
    page = _PAGE.format(
        title=html.escape(title),
        assets=urls["assets"],
        spec_url=urls["spec_url"],
        oauth2=urls["oauth2"],
    )

    async def swagger_page(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        return html_response(page)

    async def oauth2_redirect(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        return await file(assets / "oauth2-redirect.html", mime_type="text/html")

    async def openapi_config(request: Request) -> HTTPResponse:
        return json_response(request.app.config.SWAGGER_UI_CONFIGURATION)

    bp = app.blueprints["openapi"]
    bp.add_route(swagger_page, config.OAS_URI_TO_SWAGGER, name="swagger")
    bp.add_route(swagger_page, "", name="index")
    bp.add_route(oauth2_redirect, config.OAS_UI_SWAGGER_OAUTH2_REDIRECT, name="oauth2-redirect")
    bp.add_route(openapi_config, config.OAS_URI_TO_CONFIG, name="openapi_config")
    app.static(urls["assets"], assets, name="swagger_ui_assets")
