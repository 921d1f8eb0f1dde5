"""OTLP/gRPC receiver (port 4317): TraceService, MetricsService and LogsService `Export`.

The methods are registered with raw-bytes request handlers (the services' names and method
paths are the generated ones) rather than the generated `add_*Servicer_to_server`, so that the
body goes through the same decoder functions as OTLP/HTTP: an unparseable message is then
answered INVALID_ARGUMENT with the decoder's explanation (grpcio's own deserializer would
answer INTERNAL), and parsing a large message happens off the event loop with its walk.

Answers: OK with an empty `Export*ServiceResponse`, or with `partial_success` when some items
were rejected; INVALID_ARGUMENT undecodable; RESOURCE_EXHAUSTED when overloaded (with a
`google.rpc.RetryInfo` detail, in `grpc-status-details-bin` and in the
`google.rpc.retryinfo-bin` key the OTel Python exporter reads); UNAVAILABLE when the store is;
INTERNAL (logged) for anything unexpected. Messages over 20 MiB are refused by grpcio itself
(RESOURCE_EXHAUSTED); gzip-compressed requests are accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc import (  # type: ignore[import-untyped]
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from meshscope.ingest.body import BodyError
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp import Signal
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.receiving import OtlpDecoders, export_message, run_decoder, submit_decoded
from meshscope.ingest.sink import (
    IngestSink,
    OverloadedError,
    UnavailableError,
    is_body_kind,
    takes_encoded,
)
from meshscope.limits.admission import admit_bytes
from meshscope.limits.limiter import RateLimitedError

logger = logging.getLogger(__name__)

SERVICES: dict[Signal, str] = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
}
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

Handler = Callable[[bytes, Any], Awaitable[bytes]]


async def serve_grpc(
    sink: IngestSink,
    host: str,
    port: int,
    limits: IngestLimits | None = None,
    decoders: OtlpDecoders | None = None,
    *,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int]:
    """Serve OTLP/gRPC on host:port (started; call `await server.stop(grace)` to end it);
    returns the server and the port it took (the one asked for, or any free one for 0).
    `credentials` (TLS) make the port a secure one; `interceptors` run before each call
    (authentication)."""
    limits = limits or IngestLimits()
    decoders = decoders or OtlpDecoders()
    server = grpc.aio.server(
        interceptors=list(interceptors) or None,
        options=[
            ("grpc.max_receive_message_length", limits.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    handlers = [
        grpc.method_handlers_generic_handler(
            service,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    _export(signal, sink, limits, decoders)
                )
            },
        )
        for signal, service in SERVICES.items()
    ]
    server.add_generic_rpc_handlers(handlers)
    address = f"{host}:{port}"
    if credentials is not None:
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    await server.start()
    return server, bound


def _export(
    signal: Signal, sink: IngestSink, limits: IngestLimits, decoders: OtlpDecoders
) -> Handler:
    async def _receive(body: bytes) -> Decoded:
        # grpcio has already decompressed the message: the workers get it as is.
        admit_bytes(len(body))
        if is_body_kind(signal) and takes_encoded(sink):
            return await sink.submit_encoded(signal, body, "identity", json=False)
        decoded = await run_decoder(
            lambda: decoders.decode_body(signal, body, json=False), len(body), limits
        )
        await submit_decoded(decoded, sink)
        return decoded

    async def export(body: bytes, context: Any) -> bytes:
        metadata: tuple[tuple[str, bytes], ...] = ()
        try:
            decoded = await _receive(body)
            return export_message(signal, decoded).SerializeToString()
        except (DecodeError, BodyError) as error:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, error.message
        except RateLimitedError as error:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
            metadata = retry_metadata(code_pb2.RESOURCE_EXHAUSTED, message, error.retry_after_s)
        except OverloadedError as error:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, f"overloaded, retry later: {error}"
            metadata = retry_metadata(code_pb2.RESOURCE_EXHAUSTED, message, error.retry_after_s)
        except UnavailableError as error:
            code = grpc.StatusCode.UNAVAILABLE
            message = f"storage unavailable, {error.outcome}: {error}"
            metadata = retry_metadata(
                code_pb2.UNAVAILABLE, message, limits.unavailable_retry_after_s
            )
        except Exception as error:
            logger.exception("unexpected error receiving OTLP/gRPC %s", signal)
            code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}"
        await context.abort(code, message, trailing_metadata=metadata)
        raise AssertionError("context.abort returned")  # pragma: no cover

    return export


def retry_metadata(code: int, message: str, retry_after_s: int) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a `RetryInfo` of `retry_after_s` seconds, both as a
    `google.rpc.Status` detail (the standard place) and under the key OTel Python reads."""
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=max(retry_after_s, 0)))
    detail = AnyMessage()
    detail.Pack(retry)
    status = status_pb2.Status(code=code, message=message, details=[detail])
    return (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_INFO_KEY, retry.SerializeToString()),
    )
