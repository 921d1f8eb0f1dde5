"""Spans in DuckDB: column-wise Arrow inserts, trace by id through the trace locator, searches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode
from meshscope.store.base import (
    MAX_TIME_NS,
    ExemplarQuery,
    SpanExemplar,
    TraceQuery,
    trace_order,
)
from meshscope.store.codec import hex64, hex128, id128
from meshscope.store.duckdb import trace_search
from meshscope.store.duckdb.database import Database, Txn
from meshscope.store.duckdb.exemplars import exemplars
from meshscope.store.duckdb.packed import unpack, unpack_events, unpack_json
from meshscope.store.duckdb.resources import Resources
from meshscope.store.duckdb.span_rows import EncodedSpans, encode_spans
from meshscope.store.duckdb.trace_locator import (
    SPILL_ENTRIES,
    TRACE_KEY_SQL,
    Run,
    Spill,
    TraceLocator,
    collapsed,
    trace_keys,
)

_CHUNK = 500  # trace ids per read
_INDEX_TABLES = ("trace_index", "trace_index_recent")
_INDEX_ROWS = " UNION ALL ".join(
    f"SELECT trace_key, min_start, max_start FROM {table}" for table in _INDEX_TABLES
)
_STRADDLE_NS = 60 * 10**9
"""How far past a retention cutoff the start of a trace cut by it is looked up in `spans`
(`expire_index`, under the write lock: at 45k spans/s at most ~2.7M rows, when one such
trace's spans run that long): one whose spans left start later is ranked as starting at the
cutoff."""
FOLD_ROWS = 250_000
"""`trace_index_recent` is folded into `trace_index` (one row per trace) once it holds this
many rows: ~7 s of writes at 45k spans/s when every write holds one span of a trace, long
enough for the spans a trace's services send within an SDK's batch delay (5 s by default)."""
# Ranges of start times closer than this are read as one: the rows between them are few
# (a row group holds minutes of spans at high rates) and one BETWEEN filters faster than many.
_GAP_NS = 60 * 10**9
_COLUMNS = """s.trace_hi, s.trace_lo, s.span_id, s.parent_id, s.name, s.service, s.start_ns,
    s.duration_ns, s.kind, s.status_code, s.status_message, s.attrs, s.attr_types, s.events,
    s.event_times, s.links, s.scope_name, s.scope_version, s.trace_state, s.flags, s.resource_id,
    s.event_offset"""
_RESOURCE = 20  # position of resource_id in _COLUMNS


class DuckDBTraceStore:
    def __init__(
        self,
        db: Database,
        resources: Resources,
        fold_rows: int = FOLD_ROWS,
        spill_entries: int = SPILL_ENTRIES,
    ) -> None:
        self._db = db
        self._resources = resources
        self._fold_rows = fold_rows
        self.locator = TraceLocator(
            [_stored_run(db, "trace_index")],
            [_stored_run(db, "trace_index_recent")],
            Spill(db.path.parent, spill_entries),
        )

    def write_spans(self, spans: Sequence[Span]) -> None:
        if spans:
            with self._db.transaction() as txn:
                self.insert(txn, spans)

    def insert(self, txn: Txn, spans: Sequence[Span]) -> None:
        if spans:
            self.insert_encoded(txn, [encode_spans(spans)])

    def insert_encoded(self, txn: Txn, encoded_spans: Sequence[EncodedSpans]) -> None:
        """Insert spans encoded by `encode_spans` (here or in an ingest worker), with the
        resources they name that the store has not seen, and their trace-index rows.

        The write's rows are grouped by trace (a stable sort on the trace key: a trace's spans
        keep their order), so DuckDB stores each trace id once per run of its spans (RLE)
        instead of 16 random bytes a span (ADR 0020); the write's rows stay together, so the
        `start_ns` zonemaps still follow arrival order."""
        if not sum(encoded.table.num_rows for encoded in encoded_spans):
            return  # none, or only empty selections (tail sampling makes them)
        table = self._resources.renumber(
            txn,
            pa.concat_tables([encoded.table for encoded in encoded_spans]),
            chain.from_iterable(encoded.resources for encoded in encoded_spans),
        )
        keys = trace_keys(table.column("trace_hi").to_numpy(), table.column("trace_lo").to_numpy())
        order = np.argsort(keys, kind="stable")
        table, keys = table.take(order), keys[order]
        txn.insert("spans", table)
        # One index row per trace in this write (the runs of equal keys), into
        # `trace_index_recent`; every `fold_rows` rows, those become one row per trace in
        # `trace_index`. Each service sends its own spans of a trace in its own writes, so
        # without folding most traces would keep a row per span (ADR 0020).
        starts = table.column("start_ns").to_numpy()
        index = collapsed(Run(keys, starts, starts))
        txn.insert("trace_index_recent", _index_table(index))
        locator, before = self.locator, self.locator.state
        txn.on_rollback.append(lambda: locator.restore(before))
        locator.add(*index)
        if locator.recent_entries >= self._fold_rows:
            txn.insert("trace_index", _index_table(locator.fold()))
            txn.con.execute("DELETE FROM trace_index_recent")  # sends the inserts first

    def expire_index(self, txn: Txn, before_ns: int) -> None:
        """After retention deleted the spans that start before `before_ns`: index rows whose
        spans are all gone are deleted; those whose oldest spans are gone start at their
        trace's oldest span left (a folded row spans several writes, so it cannot tell; search
        ranks by it), looked up in `spans` up to the latest such row's end or _STRADDLE_NS past
        the cutoff, else at the cutoff. The locator follows under the write lock, as at
        insert."""
        con = txn.con
        for table in _INDEX_TABLES:
            con.execute(f"DELETE FROM {table} WHERE max_start < ?", [before_ns])
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _starts AS"
            " WITH straddling AS (SELECT trace_key, max(max_start) AS last"
            f"   FROM ({_INDEX_ROWS}) WHERE min_start < $cutoff GROUP BY 1)"
            f" SELECT {TRACE_KEY_SQL} AS trace_key, min(start_ns) AS start FROM spans"
            " WHERE start_ns >= $cutoff"
            " AND start_ns <= least((SELECT max(last) FROM straddling), $until)"
            f" AND {TRACE_KEY_SQL} IN (SELECT trace_key FROM straddling) GROUP BY 1",
            {"cutoff": before_ns, "until": min(before_ns + _STRADDLE_NS, MAX_TIME_NS)},
        )
        for table in _INDEX_TABLES:
            con.execute(
                f"UPDATE {table} SET min_start = coalesce((SELECT start FROM _starts s"
                f" WHERE s.trace_key = {table}.trace_key), $cutoff) WHERE min_start < $cutoff",
                {"cutoff": before_ns},
            )
        starts = dict(con.execute("SELECT trace_key, start FROM _starts").fetchall())
        con.execute("DROP TABLE _starts")
        locator, before = self.locator, self.locator.state
        locator.expire(before_ns, starts)
        txn.on_rollback.append(lambda: locator.restore(before))

    def get_trace(self, trace_id: str) -> list[Span]:
        return self.get_traces([trace_id]).get(trace_id, [])

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        """One query for any number of ids: their start ranges from the locator, then the
        spans inside those ranges (merged where close, so `start_ns` zonemaps prune the scan)."""
        asked: dict[tuple[int, int], list[str]] = {}
        for trace_id in dict.fromkeys(trace_ids):
            key = _key(trace_id)
            if key is not None:
                asked.setdefault(key, []).append(trace_id)
        found: dict[tuple[int, int], list[Span]] = {}
        keys = list(asked)
        for chunk in range(0, len(keys), _CHUNK):
            found.update(self._read(keys[chunk : chunk + _CHUNK]))
        return {
            trace_id: found[key]
            for key, names in asked.items()
            if key in found
            for trace_id in names
        }

    def _read(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], list[Span]]:
        """Spans are sorted here (`trace_order`), not by an ORDER BY: a handful per trace.
        Most of a warm lookup (~2.5 ms at 10M spans) is DuckDB materializing the rows of one
        row group, whichever way they are addressed (by start range or by rowid)."""
        cursor = self._db.read()
        bounds = self.locator.ranges_of(keys)
        if not bounds:
            return {}
        ranges = " OR ".join(
            f"s.start_ns BETWEEN {first} AND {last}" for first, last in _merged(bounds.values())
        )
        where = f"({ranges}) AND s.trace_lo {_one_of(low for _, low in bounds)}"
        if len(bounds) == 1:
            where += f" AND s.trace_hi = {next(iter(bounds))[0]}"
        rows = cursor.execute(f"SELECT {_COLUMNS} FROM spans s WHERE {where}").fetchall()
        rows = [row for row in rows if (row[0], row[1]) in bounds]
        # One copy per resource and read (the cache's dicts stay private), shared by the
        # spans of that resource in this read.
        resources = {
            resource_id: dict(attributes)
            for resource_id, attributes in self._resources.attributes(
                [row[_RESOURCE] for row in rows]
            ).items()
        }
        out: dict[tuple[int, int], list[Span]] = {key: [] for key in keys if key in bounds}
        decoded: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            out[row[0], row[1]].append(_span(row, resources[row[_RESOURCE]], decoded))
        return {key: sorted(spans, key=trace_order) for key, spans in out.items() if spans}

    def exemplars(self, query: ExemplarQuery) -> list[SpanExemplar]:
        return exemplars(self._db.read(), query)

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        return trace_search.find_trace_ids(self._db.read(), query, self.locator)

    def span_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        rows = (
            self._db.read()
            .execute(
                "SELECT service, count(*) FROM spans WHERE start_ns >= ? AND start_ns < ?"
                " GROUP BY service ORDER BY service",
                [start_ns, end_ns],
            )
            .fetchall()
        )
        return dict(rows)


def _key(trace_id: str) -> tuple[int, int] | None:
    """(high, low) of a hex trace id; None when it is not one (or does not fit 128 bits)."""
    try:
        high, low = id128(trace_id)
    except ValueError:
        return None
    return (high, low) if 0 <= high < 1 << 64 and low >= 0 else None


def _one_of(values: Iterable[int]) -> str:
    """`= v` for one integer, `IN (v, ...)` for more (literals: the values are integers)."""
    unique = list(dict.fromkeys(values))
    if len(unique) == 1:
        return f"= {unique[0]}"
    return f"IN ({', '.join(str(value) for value in unique)})"


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Start ranges joined where they overlap or lie within `_GAP_NS` of each other."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first - out[-1][1] <= _GAP_NS:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


_KINDS = {int(kind): kind for kind in SpanKind}
_STATUSES = {int(status): status for status in StatusCode}


def _span(
    row: tuple[Any, ...],
    resource: dict[str, Any],
    decoded: dict[tuple[str, str], dict[str, Any]],
) -> Span:
    """`decoded`: the attributes of each distinct packed text met in this read (spans of one
    read share few distinct sets: ~110 among 500 spans of a search's 20 traces), each span
    getting its own (shallow) copy."""
    (t_hi, t_lo, span_id, parent, name, service, start, duration, kind, status, message) = row[:11]
    (attrs, types, events, event_times, links) = row[11:16]
    (scope, version, state, flags) = row[16:20]
    event_offset = row[21]
    attributes = decoded.get((attrs, types))
    if attributes is None:
        attributes = decoded[attrs, types] = unpack(attrs, types)
    return Span(
        trace_id=hex128(t_hi, t_lo),
        span_id=hex64(span_id),
        name=name,
        service=service,
        start_ns=start,
        end_ns=start + duration,
        parent_span_id=hex64(parent),
        kind=_KINDS[kind] if kind in _KINDS else SpanKind(kind),
        status_code=_STATUSES[status] if status in _STATUSES else StatusCode(status),
        status_message=message,
        attributes=dict(attributes),
        events=tuple(
            SpanEvent(*event) for event in unpack_events(events, event_offset, event_times, start)
        )
        if events
        else (),
        links=tuple(
            SpanLink(hex128(link["h"], link["l"]), hex64(link["s"]), link["attributes"])
            for link in unpack_json(links)
        )
        if links
        else (),
        resource=resource,
        scope_name=scope,
        scope_version=version,
        trace_state=state,
        flags=flags,
    )


def _index_table(run: Run) -> pa.Table:
    """Locator entries as rows of `trace_index` or `trace_index_recent`."""
    return pa.table(dict(zip(("trace_key", "min_start", "max_start"), run, strict=True)))


def _stored_run(db: Database, table: str) -> Run:
    """Every row of an index table, sorted for the locator (one scan at open: ~0.1 s per
    million)."""
    rows = db.read().sql(f"SELECT trace_key, min_start, max_start FROM {table}").to_arrow_table()
    keys, firsts, lasts = (rows.column(i).to_numpy() for i in range(3))
    return Run.of(keys, firsts, lasts)
