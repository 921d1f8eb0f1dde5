"""Trace search in DuckDB: matching spans in slices of the time range, newest slice first, then
the traces' start times.

A trace's start is its earliest span anywhere (from the trace locator: the minimum over its
writes), which may lie before the searched range; a trace ranks by it. Every trace with a
matching span starts at or before that span, so once `limit` verified traces start at or after
the beginning of the slices read so far, no trace matching only further back can rank above
them: the search stops there instead of reading the whole range. That is what keeps a dense
last hour (millions of spans) cheap: `spans` is appended in arrival order, roughly start order,
so the `start_ns` zonemaps prune each slice to the newest row group or two (issue #18:
~0.25-0.5 s for a whole dense hour, a few ms per slice). Slices start at SLICE_NS (longer when
that holds fewer than SLICE_ROWS spans) and grow 4x each step (16x while few traces were
found), so a range with few matches costs about one scan of it, in a few queries.

Within a slice, the newest candidates by their first matching span are verified in the trace
locator (store/duckdb/trace_locator.py: memory, no query); a trace not verified starts at or
before its first matching span, so once the `limit`-th verified start is later than that of
every candidate not verified, the slice needs no more; until then twice as many candidates are
verified (rarely needed: a trace usually starts at, or just before, its first matching span).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from meshscope.model.spans import StatusCode
from meshscope.store.base import TraceQuery
from meshscope.store.codec import hex128
from meshscope.store.duckdb.filters import attribute_conditions
from meshscope.store.duckdb.trace_locator import TraceLocator

FIRST_CANDIDATES = 50  # verified in the first round, or 2 x limit if more
SLICE_NS = 15 * 10**9
"""The newest slice read first; each slice further back is 4x as long, 16x while fewer than a
quarter of `limit` traces were found (sparse data: a row group holds hours)..."""
SLICE_ROWS = 50_000
"""...and the first no shorter than holding about this many spans (see `first_slice`)."""


def find_trace_ids(
    cursor: duckdb.DuckDBPyConnection,
    query: TraceQuery,
    locator: TraceLocator,
    slice_ns: int = SLICE_NS,
    slice_rows: int = SLICE_ROWS,
) -> list[str]:
    """Ids of matching traces, latest start first (ties: higher id first), at most `limit`."""
    if query.limit <= 0 or query.end_ns <= query.start_ns:
        return []
    where, params = _conditions(cursor, query)
    slice_ns = first_slice(cursor, "spans", "start_ns", query.end_ns, slice_ns, slice_rows)
    starts: dict[tuple[int, int], int] = {}  # verified traces
    end = query.end_ns
    while True:
        low = max(query.start_ns, end - slice_ns)
        bound = _slice(cursor, locator, where, params, low, end, query.limit, starts)
        ranked = sorted(((start, *key) for key, start in starts.items()), reverse=True)
        # `bound`: every trace not verified starts at or before it.
        if low <= query.start_ns or _settled(ranked, query.limit, bound):
            return [hex128(high, key_low) for _, high, key_low in ranked[: query.limit]]
        end = low
        slice_ns *= 4 if 4 * len(ranked) >= query.limit else 16


def first_slice(
    cursor: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    end: int,
    slice_ns: int,
    slice_rows: int,
) -> int:
    """`slice_ns`, or longer where it holds fewer than `slice_rows` rows before `end` (sparse
    data: one row group covers hours, and each slice is a query of its own)."""
    row = cursor.execute(
        f"SELECT count(*) FROM {table} WHERE {column} >= ? AND {column} < ?",
        [end - slice_ns, end],
    ).fetchone()
    count = int(row[0]) if row else 0
    return slice_ns if count >= slice_rows else slice_ns * slice_rows // max(count, 1)


def _slice(
    cursor: duckdb.DuckDBPyConnection,
    locator: TraceLocator,
    where: list[str],
    params: list[Any],
    low: int,
    end: int,
    limit: int,
    starts: dict[tuple[int, int], int],
) -> int:
    """Verify the slice [low, end)'s candidates into `starts` until the slice is settled (see
    the module doc); return a bound on the start of every trace still not verified."""
    count = max(FIRST_CANDIDATES, 2 * limit)
    while True:
        candidates = cursor.execute(
            f"SELECT trace_hi, trace_lo, min(start_ns) AS hit FROM spans"
            f" WHERE start_ns >= ? AND start_ns < ? AND {' AND '.join(where)}"
            f" GROUP BY trace_hi, trace_lo"
            f" ORDER BY hit DESC, trace_hi DESC, trace_lo DESC LIMIT {count + 1}",
            [low, end, *params],
        ).fetchall()
        keys = [(row[0], row[1]) for row in candidates[:count]]
        starts.update(_starts(locator, [key for key in keys if key not in starts]))
        if len(candidates) <= count:
            return low - 1  # a trace matching only before `low` starts before it
        ranked = sorted(starts.values(), reverse=True)
        unverified_hit: int = candidates[count][2]
        if len(ranked) >= limit and ranked[limit - 1] > unverified_hit:
            return unverified_hit
        count *= 2


def _settled(ranked: list[tuple[int, int, int]], limit: int, bound: int) -> bool:
    """Every trace not verified starts at or before `bound`: is the top `limit` already
    later than that?"""
    return len(ranked) >= limit and ranked[limit - 1][0] > bound


def _starts(locator: TraceLocator, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Each trace's start: the earliest start over its writes, from the locator."""
    return {key: first for key, (first, _) in locator.ranges_of(keys).items()}


def _conditions(
    cursor: duckdb.DuckDBPyConnection, query: TraceQuery
) -> tuple[list[str], list[Any]]:
    """The span conditions (AND-ed) and their parameters, but the time range."""
    where = ["true"]
    params: list[Any] = []
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
    conditions, attr_params = attribute_conditions(cursor, query.attributes, either=True)
    return where + conditions, params + attr_params
