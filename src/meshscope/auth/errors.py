"""Refusals (401, 403) in the envelope of the API a route belongs to.

Each API's clients read errors their own way: Prometheus clients (Grafana) the
`{"status": "error", "errorType", "error"}` body, Jaeger's UI `errors[].msg`, meshscope's UI
`error`, OTLP exporters a `google.rpc.Status` in the request's content type, and Zipkin,
Tempo, Loki, remote write and the rest plain text. The envelope is chosen once per route,
when routes are guarded, from the path and the app serving it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Scope

from meshscope.api.envelope import jaeger_error
from meshscope.ingest.otlp_http import media_kind, status_response
from meshscope.ingest.receiving import Refusal

Refuse = Callable[[int, str, Scope], Response]
"""(status, message, ASGI scope of the request) -> the answer, without WWW-Authenticate."""

_PROMETHEUS_TYPES = {400: "bad_data", 401: "unauthorized", 403: "forbidden"}


def _prometheus(status: int, message: str, scope: Scope) -> Response:
    body = {"status": "error", "errorType": _PROMETHEUS_TYPES[status], "error": message}
    return JSONResponse(body, status_code=status)


def _jaeger(status: int, message: str, scope: Scope) -> Response:
    return jaeger_error(status, message)


def _meshscope(status: int, message: str, scope: Scope) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _otlp(status: int, message: str, scope: Scope) -> Response:
    # Answer in the request's content type, as the receiver does (protobuf unless JSON).
    as_json = media_kind(Headers(scope=scope).get("content-type")) == "json"
    return status_response(Refusal(status, message), as_json=as_json)


def _text(status: int, message: str, scope: Scope) -> Response:
    return PlainTextResponse(message, status_code=status)


_PLAIN_PREFIXES = ("/api/v1/write", "/api/sampling", "/tempo/", "/loki/", "/metrics", "/ui/")


def refusal_for(app: str, path: str) -> Refuse:
    """The envelope of route `path` (its template) in `app` (`ui`, `otlp_http`, `zipkin`)."""
    if app == "otlp_http" and path.startswith("/v1/"):
        return _otlp
    if app == "zipkin" or path == "/sampling" or path.startswith(_PLAIN_PREFIXES):
        return _text
    if path.startswith(("/api/v1/", "/prometheus/api/v1/")):  # and the Loki ruler's
        return _prometheus
    if path.startswith("/api/meshscope/"):
        return _meshscope
    if path.startswith("/api/"):
        return _jaeger
    return _text
