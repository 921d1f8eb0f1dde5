"""Trace search in DuckDB: matching spans inside the time range, then the traces' start times.

A trace's start is its earliest span anywhere (the minimum of its `trace_index` rows), which
may lie before the searched range. Joining every matching trace against the whole
`trace_index` costs a scan of it (~10 ms at 1M traces); instead the newest candidates by their
first matching span are looked up through the ART index on `trace_lo`. A trace starts at or
before its first matching span, so once the `limit`-th verified start is later than the first
matching span of every candidate not verified yet, no other trace can rank above it; until
then twice as many candidates are verified (rarely needed: a trace usually starts at, or just
before, its first matching span).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from meshscope.model.spans import StatusCode
from meshscope.store.base import TraceQuery
from meshscope.store.codec import hex128
from meshscope.store.duckdb.filters import attribute_conditions

FIRST_CANDIDATES = 50  # verified in the first round, or 2 x limit if more


def find_trace_ids(cursor: duckdb.DuckDBPyConnection, query: TraceQuery) -> list[str]:
    """Ids of matching traces, latest start first (ties: higher id first), at most `limit`."""
    if query.limit <= 0:
        return []
    where, params = _conditions(cursor, query)
    count = max(FIRST_CANDIDATES, 2 * query.limit)
    while True:
        candidates = cursor.execute(
            f"SELECT trace_hi, trace_lo, min(start_ns) AS hit FROM spans"
            f" WHERE {' AND '.join(where)} GROUP BY trace_hi, trace_lo"
            f" ORDER BY hit DESC, trace_hi DESC, trace_lo DESC LIMIT {count + 1}",
            params,
        ).fetchall()
        keys = [(row[0], row[1]) for row in candidates[:count]]
        starts = _starts(cursor, keys)
        ranked = sorted(((starts[key], *key) for key in keys if key in starts), reverse=True)
        if len(candidates) <= count or _settled(ranked, query.limit, candidates[count][2]):
            return [hex128(high, low) for _, high, low in ranked[: query.limit]]
        count *= 2


def _settled(ranked: list[tuple[int, int, int]], limit: int, unverified_hit: int) -> bool:
    """Every trace not verified starts at or before `unverified_hit`: is the top `limit`
    already later than that?"""
    return len(ranked) >= limit and ranked[limit - 1][0] > unverified_hit


def _starts(
    cursor: duckdb.DuckDBPyConnection, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """Each trace's start: the minimum of its `trace_index` rows (an IN list of literals is
    answered by the ART index on `trace_lo`)."""
    if not keys:
        return {}
    wanted = set(keys)
    lows = ", ".join(str(low) for low in dict.fromkeys(low for _, low in keys))
    starts: dict[tuple[int, int], int] = {}
    for high, low, first in cursor.execute(
        f"SELECT trace_hi, trace_lo, min_start FROM trace_index WHERE trace_lo IN ({lows})"
    ).fetchall():
        key = (high, low)
        if key in wanted and (key not in starts or first < starts[key]):
            starts[key] = first
    return starts


def _conditions(
    cursor: duckdb.DuckDBPyConnection, query: TraceQuery
) -> tuple[list[str], list[Any]]:
    """The span conditions (AND-ed) and their parameters."""
    where = ["start_ns >= ?", "start_ns < ?"]
    params: list[Any] = [query.start_ns, query.end_ns]
    if query.service:
        where.append("service = ?")
        params.append(query.service)
    if query.operation:
        where.append("name = ?")
        params.append(query.operation)
    if query.errors_only:
        where.append(f"status_code = {int(StatusCode.ERROR)}")
    if query.status is not None:
        where.append(f"status_code = {int(query.status)}")
    if query.kind is not None:
        where.append(f"kind = {int(query.kind)}")
    if query.min_duration_ns > 0:
        where.append("greatest(duration_ns, 0) >= ?")
        params.append(query.min_duration_ns)
    if query.max_duration_ns:
        where.append("greatest(duration_ns, 0) <= ?")
        params.append(query.max_duration_ns)
    conditions, attr_params = attribute_conditions(cursor, query.attributes)
    return where + conditions, params + attr_params
