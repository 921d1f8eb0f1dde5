"""Eight hours of span metrics with known error bursts, flushed every minute, for SLO tests.

Every minute `api` serves 100 server spans `GET /`: good ones last 3 ms, bad ones (error
status) 300 ms. Bad spans per minute: minutes 0-59 none, 60-419 eight (a slow 8 % burn),
420-449 thirty (a burst), 450-479 none. Noise that no `api` SLO may count: 5 failing client
spans of `api` and 10 failing server spans of `db` per minute.
"""

from __future__ import annotations

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline
from meshscope.store.memory import MemoryStorage

MINUTE = 60 * 10**9
MINUTES = 480
CALLS_PER_MINUTE = 100


def bad_per_minute(minute: int) -> int:
    if 60 <= minute < 420:
        return 8
    return 30 if 420 <= minute < 450 else 0


def bad_between(first: int, last: int) -> int:
    """Bad `api` spans in minutes first..last-1."""
    return sum(bad_per_minute(m) for m in range(max(0, first), min(last, MINUTES)))


def _spans(
    minute: int, n: int, service: str, kind: SpanKind, bad: int, ms: float, t0: int
) -> list[Span]:
    """`n` spans starting 100 ms apart from `t0` (the minute's start)."""
    return [
        Span(
            f"{minute:08x}{i:08x}{int(kind):08x}{len(service):08x}",
            f"{i + 1:016x}",
            "GET /",
            service,
            t0 + i * 10**8,
            t0 + i * 10**8 + int((300 if i < bad else ms) * 1e6),
            kind=kind,
            status_code=StatusCode.ERROR if i < bad else StatusCode.UNSET,
        )
        for i in range(n)
    ]


def load(start_ns: int | None = None) -> tuple[MemoryStorage, int]:
    """The storage and the instant of minute 0 (metrics flushed at the end of each minute);
    minute 0 is `start_ns` when given."""
    clock = ManualClock() if start_ns is None else ManualClock(start_ns)
    start = clock.now_ns()
    storage = MemoryStorage()
    pipeline = Pipeline(storage, clock)
    for minute in range(MINUTES):
        bad = bad_per_minute(minute)
        t0 = clock.now_ns()
        batch = _spans(minute, CALLS_PER_MINUTE, "api", SpanKind.SERVER, bad, 3, t0)
        batch += _spans(minute, 5, "api", SpanKind.CLIENT, 5, 3, t0)
        batch += _spans(minute, 10, "db", SpanKind.SERVER, 10, 3, t0)
        pipeline.consume(Batch(spans=batch))
        clock.advance(60)
        pipeline.flush()
    return storage, start
