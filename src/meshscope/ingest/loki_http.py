"""Loki push receiver: `POST /loki/api/v1/push`, answering as Loki does.

`application/json` bodies are Loki's JSON push format; any other Content-Type (Promtail,
Grafana Agent and Alloy send `application/x-protobuf`) is a snappy-compressed protobuf
`PushRequest`, like Loki's default. Content-Encoding gzip/deflate is undone first; `snappy`
means the body as it is, as in Loki. Success is 204 No Content; failures are plain-text
messages: 400 bad body, 413 too large, 415 unknown encoding, 429/503 with Retry-After when
the pipeline is overloaded or the store unavailable.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.loki import decode_loki_json, decode_loki_protobuf
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.receiving import Refusal, receive_http
from meshscope.ingest.sink import IngestSink

PUSH_PATH = "/loki/api/v1/push"
SNAPPY = frozenset(("snappy",))
"""`Content-Encoding: snappy` is the body as it is, as in Loki (its push parser; protobuf
bodies are snappy-compressed whatever the header says; some clients send it: loki#3407)."""


def loki_push_routes(sink: IngestSink, limits: IngestLimits | None = None) -> list[Route]:
    """The Loki push route, delivering to `sink` (mount it on the UI/API app, port 16686)."""
    limits = limits or IngestLimits()

    def decode_protobuf(body: bytes) -> Decoded:
        return decode_loki_protobuf(body, limits.max_body_bytes)

    async def push(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        decode = decode_loki_json if media == "application/json" else decode_protobuf
        outcome = await receive_http(request, sink, limits, decode, as_is=SNAPPY)
        if isinstance(outcome, Refusal):
            headers = {}
            if outcome.retry_after_s is not None:
                headers["Retry-After"] = str(outcome.retry_after_s)
            return PlainTextResponse(outcome.message, outcome.status, headers=headers)
        return Response(status_code=204)

    return [Route(PUSH_PATH, push, methods=["POST"], name="loki_push")]
