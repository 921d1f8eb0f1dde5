"""OTLP requests of call chains for the cluster tests: each trace is a `frontend` SERVER span,
its CLIENT span calling `backend`, and `backend`'s SERVER span (one service-graph edge per
trace); every 5th trace fails in the backend."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


@dataclass(frozen=True, slots=True)
class Call:
    trace_id: bytes
    spans: dict[str, list[Span]]  # service -> its spans of this trace


def calls(count: int, seed: int = 1, now_ns: int | None = None) -> list[Call]:
    rng = random.Random(seed)
    base = now_ns if now_ns is not None else time.time_ns() - 5 * 10**9
    out = []
    for i in range(count):
        trace_id = rng.randbytes(16)
        start = base + i * 1000
        root = Span(trace_id=trace_id, span_id=rng.randbytes(8), name="GET /",
                    kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start,
                    end_time_unix_nano=start + 9_000_000)  # fmt: skip
        client = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root.span_id,
                      name="GET /api", kind=Span.SPAN_KIND_CLIENT,
                      start_time_unix_nano=start + 1000,
                      end_time_unix_nano=start + 8_000_000)  # fmt: skip
        failed = i % 5 == 0
        server = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=client.span_id,
                      name="GET /api", kind=Span.SPAN_KIND_SERVER,
                      start_time_unix_nano=start + 2000,
                      end_time_unix_nano=start + 2000 + (i % 7 + 1) * 1_000_000,
                      status=Status(code=Status.STATUS_CODE_ERROR if failed else
                                    Status.STATUS_CODE_OK))  # fmt: skip
        out.append(Call(trace_id, {"frontend": [root, client], "backend": [server]}))
    return out


def request(calls: list[Call], services: tuple[str, ...] = ("frontend", "backend")) -> bytes:
    """One ExportTraceServiceRequest with the spans of `services` of every call."""
    message = ExportTraceServiceRequest()
    for service in services:
        rs = message.resource_spans.add()
        rs.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value=service))
        )
        scope = rs.scope_spans.add()
        scope.scope.name = "tests.cluster"
        for call in calls:
            scope.spans.extend(call.spans.get(service, []))
    return message.SerializeToString()


def otlp_json(body: bytes) -> bytes:
    """An `ExportTraceServiceRequest` as OTLP/JSON (ids in hex, as OTLP/JSON spells them)."""
    document = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for item in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64decode(item[key]).hex()
    return orjson.dumps(document)


def logs_request(trace_ids: list[bytes], untraced: int = 0) -> bytes:
    message = ExportLogsServiceRequest()
    rl = message.resource_logs.add()
    rl.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="backend"))
    )
    scope = rl.scope_logs.add()
    now = time.time_ns()
    for trace_id in trace_ids:
        scope.log_records.add(
            time_unix_nano=now, trace_id=trace_id, body=AnyValue(string_value="traced")
        )
    for _ in range(untraced):
        scope.log_records.add(time_unix_nano=now, body=AnyValue(string_value="untraced"))
    return message.SerializeToString()
