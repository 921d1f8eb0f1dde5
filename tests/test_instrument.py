"""`meshscope.instrument`: the real OTel SDK and exporters, sending to the real receiver."""

from __future__ import annotations

import io
import json
import time

import meshscope
from meshscope.store.base import LogQuery
from tests.ingest.servers import PipelineSink, running_http


def test_spans_and_logs_reach_meshscope_correlated() -> None:
    sink = PipelineSink()
    stream = io.StringIO()
    with running_http(sink) as endpoint:
        obs = meshscope.instrument(
            service="checkout", endpoint=endpoint, set_global=False, stream=stream
        )
        with obs.tracer.start_as_current_span("charge") as span:
            obs.log.info("charged", amount=12, card={"brand": "visa"})
        obs.log.warning("outside any span")
        obs.flush()
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
        deadline = time.monotonic() + 10
        while not sink.storage.logs.find_logs(LogQuery(service="checkout")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        obs.shutdown()

    (stored_span,) = sink.storage.traces.get_trace(trace_id)
    assert (stored_span.service, stored_span.name) == ("checkout", "charge")
    charged, outside = sink.storage.logs.find_logs(LogQuery(service="checkout"))
    assert (charged.body, charged.trace_id, charged.span_id) == ("charged", trace_id, span_id)
    assert charged.attributes["amount"] == 12
    assert charged.attributes["card"] == "{'brand': 'visa'}"
    assert (outside.body, outside.trace_id, outside.severity_text) == (
        "outside any span",
        "",
        "WARN",
    )

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "charged" and first["level"] == "info"
    assert (first["trace_id"], first["span_id"], first["service"]) == (
        trace_id,
        span_id,
        "checkout",
    )
    assert "trace_id" not in second
