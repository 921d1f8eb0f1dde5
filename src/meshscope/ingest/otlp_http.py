"""OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics` and `/v1/logs` (port 4318).

Follows the OTLP/HTTP spec: `application/x-protobuf` or `application/json` bodies (415
otherwise), gzip/deflate Content-Encoding, 20 MiB after decompression (413), and answers in
the request's own content type: 200 with an empty `Export*ServiceResponse` on full success,
with `partial_success` when the decoder rejected some items, and a `google.rpc.Status` body
for failures (400 never to be retried; 429/503 with Retry-After may be).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp import Decoded, Signal
from meshscope.ingest.receiving import OtlpDecoders, Refusal, export_message, receive_http
from meshscope.ingest.sink import IngestSink

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")

_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def otlp_http_routes(
    sink: IngestSink, limits: IngestLimits | None = None, decoders: OtlpDecoders | None = None
) -> list[Route]:
    """The three OTLP/HTTP export routes, delivering to `sink`.

    `decoders` carries the delta-to-cumulative state for metrics: pass the one given to the
    gRPC receiver so both transports share it (a new one is made when omitted).
    """
    limits = limits or IngestLimits()
    decoders = decoders or OtlpDecoders()
    return [
        Route(
            f"/v1/{signal}",
            _endpoint(signal, sink, limits, decoders),
            methods=["POST"],
            name=f"otlp_{signal}",
        )
        for signal in SIGNALS
    ]


def media_kind(content_type: str | None) -> str | None:
    """`"json"`, `"protobuf"`, or None for any other Content-Type (parameters ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON:
        return "json"
    return "protobuf" if media in _PROTOBUF_TYPES else None


def _endpoint(
    signal: Signal, sink: IngestSink, limits: IngestLimits, decoders: OtlpDecoders
) -> Callable[[Request], Awaitable[Response]]:
    async def export(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        kind = media_kind(content_type)
        if kind is None:
            message = f"unsupported Content-Type {content_type!r}; send {PROTOBUF} or {JSON}"
            return status_response(Refusal(415, message), as_json=True)
        as_json = kind == "json"

        def decode(body: bytes) -> Decoded:
            return decoders.decode_body(signal, body, json=as_json)

        outcome = await receive_http(request, sink, limits, decode, signal, as_json)
        if isinstance(outcome, Refusal):
            return status_response(outcome, as_json=as_json)
        return export_response(signal, outcome, as_json=as_json)

    return export


def export_response(signal: Signal, decoded: Decoded, *, as_json: bool) -> Response:
    """200 with the signal's `Export*ServiceResponse`, `partial_success` set if any rejected."""
    return _message_response(export_message(signal, decoded), 200, as_json=as_json)


def status_response(refusal: Refusal, *, as_json: bool) -> Response:
    """A failure answer: `google.rpc.Status` in the request's content type (+ Retry-After)."""
    code = _RPC_CODES.get(refusal.status, code_pb2.INTERNAL)
    response = _message_response(
        status_pb2.Status(code=code, message=refusal.message), refusal.status, as_json=as_json
    )
    if refusal.retry_after_s is not None:
        response.headers["Retry-After"] = str(refusal.retry_after_s)
    return response


def _message_response(message: Message, status: int, *, as_json: bool) -> Response:
    if as_json:
        body = orjson.dumps(json_format.MessageToDict(message))
        return Response(body, status, media_type=JSON)
    return Response(message.SerializeToString(), status, media_type=PROTOBUF)
