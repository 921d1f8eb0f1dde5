"""Spans: a search table ordered (service, name, start_ns) and a trace-id table ordered
(trace_hi, trace_lo, start_ns) that holds the whole span as one payload (`trace_spans`,
span_payload.py, ADR 0022); both written by every insert. A database made before
`trace_spans` keeps its spans in `spans_by_trace`, a column per field
(`schema.LEGACY_BY_TRACE`): trace reads read it too while it exists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from clickhouse_driver.errors import ErrorCodes, ServerException

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.store.base import (
    MAX_TIME_NS,
    ExemplarQuery,
    SpanExemplar,
    TraceQuery,
    trace_order,
)
from meshscope.store.clickhouse.columns import attr_equal, attr_params, trace_key
from meshscope.store.clickhouse.connection import ClickHouseUnavailableError, Connection
from meshscope.store.clickhouse.native import Numbers
from meshscope.store.clickhouse.schema import (
    DAY_NS,
    DAYS_END_NS,
    LEGACY_BY_TRACE,
    RESOURCES,
    day_range,
    exists,
    has_column,
)
from meshscope.store.clickhouse.span_payload import span_of, unpack
from meshscope.store.clickhouse.span_rows import (
    BY_TRACE,
    SEARCH,
    EncodedClickHouseSpans,
    concat,
    encode_spans,
)
from meshscope.store.codec import hex64, hex128

_LEGACY = (
    "trace_hi, trace_lo, start_ns, seq, end_ns, span_id, parent_id, service, name, kind, status,"
    " status_message, attr_keys, attr_values, attr_types, res_keys, res_values, res_types,"
    " scope_name, scope_version, trace_state, flags, ev_time, ev_name, ev_keys, ev_values,"
    " ev_types, ln_hi, ln_lo, ln_span, ln_keys, ln_values, ln_types"
)
_KEYS_PER_QUERY = 1000


def _span_conditions(
    start_ns: int,
    end_ns: int,
    service: str,
    name: str,
    kind: SpanKind | None,
    status: StatusCode | None,
) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (and their parameters) on the `spans` search columns."""
    conditions = ["start_ns >= %(start)s", "start_ns < %(end)s"]
    params: dict[str, Any] = {"start": start_ns, "end": end_ns}
    for field, value in (("service", service), ("name", name)):
        if value:
            conditions.append(f"{field} = %({field})s")
            params[field] = value
    if kind is not None:
        conditions.append(f"kind = {int(kind)}")
    if status is not None:
        conditions.append(f"status = {int(status)}")
    return conditions, params


def _legacy_span(row: tuple[Any, ...]) -> Span:
    """A span of a `spans_by_trace` row (`_LEGACY`'s columns), read as format-2 payload items."""
    (hi, lo, start, _, end, span_id, parent, service, name, kind, status, message,
     ak, av, at, rk, rv, rt, scope, scope_version, state, flags,
     ev_time, ev_name, ev_keys, ev_values, ev_types,
     ln_hi, ln_lo, ln_span, ln_keys, ln_values, ln_types) = row  # fmt: skip
    events = list(zip(ev_name, ev_keys, ev_values, ev_types, strict=True))
    links = list(zip(ln_hi, ln_lo, ln_span, ln_keys, ln_values, ln_types, strict=True))
    return span_of(
        hi, lo, start,
        (2, service, name, kind, rk, rv, rt, scope, scope_version, ak, at, events, state,
         flags, links, status, message, av, end - start, [t - start for t in ev_time],
         span_id, parent),
    )  # fmt: skip


_MAX_NOTED = 100_000
"""Resource days `ClickHouseTraceStore` remembers having written before it starts over."""


class ClickHouseTraceStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.database
        self._written: set[tuple[int, int]] = set()
        """(day, fingerprint) of the `resources` rows this store has written."""
        try:
            self._legacy = exists(conn, LEGACY_BY_TRACE)
            """Whether the database still has the older trace-id table (read beside the new)."""
            self._inline_resources = has_column(conn, "spans", "res_keys")
            """Whether `spans` was made before ADR 0026: rows written then carry their
            resource's attributes (`res_keys`, ...), which search reads too."""
        except ClickHouseUnavailableError:  # a shard not reached yet: its first read tells
            self._legacy = True
            self._inline_resources = False

    def write_spans(self, spans: Sequence[Span]) -> None:
        if spans:
            self.write_encoded([encode_spans(spans)])

    def write_encoded(self, encoded: Sequence[EncodedClickHouseSpans]) -> None:
        """Insert encoded batches, all in one insert per table."""
        batches = [batch for batch in encoded if len(batch)]
        if not batches:
            return
        rows = concat(batches)
        self._write_resources(rows)
        # The trace-id table first: a span found by search can then always be fetched.
        self._conn.insert_native("trace_spans", rows.native(BY_TRACE))
        self._conn.insert_native("spans", rows.native(SEARCH))

    def _write_resources(self, rows: EncodedClickHouseSpans) -> None:
        """The `resources` rows for the days of `rows` this store has not written yet,
        before the spans that name them (so a search never misses a stored span's
        resource). A row's `time_ns` is a start of one of its spans, so its `day` is
        theirs by the same DEFAULT; days outside the DEFAULT's range are written every
        time (their day is not the time's own)."""
        columns = rows.native(("start_ns", "resource"))
        start, fingerprint = columns["start_ns"], columns["resource"]
        assert isinstance(start, Numbers) and isinstance(fingerprint, Numbers)
        days = start.array // DAY_NS
        wanted: list[tuple[int, int, int]] = []  # (day, fingerprint, a start of that day)
        for day in np.unique(days).tolist():  # usually one
            on_day = np.flatnonzero(days == day)
            distinct, first = np.unique(fingerprint.array[on_day], return_index=True)
            wanted += [
                (day, fp, int(start.array[row]))
                for fp, row in zip(distinct.tolist(), on_day[first].tolist(), strict=True)
                if fp and (day, fp) not in self._written
            ]
        if not wanted:
            return
        place = {fp: n for n, fp in enumerate(rows.resources.fingerprints)}
        taken = rows.resources.take(np.array([place[fp] for _, fp, _ in wanted], np.int64))
        taken["time_ns"] = Numbers(np.array([ns for _, _, ns in wanted], np.int64))
        self._conn.insert_native(RESOURCES, taken)
        if len(self._written) > _MAX_NOTED:
            self._written = set()
        self._written.update((day, fp) for day, fp, ns in wanted if 0 <= ns < DAYS_END_NS)

    def forget_resources(self) -> None:
        """Write every resource again from the next batch on (after retention dropped days,
        or anything else that may have removed `resources` rows)."""
        self._written = set()

    def get_trace(self, trace_id: str) -> list[Span]:
        return self.get_traces([trace_id]).get(trace_id, [])

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        keys = {trace_id: key for trace_id in trace_ids if (key := trace_key(trace_id))}
        found: dict[tuple[int, int], list[Span]] = defaultdict(list)
        wanted = list(dict.fromkeys(keys.values()))
        for chunk in range(0, len(wanted), _KEYS_PER_QUERY):
            params = {"keys": tuple(wanted[chunk : chunk + _KEYS_PER_QUERY])}
            where = " WHERE (trace_hi, trace_lo) IN %(keys)s"
            for hi, lo, start, payload in self._conn.rows(
                f"SELECT trace_hi, trace_lo, start_ns, span FROM {self._db}.trace_spans" + where,
                params,
                binary=True,
            ):
                found[(hi, lo)].append(unpack(hi, lo, start, payload))
            for row in self._legacy_rows(
                f"SELECT {_LEGACY} FROM {self._db}.{LEGACY_BY_TRACE}" + where, params
            ):
                found[(row[0], row[1])].append(_legacy_span(row))
        return {
            trace_id: sorted(found[key], key=trace_order)
            for trace_id, key in keys.items()
            if key in found
        }

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        conditions, params = _span_conditions(
            query.start_ns, query.end_ns, query.service, query.operation, query.kind, query.status
        )
        if query.errors_only:
            conditions.append(f"status = {int(StatusCode.ERROR)}")
        if query.min_duration_ns:
            conditions.append(f"duration_ns >= {int(query.min_duration_ns)}")
        if query.max_duration_ns:
            conditions.append(f"duration_ns <= {int(query.max_duration_ns)}")
        days = day_range(query.start_ns, query.end_ns)
        for index in range(len(query.attributes)):
            conditions.append(self._attr_condition(index, days))
        params.update(attr_params(query.attributes))
        limit = max(0, int(query.limit))
        if not limit:
            return []
        # Ranked by the trace's first span, which need not be a matching one, so not from
        # `spans` alone. A trace's first span is no later than its newest matching one, so
        # the traces are taken by their newest matching span, `wanted` at a time, and their
        # first spans looked up in `trace_spans`: once the traces not taken have newest
        # matching spans (so first spans) earlier than the `limit`-th first span found, no
        # other trace can rank among the first `limit`. Usually the first round does it;
        # ranking every matching trace read the whole trace-id table (thousands of traces
        # over an hour, each in its own granule).
        first: dict[tuple[int, int], int] = {}
        wanted = 2 * limit
        while True:
            newest = self._conn.rows(
                f"SELECT trace_hi, trace_lo, max(start_ns) AS newest FROM {self._db}.spans"
                f" WHERE {' AND '.join(conditions)} GROUP BY trace_hi, trace_lo"
                f" ORDER BY newest DESC, trace_hi DESC, trace_lo DESC LIMIT {wanted}",
                params,
            )
            first.update(
                self.first_starts([(hi, lo) for hi, lo, _ in newest if (hi, lo) not in first])
            )
            ranked = sorted(first, key=lambda key: (first[key], key), reverse=True)[:limit]
            if len(newest) < wanted or (len(ranked) == limit and newest[-1][2] < first[ranked[-1]]):
                return [hex128(hi, lo) for hi, lo in ranked]
            wanted *= 4

    def _attr_condition(self, index: int, days: str) -> str:
        """SQL true when the span's own attribute `%(k{index})s` or its resource's has the
        text `%(v{index})s` (as Jaeger matches span and process tags): the resource's by its
        fingerprint in `resources` (on each shard its own rows, of the days `days` selects:
        a span's resource has a row on the span's day, ADR 0026), and in the resource
        columns of rows written before (`_inline_resources`)."""
        inline = f" OR {attr_equal('res', index)}" if self._inline_resources else ""
        return (
            f"({attr_equal('attr', index)} OR resource IN (SELECT fingerprint"
            f" FROM {self._db}.{RESOURCES} WHERE {attr_equal('res', index)}{days}){inline})"
        )

    def first_starts(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The start of each trace's first span (of every span stored, matching or not)."""
        out: dict[tuple[int, int], int] = {}
        sql = (
            "SELECT trace_hi, trace_lo, min(start_ns) FROM {table}"
            " WHERE (trace_hi, trace_lo) IN %(keys)s GROUP BY trace_hi, trace_lo"
        )
        for chunk in range(0, len(keys), _KEYS_PER_QUERY):
            params = {"keys": tuple(keys[chunk : chunk + _KEYS_PER_QUERY])}
            for hi, lo, start in [
                *self._conn.rows(sql.format(table=f"{self._db}.trace_spans"), params),
                *self._legacy_rows(sql.format(table=f"{self._db}.{LEGACY_BY_TRACE}"), params),
            ]:
                out[(hi, lo)] = min(start, out.get((hi, lo), start))
        return out

    def _legacy_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of a query on the older trace-id table; none once it is gone (dropped by
        hand after retention emptied it: reads then stop asking)."""
        if not self._legacy:
            return []
        try:
            return self._conn.rows(sql, params)
        except ServerException as error:
            if error.code != ErrorCodes.UNKNOWN_TABLE:
                raise
            self._legacy = False
            return []

    def span_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        rows = self._conn.rows(
            f"SELECT service, count() FROM {self._db}.spans"
            " WHERE start_ns >= %(start)s AND start_ns < %(end)s GROUP BY service",
            {"start": start_ns, "end": end_ns},
        )
        return {service: int(count) for service, count in rows}

    def exemplars(self, query: ExemplarQuery) -> list[SpanExemplar]:
        conditions, params = _span_conditions(
            query.start_ns, query.end_ns, query.service, query.name, query.kind, query.status
        )
        order = (
            " ORDER BY service, kind, name, status, slot, duration_ns DESC, start_ns,"
            " trace_hi, trace_lo, span_id LIMIT 1 BY service, kind, name, status, slot"
        )
        # LIMIT BY twice: over Distributed tables (ADR 0015) the inner one runs on each
        # shard, and 18.16 does not apply it again to the merged rows.
        rows = self._conn.rows(
            "SELECT service, kind, name, status, start_ns, duration_ns, trace_hi, trace_lo,"
            " span_id, slot FROM (SELECT service, kind, name, status, start_ns, duration_ns,"
            " trace_hi, trace_lo, span_id,"
            f" intDiv(start_ns - %(start)s, {int(query.interval_ns)}) AS slot"
            f" FROM {self._db}.spans WHERE {' AND '.join(conditions)}{order})"
            f"{order} LIMIT {max(0, int(query.limit))}",
            params,
        )
        return [
            SpanExemplar(service, name, SpanKind(kind), StatusCode(status), start, duration,
                         hex128(hi, lo), hex64(span_id))
            for service, kind, name, status, start, duration, hi, lo, span_id, _ in rows
        ]  # fmt: skip
