"""Conformance: span-metric exemplars, the slowest span per series and interval."""

from __future__ import annotations

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.store.base import ExemplarQuery, SpanExemplar, Storage
from tests.conformance.test_storage import T0, S, sid, span, tid

MIN = 60 * S


def _span(trace: int, start_s: float, seconds: float, **kw: object) -> Span:
    start = T0 + int(start_s * S)
    return span(trace, 1, start_s, end_ns=start + int(seconds * S), **kw)


def _ids(found: list[SpanExemplar]) -> list[str]:
    return [e.trace_id for e in found]


def test_slowest_span_per_series_and_interval(storage: Storage) -> None:
    storage.traces.write_spans(
        [
            _span(1, 10, 2.0),  # minute 0: trace 2 is slower
            _span(2, 20, 5.0),
            _span(3, 70, 1.0),  # minute 1: alone
            _span(4, 30, 9.0, status_code=StatusCode.ERROR),  # another series (status)
            _span(5, 40, 9.0, kind=SpanKind.CLIENT),  # another series (kind)
            _span(6, 50, 3.0, service="db"),  # another series (service)
            _span(7, 55, 4.0, name="POST /"),  # another series (name)
            _span(8, 200, 9.0),  # after the range
        ]
    )
    query = ExemplarQuery(start_ns=T0, end_ns=T0 + 2 * MIN, interval_ns=MIN)
    found = storage.traces.exemplars(query)
    # Ordered by service, kind (INTERNAL < SERVER < CLIENT), name, status, start.
    assert _ids(found) == [tid(6), tid(2), tid(3), tid(4), tid(7), tid(5)]
    slowest = found[1]
    assert slowest == SpanExemplar("web", "GET /", SpanKind.INTERNAL, StatusCode.UNSET,
                                   T0 + 20 * S, 5 * S, tid(2), sid(201))  # fmt: skip
    assert _ids(storage.traces.exemplars(ExemplarQuery(T0, T0 + 2 * MIN, 2 * MIN))) == [
        tid(6), tid(2), tid(4), tid(7), tid(5),
    ]  # fmt: skip


def test_exemplar_filters_and_limit(storage: Storage) -> None:
    storage.traces.write_spans(
        [_span(n, 3 * n, 1.0 + n / 10, service="db" if n % 2 else "web") for n in range(1, 9)]
        + [_span(20, 5, 1.0, status_code=StatusCode.ERROR, kind=SpanKind.SERVER)]
    )

    def find(**kw: object) -> list[str]:
        return _ids(storage.traces.exemplars(ExemplarQuery(T0, T0 + MIN, 10 * S, **kw)))  # type: ignore[arg-type]

    # 10 s intervals: spans 1-3 start in the first, 4-6 in the second, 7-8 in the third.
    assert find(service="db") == [tid(3), tid(5), tid(7)]
    assert find(service="web", status=StatusCode.UNSET) == [tid(2), tid(6), tid(8)]
    assert find(kind=SpanKind.SERVER) == [tid(20)]
    assert find(status=StatusCode.ERROR, name="GET /") == [tid(20)]
    assert find(name="nothing") == []
    assert find(limit=2) == [tid(3), tid(5)]


def test_ties_go_to_the_earlier_span_then_the_smaller_id(storage: Storage) -> None:
    storage.traces.write_spans([_span(9, 30, 2.0), _span(8, 30, 2.0), _span(7, 31, 2.0)])
    found = storage.traces.exemplars(ExemplarQuery(T0, T0 + MIN, MIN))
    assert _ids(found) == [tid(8)]
