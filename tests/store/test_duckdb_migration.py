"""A file written by an older schema version opens, is migrated in place, and reads back the
same spans, logs, resources and samples (version 1: attributes, events, links and buckets in
LIST columns; version 2: buckets as 8-byte BLOBs on every sample row; version 3: an ART index
on `trace_index`; version 4: resources keyed by their hash)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from meshscope.model.attributes import AttrValue
from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.model.spans import Span, SpanEvent, SpanLink
from meshscope.store.base import LogQuery, TraceQuery
from meshscope.store.codec import resource_id
from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.schema import MIGRATIONS, SCHEMA_VERSION
from meshscope.store.duckdb.storage import DuckDBStorage
from meshscope.store.duckdb.trace_locator import trace_key

_ATTRS = "attr_keys VARCHAR[], attr_values VARCHAR[], attr_types VARCHAR"
VERSION_1 = (
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
    f"""CREATE TABLE spans (start_ns BIGINT NOT NULL, duration_ns BIGINT NOT NULL,
        trace_hi UBIGINT NOT NULL, trace_lo UBIGINT NOT NULL, span_id UBIGINT NOT NULL,
        parent_id UBIGINT NOT NULL, service VARCHAR NOT NULL, name VARCHAR NOT NULL,
        kind UTINYINT NOT NULL, status_code UTINYINT NOT NULL, status_message VARCHAR NOT NULL,
        {_ATTRS}, events STRUCT(time_ns BIGINT, name VARCHAR, {_ATTRS})[],
        links STRUCT(trace_hi UBIGINT, trace_lo UBIGINT, span_id UBIGINT, {_ATTRS})[],
        resource_id UBIGINT NOT NULL, scope_name VARCHAR NOT NULL,
        scope_version VARCHAR NOT NULL, trace_state VARCHAR NOT NULL, flags UINTEGER NOT NULL)""",
    """CREATE TABLE trace_index (trace_hi UBIGINT NOT NULL, trace_lo UBIGINT NOT NULL,
        min_start BIGINT NOT NULL, max_start BIGINT NOT NULL)""",
    "CREATE INDEX trace_index_lo ON trace_index (trace_lo)",
    f"CREATE TABLE resources (resource_id UBIGINT NOT NULL, {_ATTRS})",
    f"""CREATE TABLE logs (time_ns BIGINT NOT NULL, service VARCHAR NOT NULL,
        severity UTINYINT NOT NULL, severity_text VARCHAR NOT NULL, body VARCHAR NOT NULL,
        trace_hi UBIGINT NOT NULL, trace_lo UBIGINT NOT NULL, span_id UBIGINT NOT NULL,
        access BOOLEAN NOT NULL, {_ATTRS}, resource_id UBIGINT NOT NULL)""",
    """CREATE TABLE series (series_id UINTEGER NOT NULL, name VARCHAR NOT NULL,
        labels STRUCT(name VARCHAR, value VARCHAR)[] NOT NULL)""",
    # As the first files had it, before `start_ns` and the exp_* columns were added.
    """CREATE TABLE samples (series_id UINTEGER NOT NULL, time_ns BIGINT NOT NULL,
        value DOUBLE NOT NULL, type VARCHAR NOT NULL, help VARCHAR NOT NULL,
        unit VARCHAR NOT NULL, bounds DOUBLE[], counts UBIGINT[], hist_sum DOUBLE,
        hist_count UBIGINT)""",
)
T0 = 1_700_000_000_000_000_000
RESOURCE: dict[str, AttrValue] = {"service.name": "cart", "replicas": 3}
RID = resource_id(RESOURCE)


def write_version_1(path: Path) -> None:
    con = duckdb.connect(str(path))
    for statement in VERSION_1:
        con.execute(statement)
    con.execute(
        "INSERT INTO spans VALUES (?, 5, 1, 2, 3, 0, 'cart', 'GET /', 2, 2, 'boom',"
        " ['http.status_code', 'odd\x1fkey', 'nothing'], ['500', 'x\x1ey', NULL], 'isn',"
        " [{'time_ns': ?, 'name': 'exception', 'attr_keys': ['line'], 'attr_values': ['12'],"
        "   'attr_types': 'i'}],"
        " [{'trace_hi': 18446744073709551615, 'trace_lo': 7, 'span_id': 8,"
        "   'attr_keys': [], 'attr_values': [], 'attr_types': ''}],"
        " ?, 'scope', '1.0', 'k=v', 1)",
        [T0, T0 + 1, RID],
    )
    con.execute(
        "INSERT INTO spans VALUES (?, 5, 1, 2, 4, 3, 'cart', 'child', 1, 0, '', [], [], '',"
        " [], [], 0, '', '', '', 0)",
        [T0 + 2],
    )
    con.execute("INSERT INTO trace_index VALUES (1, 2, ?, ?)", [T0, T0 + 2])
    con.execute(
        "INSERT INTO resources VALUES (?, ['service.name', 'replicas'], ['cart', '3'], 'si')",
        [RID],
    )
    con.execute(
        "INSERT INTO logs VALUES (?, 'cart', 17, 'ERROR', 'failed', 1, 2, 3, false,"
        " ['user'], ['ann'], 's', ?)",
        [T0 + 3, RID],
    )
    con.execute("INSERT INTO series VALUES (0, 'lat', [{'name': 'job', 'value': 'a'}])")
    con.execute("INSERT INTO series VALUES (1, 'up', [])")
    con.execute(
        "INSERT INTO samples VALUES (0, ?, 0, 'histogram', '', '', [0.1, 1.5],"
        " [2, 3, 18446744073709551615], 4.5, 5),"
        " (1, ?, 1, 'gauge', '', '', NULL, NULL, NULL, NULL)",
        [T0, T0],
    )
    con.close()


def test_a_version_1_file_is_migrated_and_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    write_version_1(path)
    storage = DuckDBStorage(path)
    try:
        trace_id = f"{1:016x}{2:016x}"
        spans = {span.span_id: span for span in storage.traces.get_trace(trace_id)}
        root = spans[f"{3:016x}"]
        assert root.attributes == {"http.status_code": 500, "odd\x1fkey": "x\x1ey", "nothing": None}
        assert root.events == (SpanEvent(T0 + 1, "exception", {"line": 12}),)
        assert root.links == (SpanLink(f"{2**64 - 1:016x}{7:016x}", f"{8:016x}", {}),)
        assert root.resource == RESOURCE and root.trace_state == "k=v"
        assert spans[f"{4:016x}"].attributes == {} and spans[f"{4:016x}"].events == ()
        for wanted, found in [
            ({"http.status_code": "500"}, [trace_id]),
            ({"odd\x1fkey": "x\x1ey"}, [trace_id]),
            ({"replicas": "3"}, [trace_id]),  # the resource's
            ({"nothing": ""}, []),
        ]:
            query = TraceQuery(service="cart", attributes=wanted, start_ns=T0 - 1, end_ns=T0 + 10)
            assert storage.traces.find_trace_ids(query) == found, wanted
        logs = LogQuery(attributes={"user": "ann"}, start_ns=T0 - 1, end_ns=T0 + 10)
        (record,) = storage.logs.find_logs(logs)
        assert record.body == "failed" and record.resource == RESOURCE
        assert record.trace_id == trace_id
        (histogram,) = storage.metrics.select_histograms("lat", [], T0 - 1, T0 + 1)
        assert histogram.bounds == (0.1, 1.5)
        assert histogram.counts.tolist() == [[2, 3, 2**64 - 1]]
        assert histogram.sum.tolist() == [4.5] and histogram.count.tolist() == [5]
        ((point,),) = [s.samples for s in storage.metrics.select("lat", [], T0 - 1, T0 + 1)]
        assert point.histogram is not None and point.histogram.counts == (2, 3, 2**64 - 1)
        assert point.start_ns == 0 and point.exp_histogram is None
        ((up,),) = [s.samples for s in storage.metrics.select("up", [], T0 - 1, T0 + 1)]
        assert up.value == 1 and up.histogram is None
    finally:
        storage.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION),)
    # Version 4: no ART index left (the trace locator replaces it), the index keyed by the
    # id's `trace_key`, computed in SQL as in Python.
    assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone() == (0,)
    columns = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'trace_index'"
    )
    assert [row[0] for row in columns.fetchall()] == ["trace_key", "min_start", "max_start"]
    assert con.execute("SELECT * FROM trace_index").fetchall() == [(trace_key(1, 2), T0, T0 + 2)]
    # Version 5: the resource numbered, its rows carrying the number (0: no resource).
    assert con.execute("SELECT resource_id, resource_hash FROM resources").fetchall() == [(1, RID)]
    numbers = con.execute("SELECT span_id, resource_id FROM spans ORDER BY 1").fetchall()
    assert numbers == [(3, 1), (4, 0)]
    assert con.execute("SELECT resource_id FROM logs").fetchall() == [(1,)]
    con.close()
    # Written after the migration: the same resource keeps its number, a new one is next.
    storage = DuckDBStorage(path)
    try:
        other: dict[str, AttrValue] = {"service.name": "pay"}
        storage.traces.write_spans(
            [Span(f"{9:032x}", f"{i:016x}", "op", "x", T0, T0 + 1, resource=r)
             for i, r in ((1, RESOURCE), (2, other))]
        )  # fmt: skip
        assert [s.resource for s in storage.traces.get_trace(f"{9:032x}")] == [RESOURCE, other]
    finally:
        storage.close()
    con = duckdb.connect(str(path))
    rows = con.execute("SELECT resource_id, resource_hash FROM resources ORDER BY 1").fetchall()
    assert rows == [(1, RID), (2, resource_id(other))]


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(ValueError, match="schema version"):
        Database(path)


def write_version_2(path: Path) -> None:
    """A version-2 file: version 1's, migrated by version 1's own step, plus samples with
    exponential histograms and bounds that change within a series (8-byte BLOBs)."""
    write_version_1(path)
    con = duckdb.connect(str(path))
    con.execute("BEGIN")
    for step in MIGRATIONS[1]:
        con.execute(step) if isinstance(step, str) else step(con)
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.execute("COMMIT")
    floats = np.dtype("<f8")
    uints = np.dtype("<u8")
    con.execute(
        "INSERT INTO samples (series_id, time_ns, value, type, help, unit, bounds, counts,"
        " hist_sum, hist_count, start_ns, exp_scale, exp_offset, exp_counts, exp_zero,"
        " exp_min, exp_max) VALUES (0, ?, 0, 'histogram', 'Latency', 's', ?, ?, 9.0, 7, ?,"
        " 4, -3, ?, 1, 0.5, 3.25)",
        [
            T0 + 1,
            np.array([0.25], floats).tobytes(),
            np.array([3, 2**40], uints).tobytes(),
            T0 - 5,
            np.array([1, 0, 70000], uints).tobytes(),
        ],
    )
    con.close()


def test_a_version_2_file_gets_compact_samples_and_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    write_version_2(path)
    storage = DuckDBStorage(path)
    try:
        first, second = storage.metrics.select_histograms("lat", [], T0 - 1, T0 + 2)
        assert (first.bounds, first.counts.tolist()) == ((0.1, 1.5), [[2, 3, 2**64 - 1]])
        assert (second.bounds, second.counts.tolist()) == ((0.25,), [[3, 2**40]])
        ((old, new),) = [s.samples for s in storage.metrics.select("lat", [], T0 - 1, T0 + 2)]
        assert old.histogram == Histogram((0.1, 1.5), (2, 3, 2**64 - 1), 4.5, 5)
        assert new.histogram == Histogram((0.25,), (3, 2**40), 9.0, 7)
        assert (new.help, new.unit, new.start_ns) == ("Latency", "s", T0 - 5)
        assert new.exp_histogram == ExpHistogram(4, -3, (1, 0, 70000), 1, 0.5, 3.25)
        # Written after the migration: the same bounds keep their id, new ones get one.
        storage.metrics.write_points(
            [
                MetricPoint(
                    "lat", (("job", "a"),), T0 + 2, MetricType.HISTOGRAM, 0,
                    Histogram((0.25,), (1, 1), 1.0, 2),
                ),
                MetricPoint(
                    "lat", (("job", "b"),), T0 + 2, MetricType.HISTOGRAM, 0,
                    Histogram((5.0,), (0, 1), 6.0, 1),
                ),
            ]
        )  # fmt: skip
    finally:
        storage.close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT count(*) FROM histogram_bounds").fetchall() == [(3,)]
    con.close()
    reopened = DuckDBStorage(path)
    try:
        found = reopened.metrics.select_histograms("lat", [], T0 + 2, T0 + 2)
        assert [(h.bounds, h.counts.tolist()) for h in found] == [
            ((0.25,), [[1, 1]]),
            ((5.0,), [[0, 1]]),
        ]
    finally:
        reopened.close()


def test_a_version_4_file_gets_event_offsets_as_integers(tmp_path: Path) -> None:
    """Version 4 kept every event's offset in `event_times` (text); version 5 moves the first
    to `event_offset`. The version-4 file is made from a current one, taken back a version."""
    path = tmp_path / "v4.duckdb"
    spans = [
        Span(f"{1:032x}", f"{i + 1:016x}", "op", "svc", T0 + i, T0 + 100,
             events=tuple(SpanEvent(T0 + i + 10 * k, f"e{k}", {}) for k in range(n)))
        for i, n in enumerate((0, 1, 3))
    ]  # fmt: skip
    storage = DuckDBStorage(path)
    storage.traces.write_spans(spans)
    storage.close()
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE spans SET event_times = CASE WHEN event_times IS NULL"
        " THEN CAST(event_offset AS VARCHAR) ELSE event_offset || ',' || event_times END"
    )
    assert con.execute("SELECT event_times FROM spans ORDER BY span_id").fetchall() == [
        (None,), ("0",), ("0,10,20",)
    ]  # fmt: skip
    for statement in (
        "ALTER TABLE spans DROP COLUMN event_offset",
        "ALTER TABLE resources DROP COLUMN resource_hash",
        "INSERT INTO trace_index SELECT * FROM trace_index_recent",
        "DROP TABLE trace_index_recent",
        "UPDATE meta SET value = '4' WHERE key = 'schema_version'",
    ):
        con.execute(statement)
    con.close()
    migrated = DuckDBStorage(path)
    try:
        assert migrated.traces.get_trace(f"{1:032x}") == spans
    finally:
        migrated.close()
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT event_offset, event_times FROM spans ORDER BY span_id").fetchall()
    assert rows == [(None, None), (0, None), (0, "10,20")]
