"""DuckDB's sliced trace search (store/duckdb/trace_search.py) agrees with the memory store,
with slices small enough that answers span many of them, candidates overflow a round, and
traces start long before the slice their matching spans are in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.store.base import TraceQuery
from meshscope.store.duckdb import DuckDBStorage, trace_search
from meshscope.store.memory import MemoryStorage

S = 10**9
T0 = 1_700_000_000 * S
SERVICES = ["web", "cart", "db"]


def _traces(rng: random.Random, count: int) -> list[list[Span]]:
    """Traces of 1-6 spans over ~1000 s; some spans start minutes before the others (a root
    sent late, or a long trace); traces often share a start (whole seconds)."""
    out = []
    for _ in range(count):
        start = T0 + rng.randrange(1000) * S
        trace_id = f"{rng.getrandbits(127) + 1:032x}"
        spans = []
        for i in range(rng.randint(1, 6)):
            at = start if i == 0 else start + rng.randrange(3 * S)
            if rng.random() < 0.1:
                at -= rng.randrange(600) * S
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=f"{i + 1:016x}",
                    name=rng.choice(["GET /", "POST /", "query"]),
                    service=rng.choice(SERVICES),
                    start_ns=at,
                    end_ns=at + rng.randrange(1, 500) * 10**6,
                    kind=rng.choice([SpanKind.SERVER, SpanKind.CLIENT]),
                    status_code=StatusCode.ERROR if rng.random() < 0.1 else StatusCode.UNSET,
                    attributes={"tier": rng.choice(["free", "pro"])},
                )
            )
        out.append(spans)
    return out


QUERIES = [
    {},
    {"service": "cart"},
    {"service": "db", "operation": "query"},
    {"attributes": {"tier": "pro"}},
    {"errors_only": True},
    {"service": "web", "min_duration_ns": 400 * 10**6},
    {"service": "nobody"},
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("slice_s", [1, 7, 10_000])
def test_sliced_search_agrees_with_the_memory_store(
    tmp_path: Path, seed: int, slice_s: int
) -> None:
    rng = random.Random(seed)
    traces = _traces(rng, 300)
    memory = MemoryStorage()
    duck = DuckDBStorage(tmp_path / "s.duckdb")
    # Each trace's spans in two writes of interleaved batches (the index has rows per write).
    for part in range(2):
        batch = [s for spans in traces for i, s in enumerate(spans) if i % 2 == part]
        memory.traces.write_spans(batch)
        duck.traces.write_spans(batch)
    cursor = duck.traces._db.read()
    for fields in QUERIES:
        for limit in (1, 5, 20, 1000):
            for start_s, end_s in ((0, 2000), (500, 700), (-700, 300), (990, 991)):
                query = TraceQuery(
                    **fields,  # type: ignore[arg-type]
                    start_ns=T0 + start_s * S,
                    end_ns=T0 + end_s * S,
                    limit=limit,
                )
                expected = memory.traces.find_trace_ids(query)
                assert (
                    trace_search.find_trace_ids(
                        cursor, query, duck.traces.locator, slice_s * S, slice_rows=1
                    )
                    == expected
                ), (
                    fields,
                    limit,
                    start_s,
                    end_s,
                )
    duck.close()
