"""The critical path, on traces whose answer follows from Jaeger UI's algorithm by hand."""

from __future__ import annotations

from meshscope.model.spans import Span
from meshscope.query.critical_path import Section, critical_path


def _span(span_id: str, parent: str, start: int, end: int) -> Span:
    return Span("t" * 32, span_id, "op", "svc", start, end, parent_span_id=parent)


def test_parallel_children_the_last_finishing_one_wins() -> None:
    # root 0-100; a 10-60 and b 20-80 run in parallel; c 30-50 inside b.
    spans = [_span("r", "", 0, 100), _span("a", "r", 10, 60), _span("b", "r", 20, 80),
             _span("c", "b", 30, 50)]  # fmt: skip
    assert critical_path(spans) == [
        Section("r", 80, 100),
        Section("b", 50, 80),
        Section("c", 30, 50),
        Section("b", 20, 30),
        # Back in r at b's start (20): a ended at 60, after that point, so it is not on the
        # path; r's own time before b is.
        Section("r", 0, 20),
    ]


def test_sequential_children_and_gaps() -> None:
    spans = [_span("r", "", 0, 100), _span("a", "r", 10, 40), _span("b", "r", 50, 90)]
    assert critical_path(spans) == [
        Section("r", 90, 100),
        Section("b", 50, 90),
        Section("r", 40, 50),
        Section("a", 10, 40),
        Section("r", 0, 10),
    ]


def test_overflowing_children_are_clipped_or_dropped() -> None:
    spans = [
        _span("r", "", 0, 100),
        _span("late", "r", 90, 130),  # clipped to 90-100
        _span("after", "r", 120, 150),  # starts after its parent ended: dropped
    ]
    assert critical_path(spans) == [Section("late", 90, 100), Section("r", 0, 90)]


def test_no_root_and_orphans() -> None:
    assert critical_path([]) == []
    # A span whose parent never arrived roots its own tree.
    assert critical_path([_span("x", "missing", 5, 9)]) == [Section("x", 5, 9)]
