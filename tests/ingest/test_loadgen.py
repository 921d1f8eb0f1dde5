from __future__ import annotations

from meshscope.ingest.loadgen import FreshTraces, build_requests, by_service
from meshscope.ingest.otlp_traces import decode_traces_protobuf
from meshscope.model.spans import Span


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


def _spans(bodies: list[bytes]) -> list[Span]:
    return [span for body in bodies for span in decode_traces_protobuf(body).batch.spans]


def _identity(span: Span) -> tuple[str, str, str, int, int]:
    return span.trace_id, span.span_id, span.service, span.start_ns, span.end_ns


def test_by_service_keeps_every_span_and_parts_each_trace() -> None:
    bodies = build_requests(4, spans_per_request=50, services=3)
    parted = by_service(bodies, spans_per_request=50)
    assert len(parted) == 4
    before, after = _spans(bodies), _spans(parted)
    assert sorted(map(_identity, before)) == sorted(map(_identity, after))
    services = [[s.service for s in decode_traces_protobuf(b).batch.spans] for b in parted]
    assert all(len(set(names)) <= 2 for names in services)  # one, or two where one ends
    flat = [name for names in services for name in names]
    assert flat == sorted(flat)  # every span of a service before the next service's


def test_fresh_traces_change_ids_per_cycle_and_keep_traces_whole() -> None:
    bodies = build_requests(2, spans_per_request=50, services=3)
    fresh = FreshTraces(bodies, built_ns=0)
    ids = [[s.trace_id for s in _spans([fresh.request(i, cycle) for i in range(2)])]
           for cycle in (1, 2)]  # fmt: skip
    original = [s.trace_id for s in _spans(bodies)]
    assert not set(ids[0]) & set(ids[1]) and not set(ids[0]) & set(original)
    # The same trace keeps one id: ids map one to one from the original ones.
    assert len(set(zip(original, ids[0], strict=True))) == len(set(original)) == len(set(ids[0]))
    assert fresh.first_trace_id(0, 1) == ids[0][0]
