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
