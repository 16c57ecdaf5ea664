"""The ceiling: a bare Sanic app that answers every GET with one constant JSON body.

No database, no middleware, no validation: what Sanic itself costs per request with the
service's worker count and connection settings. Every scenario is reported as a ratio
to it, which keeps the figures comparable across machines and noisy runs.

    HOST=127.0.0.1 PORT=8001 WORKERS=1 python -m benchmarks.baselines.ceiling
"""

from __future__ import annotations

import gc
import os
from typing import Final

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

# The size and shape of a detail answer of the service.
BODY: Final = (
    b'{"id":4711,"title":"The Silent River","author":"Ada Okafor",'
    b'"published_date":"1987-06-05","price":"12.50"}'
)


async def constant(request: Request, path: str = "") -> HTTPResponse:
    return HTTPResponse(BODY, content_type="application/json")


async def _freeze_startup_objects(app: Sanic) -> None:
    gc.collect()
    gc.freeze()


def create_app() -> Sanic:
    app = Sanic("bookshelf_ceiling")
    # The service's connection settings (api.settings.Settings defaults).
    app.config.update(
        {
            "ACCESS_LOG": False,
            "KEEP_ALIVE_TIMEOUT": 5.0,
            "REQUEST_TIMEOUT": 30.0,
            "RESPONSE_TIMEOUT": 30.0,
            # Sanic extends every app with sanic-ext when it is installed (it is, for the
            # service): its dependency injection then answers a signal on every request.
            "AUTO_EXTEND": False,
        }
    )
    # The service's workers freeze their start-up objects out of the cycle collector
    # (api.app.freeze_startup_objects): so does the baseline, so that the ratios compare
    # request handling, not collector settings.
    app.after_server_start(_freeze_startup_objects)
    app.add_route(constant, "/", methods=["GET"], name="root")
    app.add_route(constant, "/<path:path>", methods=["GET"], name="any")
    return app


def main() -> None:
    loader = AppLoader(factory=create_app)
    app = loader.load()
    app.prepare(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8001")),
        workers=int(os.environ.get("WORKERS", "1")),
        access_log=False,
        motd=False,
    )
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
