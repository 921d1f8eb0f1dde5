"""Prometheus remote write receiver: `POST /api/v1/write`, answered as Prometheus answers.

Accepts remote write 1.0 (`X-Prometheus-Remote-Write-Version: 0.1.0`): a snappy (block
format) compressed `prometheus.WriteRequest`, `Content-Type: application/x-protobuf`.
Like Prometheus' receiver it also takes a request with no Content-Type or Content-Encoding
header. Answers: 204 once stored; plain-text errors: 400 invalid snappy/protobuf or rejected
series (the valid ones are stored), 413 too large, 415 another content type, encoding or
protocol version (remote write 2.0 is not implemented: the message says to send 1.0), 503 with
Retry-After when the pipeline is overloaded or the store unavailable: 503 rather than 429,
because Prometheus retries every 5xx but drops a batch answered 429 unless its
`retry_on_http_429` option is set (off by default).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshscope.ingest.body import BodyError, BodyTooLargeError, read_body
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.receiving import COMPRESSION_RATIO_GUESS, Refusal, run_decoder
from meshscope.ingest.remote_write import RemoteWriteDecoder
from meshscope.ingest.sink import IngestSink, OverloadedError, UnavailableError
from meshscope.limits.admission import admit_batch, admit_bytes
from meshscope.limits.limiter import RateLimitedError

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
V1_PROTO = "prometheus.WriteRequest"
V2_PROTO = "io.prometheus.write.v2.Request"
SUPPORTED = f"remote write 1.0 ({PROTOBUF}; proto={V1_PROTO}, Content-Encoding: snappy)"


def remote_write_routes(
    sink: IngestSink,
    limits: IngestLimits | None = None,
    decoder: RemoteWriteDecoder | None = None,
) -> list[Route]:
    """The remote write route, delivering to `sink` (mount it on the query/UI app)."""
    limits = limits or IngestLimits()
    decoder = decoder or RemoteWriteDecoder()

    async def write(request: Request) -> Response:
        refusal = check_headers(request)
        if refusal is None:
            outcome = await receive(request, sink, limits, decoder)
            if isinstance(outcome, Refusal):
                refusal = outcome
            elif outcome.rejected:
                refusal = Refusal(400, outcome.error_message)
        if refusal is None:
            return Response(status_code=204)
        headers = {}
        if refusal.retry_after_s is not None:
            headers["Retry-After"] = str(refusal.retry_after_s)
        return PlainTextResponse(refusal.message + "\n", refusal.status, headers=headers)

    return [Route("/api/v1/write", write, methods=["POST"], name="prometheus_remote_write")]


def check_headers(request: Request) -> Refusal | None:
    """A 415 Refusal when the request is not remote write 1.0, else None."""
    version = request.headers.get("x-prometheus-remote-write-version", "0.1.0").strip()
    content_type = request.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    proto = _param(params, "proto")
    if version.startswith("2.") or proto == V2_PROTO:
        return Refusal(415, f"remote write 2.0 is not supported; send {SUPPORTED}")
    if media.strip().lower() not in ("", PROTOBUF) or proto not in ("", V1_PROTO):
        return Refusal(415, f"unsupported Content-Type {content_type!r}; send {SUPPORTED}")
    encoding = request.headers.get("content-encoding", "snappy").strip().lower()
    if encoding != "snappy":
        return Refusal(415, f"unsupported Content-Encoding {encoding!r}; send {SUPPORTED}")
    return None


def _param(params: str, name: str) -> str:
    for part in params.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


async def receive(
    request: Request, sink: IngestSink, limits: IngestLimits, decoder: RemoteWriteDecoder
) -> Decoded | Refusal:
    """Read, decode and submit one body; never raises (unexpected errors are a logged 500)."""
    try:
        raw = await read_body(request, limits)
        admit_bytes(len(raw))

        def work() -> Decoded:
            return decoder.decode(raw, limits.max_body_bytes)

        decoded = await run_decoder(work, len(raw) * COMPRESSION_RATIO_GUESS, limits)
        if len(decoded.batch):
            admit_batch(decoded.batch)
            await sink.submit(decoded.batch)
    except BodyError as error:
        return Refusal(error.status, error.message)
    except BodyTooLargeError as error:
        return Refusal(413, error.message)
    except DecodeError as error:
        return Refusal(400, error.message)
    except RateLimitedError as error:
        # 429 like Mimir's rate limits: Prometheus retries it only with `retry_on_http_429`.
        return Refusal(429, str(error), error.retry_after_s)
    except OverloadedError as error:
        # 503, not 429: Prometheus drops a batch answered 429 unless `retry_on_http_429` is
        # set (off by default), but always retries 5xx, honouring Retry-After.
        return Refusal(503, f"overloaded, retry later: {error}", max(error.retry_after_s, 0))
    except UnavailableError as error:
        message = f"storage unavailable, {error.outcome}: {error}"
        return Refusal(503, message, limits.unavailable_retry_after_s)
    except Exception as error:
        logger.exception("unexpected error receiving remote write")
        return Refusal(500, f"internal error: {type(error).__name__}")
    return decoded
