"""Conformance of the batch reads: `TraceStore.get_traces` (many traces in one call)."""

from __future__ import annotations

from meshscope.store.base import Storage
from tests.conformance.test_storage import rich_span, span, tid

HOUR_S = 3600


def test_get_traces_answers_like_get_trace_in_the_order_asked(storage: Storage) -> None:
    # Trace 1 is written twice, hours apart; trace 3 alone half a day later.
    storage.traces.write_spans([span(1, 1, 0), span(2, 1, 5)])
    storage.traces.write_spans([span(3, 1, 12 * HOUR_S), span(1, 2, 3 * HOUR_S)])
    storage.traces.write_spans([span(1, 3, -HOUR_S), span(3, 2, 12 * HOUR_S - 1)])
    asked = [tid(3), tid(9), "not-a-trace-id", tid(1), tid(3), "f" * 40]
    found = storage.traces.get_traces(asked)
    assert list(found) == [tid(3), tid(1)]
    assert found[tid(1)] == [span(1, 3, -HOUR_S), span(1, 1, 0), span(1, 2, 3 * HOUR_S)]
    assert found[tid(3)] == storage.traces.get_trace(tid(3))
    assert found[tid(3)] == [span(3, 2, 12 * HOUR_S - 1), span(3, 1, 12 * HOUR_S)]
    assert storage.traces.get_traces([]) == {}
    assert storage.traces.get_traces([tid(8), ""]) == {}


def test_get_traces_tells_ids_that_share_their_low_half_apart(storage: Storage) -> None:
    one, two = f"{1:016x}{5:016x}", f"{2:016x}{5:016x}"
    first = span(0, 1, 1, trace_id=one)
    second = span(0, 2, 1, trace_id=two)
    storage.traces.write_spans([first, second])
    assert storage.traces.get_traces([two]) == {two: [second]}
    assert storage.traces.get_traces([one, two]) == {one: [first], two: [second]}
    assert storage.traces.get_trace(one) == [first]


def test_get_traces_keeps_every_field_and_reads_many_ids(storage: Storage) -> None:
    many = [span(n, 1, n * 7) for n in range(1, 1201)]
    storage.traces.write_spans([*many, rich_span()])
    asked = [rich_span().trace_id, *(tid(n) for n in range(1200, 0, -1))]
    found = storage.traces.get_traces(asked)
    assert list(found) == asked
    assert found[rich_span().trace_id] == [rich_span()]
    assert [spans for key, spans in found.items() if key != rich_span().trace_id] == [
        [s] for s in reversed(many)
    ]
