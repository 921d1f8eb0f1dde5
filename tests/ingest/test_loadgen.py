from __future__ import annotations

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_traces import decode_traces_protobuf


def test_requests_are_deterministic_and_decodable() -> None:
    bodies = build_requests(2, spans_per_request=50, services=3)
    assert bodies == build_requests(2, spans_per_request=50, services=3)
    decoded = decode_traces_protobuf(bodies[0])
    spans = decoded.batch.spans
    assert (len(spans), decoded.rejected) == (50, 0)
    assert {s.service for s in spans} <= {"service-0", "service-1", "service-2"}
    ids = {s.span_id for s in spans}
    assert any(s.parent_span_id in ids for s in spans)
    assert all(len(s.attributes) == 8 and len(s.events) == 1 for s in spans)
