"""The OpenAPI 3 document of every meshscope app, served at `/api/meshscope/openapi.json`.

Built from the route descriptions in api/openapi_routes.py; each path says which app serves
it through a path-level `servers` list: the host the document was asked from, with the ports
this server listens on (the defaults when built without them).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope import __version__
from meshscope.api.openapi_routes import DOCS, OPEN, OTLP, UI, ZIPKIN, Doc, access_of

SERVERS = {
    UI: "http://127.0.0.1:16686",
    OTLP: "http://127.0.0.1:4318",
    ZIPKIN: "http://127.0.0.1:9411",
}
_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "binary": {"type": "string", "format": "binary"},
}


def _operation(doc: Doc) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": f"{doc.method.lower()}{doc.path}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace(".", "_"),
        "tags": list(doc.apps),
        "responses": {
            "200": {"description": doc.response},
            "400": {"description": "bad parameters, with a message"},
        },
    }
    access = access_of(doc.method, doc.path)
    if OPEN in access:
        operation["security"] = []
    else:  # when `auth.enabled` (docs/security.md): a token holding one of these scopes
        operation["security"] = [{"bearer": []}, {"basic": []}]
        operation["x-meshscope-scopes"] = list(access)
        operation["responses"]["401"] = {"description": "no or invalid credentials (auth on)"}
        operation["responses"]["403"] = {"description": "the token lacks the scope (auth on)"}
    params = [
        {
            "name": param.name,
            "in": param.where,
            "required": param.required,
            "description": param.description,
            "schema": _TYPES[param.type],
        }
        for param in doc.params
        if param.where != "body"
    ]
    if params:
        operation["parameters"] = params
    body = [param for param in doc.params if param.where == "body"]
    if body:
        operation["requestBody"] = {
            "required": True,
            "description": body[0].description,
            "content": {"application/octet-stream": {"schema": _TYPES[body[0].type]}},
        }
    return operation


def openapi_document(servers: Mapping[str, str] = SERVERS) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for doc in DOCS:
        item = paths.setdefault(doc.path, {})
        item[doc.method.lower()] = _operation(doc)
        listed = item.setdefault("servers", [])
        for app in doc.apps:
            entry = {"url": servers[app], "description": app}
            if entry not in listed:
                listed.append(entry)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "meshscope",
            "version": __version__,
            "description": "Every HTTP route of meshscope's UI/query, OTLP/HTTP and Zipkin apps.",
        },
        "servers": [{"url": servers[UI], "description": UI}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            }
        },
    }


def openapi_routes(ports: Mapping[str, int] | None = None) -> list[Route]:
    """The document's route; `ports`: the OTLP/HTTP and Zipkin apps' ports (default ones
    without), beside the UI's, which is the one the document is asked from."""
    others = dict(ports or {OTLP: 4318, ZIPKIN: 9411})

    @lru_cache(maxsize=16)
    def document(scheme: str, host: str, ui: str) -> dict[str, Any]:
        servers = {app: f"{scheme}://{host}:{port}" for app, port in others.items()}
        return openapi_document({**servers, UI: ui})

    async def serve(request: Request) -> Response:
        url = request.url
        host = url.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return JSONResponse(document(url.scheme, host, str(request.base_url).rstrip("/")))

    return [Route("/api/meshscope/openapi.json", serve, methods=["GET"])]
