"""RED over time agrees with RED over each interval, from the same stored span metrics."""

from __future__ import annotations

from itertools import pairwise

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline
from meshscope.query.red import red
from meshscope.query.red_range import boundaries, red_over_time
from meshscope.store.memory import MemoryStorage

S = 10**9


def spans(n: int, service: str, ms: float, errors: int, salt: int) -> list[Span]:
    return [
        Span(
            f"{salt:08x}{i:024x}",
            f"{i + 1:016x}",
            "GET /",
            service,
            0,
            int(ms * 1e6),
            kind=SpanKind.SERVER,
            status_code=StatusCode.ERROR if i < errors else StatusCode.UNSET,
        )
        for i in range(n)
    ]


def loaded() -> tuple[MemoryStorage, int]:
    """Four minutes of span metrics flushed every 15 s; `db` is quiet in minute 3."""
    clock = ManualClock()
    start = clock.now_ns()
    storage = MemoryStorage()
    pipeline = Pipeline(storage, clock)
    for tick in range(16):
        minute = tick // 4
        batch = spans(10 + tick, "api", 5 + tick, errors=tick % 3, salt=tick)
        if minute != 2:
            batch += spans(4, "db", 40, errors=1, salt=1000 + tick)
        pipeline.consume(Batch(spans=batch))
        clock.advance(15)
        pipeline.flush()
    return storage, start


def test_each_interval_equals_red_over_that_interval() -> None:
    storage, start = loaded()
    end = start + 240 * S
    found = red_over_time(storage.metrics, start, end, steps=4)
    assert [s.service for s in found] == ["api", "db"]
    instants = boundaries(start, end, 4)
    for series in found:
        assert [p.time_ns for p in series.points] == instants[1:]
        for point, (a, b) in zip(series.points, pairwise(instants), strict=True):
            rows = red(storage.metrics, a, b, service=series.service)
            if not rows:
                assert (point.rate, point.p99_ms) == (0.0, None)
                continue
            [expected] = rows
            assert point.rate == expected.rate
            assert point.error_ratio == expected.error_ratio
            assert (point.p50_ms, point.p99_ms) == (expected.p50_ms, expected.p99_ms)
    db = found[1].points
    assert db[2].rate == 0.0 and db[2].error_ratio is None  # the quiet minute
    assert db[0].rate == 16 / 60 and db[0].error_ratio == 0.25


def test_counts_add_up_to_the_whole_range() -> None:
    storage, start = loaded()
    end = start + 240 * S
    [whole] = red(storage.metrics, start, end, service="api")
    [series] = red_over_time(storage.metrics, start, end, steps=2, service="api")
    assert abs(sum(p.rate * 120 for p in series.points) - whole.calls) < 1e-9


def test_intervals_are_never_shorter_than_a_minute() -> None:
    storage, start = loaded()
    [series] = red_over_time(storage.metrics, start, start + 240 * S, steps=50, service="api")
    assert len(series.points) == 4
    assert all(p.rate > 0 for p in series.points)


def test_bad_ranges_give_nothing() -> None:
    storage, start = loaded()
    assert red_over_time(storage.metrics, start, start, 4) == []
    assert red_over_time(storage.metrics, start, start + S, 0) == []
