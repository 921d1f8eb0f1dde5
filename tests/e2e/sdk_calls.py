"""Traces of calls between two services, made by the OpenTelemetry SDK's tracers (as an
instrumented frontend and backend make them), for tests that export them themselves."""

from __future__ import annotations

import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


def call_traces(count: int) -> list[ReadableSpan]:
    """`count` traces of 3 spans (a frontend's server and client spans, a backend's server
    span answering the client span: one call frontend -> backend each), started ~5 s ago."""
    recorder = InMemorySpanExporter()
    front = TracerProvider(resource=Resource({"service.name": "frontend"}))
    back = TracerProvider(resource=Resource({"service.name": "backend"}))
    for provider in (front, back):
        provider.add_span_processor(SimpleSpanProcessor(recorder))
    started = time.time_ns() - 5 * 10**9
    for _ in range(count):
        with (
            front.get_tracer("calls").start_as_current_span(
                "GET /", kind=SpanKind.SERVER, start_time=started
            ),
            front.get_tracer("calls").start_as_current_span(
                "GET /api", kind=SpanKind.CLIENT, start_time=started + 1000
            ),
            back.get_tracer("calls").start_as_current_span(
                "GET /api", kind=SpanKind.SERVER, start_time=started + 2000
            ),
        ):
            pass
    return list(recorder.get_finished_spans())


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])
