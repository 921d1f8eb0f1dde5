"""What every receiver does between the wire and the sink, whatever its transport.

- decode off the event loop when the request is large (`run_decoder`), inline when small;
- decode OTLP safely from several threads at once (`OtlpDecoders`, which owns the process's
  `DeltaToCumulative`: pass the same instance to the HTTP and gRPC receivers), and build the
  OTLP export responses (`export_message`);
- for HTTP: read, decompress, decode and submit one request, turning every failure into a
  `Refusal` (an HTTP status and a message) that the route formats its own way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import Request

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.ingest.body import BodyError, content_encoding, decompress, read_body
from meshscope.ingest.delta import Change, DeltaToCumulative
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp import Decoded, Signal, decode_otlp
from meshscope.ingest.sink import (
    BodyKind,
    IngestSink,
    OverloadedError,
    UnavailableError,
    is_body_kind,
    takes_encoded,
)
from meshscope.limits.admission import admit_batch, admit_bytes
from meshscope.limits.limiter import RateLimitedError
from meshscope.tenancy.context import write_tenant

logger = logging.getLogger(__name__)

T = TypeVar("T")

COMPRESSION_RATIO_GUESS = 8
"""How much larger than its compressed size a body is assumed to be, to decide offloading."""


async def run_decoder(work: Callable[[], T], size: int, limits: IngestLimits) -> T:
    """Run `work` in a worker thread when `size` bytes is large, else right here."""
    if size >= limits.offload_bytes:
        return await asyncio.to_thread(work)
    return work()


class OtlpDecoders:
    """The OTLP decoders, safe to call from several threads (the delta state is locked).
    Each tenant's delta sums and histograms have running totals of their own."""

    def __init__(self, delta: DeltaToCumulative | None = None) -> None:
        self.delta = delta if delta is not None else DeltaToCumulative()
        self._tenants: dict[str, DeltaToCumulative] = {DEFAULT_TENANT: self.delta}
        self._lock = threading.Lock()

    def decode_body(self, signal: Signal, body: bytes, *, json: bool) -> Decoded:
        """Decode an encoded request body; raises DecodeError. A metrics request's deltas
        are in its tenant's running totals from here on; `Decoded.refused` takes them out."""
        if signal != "metrics":
            return decode_otlp(signal, body, json=json)
        tenant = write_tenant()
        with self._lock:
            delta = self._tenants.get(tenant)
            if delta is None:
                delta = self._tenants[tenant] = DeltaToCumulative(self.delta.max_series)
            with delta.recording() as changes:
                decoded = decode_otlp(signal, body, json=json, delta=delta)
        if changes:
            decoded.undo = partial(self._undo, delta, changes)
        return decoded

    def _undo(self, delta: DeltaToCumulative, changes: list[Change]) -> None:
        with self._lock:
            delta.undo(changes)


async def submit_decoded(decoded: Decoded, sink: IngestSink) -> None:
    """Admit and submit a decoded request's batch (durable when this returns); when it is
    refused, what decoding it changed is undone (`Decoded.refused`) before the error goes on."""
    if not len(decoded.batch):
        return
    try:
        admit_batch(decoded.batch)
        await sink.submit(decoded.batch)
    except Exception:  # not stored (a client gone, CancelledError, may still be committed)
        decoded.refused()
        raise


_RESPONSES: dict[Signal, tuple[Callable[..., Message], str]] = {
    "traces": (ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (ExportLogsServiceResponse, "rejected_log_records"),
}


def export_message(signal: Signal, decoded: Decoded) -> Message:
    """The signal's `Export*ServiceResponse`: empty, or with `partial_success` if any rejected."""
    factory, rejected_field = _RESPONSES[signal]
    if decoded.rejected or decoded.error_message:
        partial = {rejected_field: decoded.rejected, "error_message": decoded.error_message}
        return factory(partial_success=partial)
    return factory()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not (fully) taken: the HTTP status to answer and a message."""

    status: int
    message: str
    retry_after_s: int | None = None


async def receive_http(
    request: Request,
    sink: IngestSink,
    limits: IngestLimits,
    decode: Callable[[bytes], Decoded],
    kind: Signal | BodyKind | None = None,
    json: bool = False,
    as_is: frozenset[str] = frozenset(),
) -> Decoded | Refusal:
    """Read, decompress, decode (with `decode`) and submit one request's body. `as_is`:
    Content-Encoding values this route takes as "the body as it is" (Loki: `snappy`).

    Returns the Decoded (its batch now durable) or a Refusal: 400 undecodable, 413 too large,
    415 unknown encoding, 429 overloaded, 503 store unavailable, 500 anything unexpected
    (logged). Never raises, so the server keeps serving whatever one request does.
    With an EncodedSink and a body `kind` it takes, the sink decodes (`decode` unused).
    """

    async def take(raw: bytes, encoding: str) -> Decoded:
        if is_body_kind(kind) and takes_encoded(sink):
            return await sink.submit_encoded(kind, raw, encoding, json=json)
        size = len(raw) if encoding == "identity" else len(raw) * COMPRESSION_RATIO_GUESS

        def work() -> Decoded:
            return decode(decompress(raw, encoding, limits.max_body_bytes))

        decoded = await run_decoder(work, size, limits)
        await submit_decoded(decoded, sink)
        return decoded

    return await receive_with(request, limits, take, as_is)


async def receive_with(
    request: Request,
    limits: IngestLimits,
    take: Callable[[bytes, str], Awaitable[Decoded]],
    as_is: frozenset[str] = frozenset(),
) -> Decoded | Refusal:
    """`receive_http` with the body's handling given: `take(raw, encoding)` decodes and
    commits the body as read (still compressed: `encoding` says how). The same refusals."""
    try:
        header = request.headers.get("content-encoding")
        as_sent = (header or "").strip().lower() in as_is
        encoding = "identity" if as_sent else content_encoding(header)
        raw = await read_body(request, limits)  # read even when refusing: keeps the connection
        admit_bytes(len(raw))  # a tenant's bytes/s, before any decoding (limits on)
        return await take(raw, encoding)
    except BodyError as error:
        return Refusal(error.status, error.message)
    except DecodeError as error:
        return Refusal(400, error.message)
    except RateLimitedError as error:
        return Refusal(429, str(error), error.retry_after_s)
    except OverloadedError as error:
        return Refusal(429, f"overloaded, retry later: {error}", max(error.retry_after_s, 0))
    except UnavailableError as error:
        message = f"storage unavailable, {error.outcome}: {error}"
        return Refusal(503, message, limits.unavailable_retry_after_s)
    except Exception as error:
        logger.exception("unexpected error receiving %s", request.url.path)
        return Refusal(500, f"internal error: {type(error).__name__}")
