"""Routes of the web UI on the UI port: the single page at `/` and its assets under `/ui/`.

The page is plain ES modules over meshscope's read APIs (no build step); third-party
libraries are vendored under `static/vendor/` (see its README). A Content-Security-Policy
allows scripts from this origin only, a second line of defence behind the UI's escaping.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles

from meshscope.api.log_search import log_search_routes
from meshscope.store.base import Storage

STATIC = Path(__file__).parent / "static"
ASSET_PREFIX = "/ui/"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def asset_routes(directory: Path = STATIC) -> list[Route]:
    """`GET /` (the page) and `GET /ui/{path}` (its scripts, styles, vendored libraries)."""
    files = StaticFiles(directory=directory)

    async def index(request: Request) -> Response:
        response = FileResponse(directory / "index.html", media_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def asset(request: Request) -> Response:
        path = request.path_params["path"]
        if not path or path.startswith(".") or "/." in path:
            return PlainTextResponse("not found", status_code=404)
        response = await files.get_response(path, request.scope)
        response.headers.update(SECURITY_HEADERS)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "no-cache"
        return response

    return [
        Route("/", index, methods=["GET"]),
        Route(ASSET_PREFIX + "{path:path}", asset, methods=["GET"]),
    ]


def ui_routes(storage: Storage) -> list[BaseRoute]:
    """Everything the UI needs beyond the query APIs: its assets and the logs search API."""
    return [*asset_routes(), *log_search_routes(storage)]
