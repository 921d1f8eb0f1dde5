"""Zipkin v2 receiver: `POST /api/v2/spans` (port 9411), as Zipkin's own server answers.

JSON bodies (`application/json`, or no Content-Type, as Zipkin accepts) with optional gzip or
deflate Content-Encoding; 202 Accepted with an empty body once the spans are stored. Zipkin's
proto3 encoding is not decoded (415 says so). Failures are plain-text messages: 400 invalid
spans, 413 too large, 415 unsupported type or encoding, 429/503 with Retry-After.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.receiving import Refusal, receive_http
from meshscope.ingest.sink import IngestSink
from meshscope.ingest.zipkin import decode_zipkin_json

_JSON = "application/json"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})


def zipkin_routes(sink: IngestSink, limits: IngestLimits | None = None) -> list[Route]:
    """The Zipkin v2 span intake route, delivering to `sink`."""
    limits = limits or IngestLimits()

    async def spans(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media in _PROTOBUF_TYPES:
            return _refuse(Refusal(415, "Zipkin proto3 spans are not supported; send JSON"))
        if media not in ("", _JSON):
            message = f"unsupported Content-Type {content_type!r}; send {_JSON}"
            return _refuse(Refusal(415, message))
        outcome = await receive_http(request, sink, limits, decode_zipkin_json, "zipkin")
        if isinstance(outcome, Refusal):
            return _refuse(outcome)
        return Response(status_code=202)

    return [Route("/api/v2/spans", spans, methods=["POST"], name="zipkin_spans")]


def _refuse(refusal: Refusal) -> Response:
    headers = {}
    if refusal.retry_after_s is not None:
        headers["Retry-After"] = str(refusal.retry_after_s)
    return PlainTextResponse(refusal.message, refusal.status, headers=headers)
