"""Conformance: trace search by exact span status and span kind (TraceQuery.status/.kind)."""

from __future__ import annotations

from meshscope.model.spans import SpanKind, StatusCode
from meshscope.store.base import Storage, TraceQuery
from tests.conformance.test_storage import span, tid


def test_find_traces_by_status_and_kind(storage: Storage) -> None:
    storage.traces.write_spans(
        [
            span(1, 1, 1, kind=SpanKind.SERVER, status_code=StatusCode.OK),
            span(2, 1, 2, kind=SpanKind.CLIENT, status_code=StatusCode.ERROR),
            span(3, 1, 3, kind=SpanKind.SERVER),
            span(3, 2, 3.5, kind=SpanKind.CONSUMER, status_code=StatusCode.ERROR),
        ]
    )

    def find(**kw: object) -> list[str]:
        return storage.traces.find_trace_ids(TraceQuery(**kw))  # type: ignore[arg-type]

    assert find(status=StatusCode.ERROR) == [tid(3), tid(2)]
    assert find(status=StatusCode.OK) == [tid(1)]
    assert find(status=StatusCode.UNSET) == [tid(3)]
    assert find(kind=SpanKind.SERVER) == [tid(3), tid(1)]
    # Both conditions hold for the same span.
    assert find(kind=SpanKind.SERVER, status=StatusCode.ERROR) == []
    assert find(kind=SpanKind.CONSUMER, status=StatusCode.ERROR) == [tid(3)]


def test_find_traces_ranks_by_trace_start_even_when_matches_come_late(storage: Storage) -> None:
    # Trace n matches at 1000 + n s but started at 500 - n s (an unmatched root span, some
    # written in a later batch): the latest matching span says nothing about the rank.
    matches = [span(n, 1, 1000 + n, service="db") for n in range(1, 241)]
    roots = [span(n, 2, 500 - n, service="web") for n in range(1, 241)]
    storage.traces.write_spans(matches + roots[:120])
    storage.traces.write_spans(roots[120:])
    # A trace with ties on start: the higher id ranks first.
    storage.traces.write_spans([span(300, 1, 499, service="db")])

    def find(**kw: object) -> list[str]:
        return storage.traces.find_trace_ids(TraceQuery(**kw))  # type: ignore[arg-type]

    assert find(service="db", limit=3) == [tid(300), tid(1), tid(2)]
    assert find(service="db", limit=1000) == [tid(300), *(tid(n) for n in range(1, 241))]
    assert find(service="db", start_ns=span(0, 0, 1100).start_ns, limit=2) == [tid(100), tid(101)]
