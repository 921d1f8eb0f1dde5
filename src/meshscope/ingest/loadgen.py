"""Pre-encoded OTLP trace requests for benchmarks and load tests.

The OTel Python exporter tops out near 13k spans/s, far below what the ingest path can take,
so load generators build `ExportTraceServiceRequest` bytes once and send them many times.
The spans look like a service mesh's: several services, traces of parent/child calls, HTTP
attributes, one event per span. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

_ROUTES = ("/api/orders", "/api/users/{id}", "/api/cart", "/health", "/api/checkout")
_METHODS = ("GET", "POST", "PUT", "DELETE")
_BASE_NS = 1_700_000_000_000_000_000


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(rng: random.Random, trace_id: bytes, parent: bytes, start: int, peer: str) -> Span:
    status = 500 if rng.random() < 0.05 else 200
    duration = rng.randint(100_000, 50_000_000)
    span = Span(
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        parent_span_id=parent,
        name=f"{rng.choice(_METHODS)} {rng.choice(_ROUTES)}",
        kind=Span.SPAN_KIND_CLIENT if parent else Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration,
        flags=0x301,
        attributes=[
            _kv("http.request.method", rng.choice(_METHODS)),
            _kv("http.route", rng.choice(_ROUTES)),
            _kv("http.response.status_code", status),
            _kv("server.address", peer),
            _kv("server.port", 8080),
            _kv("url.scheme", "http"),
            _kv("network.protocol.version", "1.1"),
            _kv("user_agent.original", "meshscope-loadgen/1.0"),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR if status >= 500 else Status.STATUS_CODE_UNSET),
    )
    span.events.add(
        time_unix_nano=start + duration // 2,
        name="message",
        attributes=[_kv("message.type", "SENT"), _kv("message.id", 1)],
    )
    return span


def build_request(
    spans_per_request: int, services: int, rng: random.Random, base_ns: int = _BASE_NS
) -> bytes:
    """One encoded request: `spans_per_request` spans spread over `services` resources.

    Spans form traces of up to 8 calls, each child a call to another service.
    """
    names = [f"service-{i}" for i in range(max(1, services))]
    per_service: dict[str, ResourceSpans] = {}
    for name in names:
        rs = ResourceSpans()
        rs.resource.attributes.extend(
            [
                _kv("service.name", name),
                _kv("service.namespace", "shop"),
                _kv("service.instance.id", f"{name}-7d9f8-{rng.randint(0, 9)}"),
                _kv("telemetry.sdk.language", "python"),
            ]
        )
        scope = rs.scope_spans.add()
        scope.scope.name = "opentelemetry.instrumentation.requests"
        scope.scope.version = "0.50b0"
        per_service[name] = rs
    made = 0
    while made < spans_per_request:
        trace_id = rng.randbytes(16)
        parent = b""
        start = base_ns + rng.randint(0, 10**12)
        for _ in range(min(rng.randint(1, 8), spans_per_request - made)):
            service = rng.choice(names)
            span = _span(rng, trace_id, parent, start, rng.choice(names))
            per_service[service].scope_spans[0].spans.append(span)
            parent = span.span_id
            start += 10_000
            made += 1
    request = ExportTraceServiceRequest(
        resource_spans=[rs for rs in per_service.values() if rs.scope_spans[0].spans]
    )
    return request.SerializeToString()


def build_requests(
    n_requests: int,
    spans_per_request: int = 500,
    services: int = 8,
    seed: int = 1,
    base_ns: int = _BASE_NS,
) -> list[bytes]:
    """`n_requests` encoded `ExportTraceServiceRequest` bodies, deterministic for `seed`;
    span start times fall within ~17 minutes after `base_ns`."""
    rng = random.Random(seed)
    return [build_request(spans_per_request, services, rng, base_ns) for _ in range(n_requests)]


def by_service(bodies: list[bytes], spans_per_request: int = 500) -> list[bytes]:
    """The spans of `bodies` regrouped as each service's own SDK would send them: requests
    hold the spans of one service (two where one service's spans end), in their order, and
    all of a service's spans come before the next service's, so the spans of a trace arrive
    far apart, never in one write. Every request holds `spans_per_request` spans (a last,
    partial one is left out); a service's spans all get the resource of its first request."""
    by_name: dict[str, tuple[ResourceSpans, list[Span]]] = {}
    for body in bodies:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            name = next(kv.value.string_value for kv in rs.resource.attributes
                        if kv.key == "service.name")  # fmt: skip
            by_name.setdefault(name, (rs, []))[1].extend(rs.scope_spans[0].spans)
    spans = [(name, span) for name, (_, own) in sorted(by_name.items()) for span in own]
    out = []
    for first in range(0, len(spans) - spans_per_request + 1, spans_per_request):
        request = ExportTraceServiceRequest()
        groups: dict[str, ScopeSpans] = {}
        for name, span in spans[first : first + spans_per_request]:
            if name not in groups:
                template = by_name[name][0]
                rs = request.resource_spans.add(resource=template.resource)
                groups[name] = rs.scope_spans.add(scope=template.scope_spans[0].scope)
            groups[name].spans.append(span)
        out.append(request.SerializeToString())
    return out


class FreshTraces:
    """Pre-encoded trace requests, re-sent with new trace ids and current times: the byte
    offsets of every span's trace id (16 bytes) and of every span and event time (fixed64)
    are found once; each send patches them in a copy (a few hundred slice writes)."""

    def __init__(self, bodies: list[bytes], built_ns: int) -> None:
        self.bodies = bodies
        self.built_ns = built_ns
        self.ids: list[list[int]] = []  # per body: offsets of trace ids
        self.times: list[list[tuple[int, int]]] = []  # per body: (offset, original value)
        self.first: list[bytes] = []  # per body: its first span's trace id
        for body in bodies:
            ids, times, cursor = [], [], 0
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        cursor = body.index(b"\x0a\x10" + span.trace_id, cursor) + 2
                        ids.append(cursor)
                        for tag, value in (
                            (b"\x39", span.start_time_unix_nano),
                            (b"\x41", span.end_time_unix_nano),
                            *((b"\x09", event.time_unix_nano) for event in span.events),
                        ):
                            cursor = body.index(tag + value.to_bytes(8, "little"), cursor) + 1
                            times.append((cursor, value))
            self.ids.append(ids)
            self.times.append(times)
            self.first.append(request.resource_spans[0].scope_spans[0].spans[0].trace_id)

    def first_trace_id(self, index: int, cycle: int) -> str:
        """The trace id (hex) of the first span of `request(index, cycle)`."""
        first = self.first[index % len(self.bodies)]
        stamp = bytes(a ^ b for a, b in zip(first[:4], cycle.to_bytes(4, "big"), strict=True))
        return (stamp + first[4:]).hex()

    def request(self, index: int, cycle: int) -> bytes:
        """Body `index` of the pool with its trace ids made unique to `cycle` and its times
        moved to now (trace ids stay shared within a trace: the same bytes are replaced)."""
        n = index % len(self.bodies)
        out = bytearray(self.bodies[n])
        stamp = cycle.to_bytes(4, "big")
        for offset in self.ids[n]:
            head = out[offset : offset + 4]
            out[offset : offset + 4] = bytes(a ^ b for a, b in zip(head, stamp, strict=True))
        delta = time.time_ns() - self.built_ns
        for offset, value in self.times[n]:
            out[offset : offset + 8] = (value + delta).to_bytes(8, "little")
        return bytes(out)
