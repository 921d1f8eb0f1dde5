"""The tables of the DuckDB store.

Two access paths for traces, as in ClickHouse-based trace stores:
- search: `spans` is appended in arrival order, which is roughly start-time order, so DuckDB's
  per-row-group min/max (zonemaps) on `start_ns` prune a time-range scan to the right row
  groups; service/name are dictionary-compressed strings, attributes one packed string per row
  (store/duckdb/packed.py: no LIST columns, whose small appends DuckDB logs expensively).
  Within a write, rows are grouped by trace, so DuckDB stores a trace id once per run of its
  spans (RLE; ADR 0020); `access_logs` likewise.
- by id: `trace_index_recent` holds one small row per (trace, write): a 64-bit key of the
  trace id (trace_locator.trace_key) and the write's start range; every 250k rows they are
  folded into one `trace_index` row per trace. Both are read once at open into the trace
  locator (store/duckdb/trace_locator.py: sorted arrays in memory, ADR 0019), which gives a
  trace's start range without a query; the spans are then read inside that range, which the
  `start_ns` zonemaps narrow to a row group or two, and both id halves are checked on the rows
  found. Search ranks traces by their start from the same locator (trace_search.py). No ART
  index: DuckDB rewrites a whole ART at every checkpoint (duckdb/duckdb#24848).
Ids are unsigned integers (a trace id is two UBIGINT halves), not 32-char strings. Resources
repeat on every span of a process, so they are stored once in `resources`, under a small
number that `spans` and `logs` rows carry (resources.py).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa

from meshscope.store.duckdb.blobs import UINT, blobs, narrow
from meshscope.store.duckdb.packed import ESC, KV, NONE, SEP, sql_escape
from meshscope.store.duckdb.trace_locator import TRACE_KEY_SQL

SCHEMA_VERSION = 5
"""1: attributes, events, links and histogram buckets in LIST columns; 2: packed text and
BLOBs (store/duckdb/packed.py, blobs.py); 3: compact samples (bucket bounds once per distinct
set in `histogram_bounds`, counts in narrow BLOBs, metadata only where not the family's);
4: `trace_index` keyed by `trace_key` (a mix of both id halves), without its ART index (the
trace locator, ADR 0019); 5: resources numbered (`resource_id` a small number, the content
hash in `resource_hash`), `trace_index_recent`, `spans.event_offset` (ADR 0020)."""

# The tables whose layout changed in version 2, `{name}` to create them under another name
# while migrating (see MIGRATIONS).
SPANS = """CREATE TABLE IF NOT EXISTS {name} (
        start_ns BIGINT NOT NULL,
        duration_ns BIGINT NOT NULL,
        trace_hi UBIGINT NOT NULL,
        trace_lo UBIGINT NOT NULL,
        span_id UBIGINT NOT NULL,
        parent_id UBIGINT NOT NULL,
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        kind UTINYINT NOT NULL,
        status_code UTINYINT NOT NULL,
        status_message VARCHAR NOT NULL,
        attrs VARCHAR NOT NULL,
        attr_types VARCHAR NOT NULL,
        events VARCHAR,
        event_times VARCHAR,
        links VARCHAR,
        resource_id UBIGINT NOT NULL,
        scope_name VARCHAR NOT NULL,
        scope_version VARCHAR NOT NULL,
        trace_state VARCHAR NOT NULL,
        flags UINTEGER NOT NULL,
        event_offset BIGINT
    )"""
"""`event_offset`: the first event's time less the span's start, `event_times` the other
events' (text, joined by commas); NULL when there are none (packed.pack_events)."""
RESOURCES = """CREATE TABLE IF NOT EXISTS {name} (
        resource_id UBIGINT NOT NULL,
        attrs VARCHAR NOT NULL,
        attr_types VARCHAR NOT NULL,
        resource_hash UBIGINT
    )"""
"""`resource_id`: the number `spans` and `logs` rows carry (resources.py); `resource_hash`:
`codec.resource_id` of the attributes (NULL only inside version 4's migration)."""
LOGS = """CREATE TABLE IF NOT EXISTS {name} (
        time_ns BIGINT NOT NULL,
        service VARCHAR NOT NULL,
        severity UTINYINT NOT NULL,
        severity_text VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        trace_hi UBIGINT NOT NULL,
        trace_lo UBIGINT NOT NULL,
        span_id UBIGINT NOT NULL,
        access BOOLEAN NOT NULL,
        attrs VARCHAR NOT NULL,
        attr_types VARCHAR NOT NULL,
        resource_id UBIGINT NOT NULL
    )"""
SAMPLES_V2 = """CREATE TABLE IF NOT EXISTS {name} (
        series_id UINTEGER NOT NULL,
        time_ns BIGINT NOT NULL,
        value DOUBLE NOT NULL,
        type VARCHAR NOT NULL,
        help VARCHAR NOT NULL,
        unit VARCHAR NOT NULL,
        bounds BLOB,
        counts BLOB,
        hist_sum DOUBLE,
        hist_count UBIGINT,
        start_ns BIGINT,
        exp_scale TINYINT,
        exp_offset INTEGER,
        exp_counts BLOB,
        exp_zero UBIGINT,
        exp_min DOUBLE,
        exp_max DOUBLE
    )"""
"""Version 2's samples (the target of version 1's migration)."""
SAMPLES = """CREATE TABLE IF NOT EXISTS {name} (
        series_id UINTEGER NOT NULL,
        time_ns BIGINT NOT NULL,
        value DOUBLE NOT NULL,
        type VARCHAR,
        help VARCHAR,
        unit VARCHAR,
        bounds_id UINTEGER,
        counts BLOB,
        hist_sum DOUBLE,
        hist_count UBIGINT,
        start_ns BIGINT,
        exp_scale TINYINT,
        exp_offset INTEGER,
        exp_counts BLOB,
        exp_zero UBIGINT,
        exp_min DOUBLE,
        exp_max DOUBLE
    )"""
"""A metric flush writes every active series (hundreds of rows every 15 s whatever the span
rate), so a row holds only what is its own: `type`, `help`, `unit` are NULL when they are
the family's (`metric_families`); a histogram's bounds are a `histogram_bounds` id, its
`counts` and `exp_counts` narrow BLOBs (blobs.py: a width byte, then 1-8 bytes a count);
`counts` is NULL for a sample without buckets. `start_ns` is the series' start time, `exp_*`
the exponential histogram of span durations (ADR 0010): NULL in rows written before they
existed."""
HISTOGRAM_BOUNDS = """CREATE TABLE IF NOT EXISTS histogram_bounds (
        bounds_id UINTEGER NOT NULL,
        bounds BLOB NOT NULL
    )"""

TRACE_INDEX = """CREATE TABLE IF NOT EXISTS {name} (
        trace_key UBIGINT NOT NULL,
        min_start BIGINT NOT NULL,
        max_start BIGINT NOT NULL
    )"""

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    SPANS.format(name="spans"),
    TRACE_INDEX.format(name="trace_index"),
    TRACE_INDEX.format(name="trace_index_recent"),  # the latest writes' rows (traces.py)
    RESOURCES.format(name="resources"),
    LOGS.format(name="logs"),
    """CREATE TABLE IF NOT EXISTS series (
        series_id UINTEGER NOT NULL,
        name VARCHAR NOT NULL,
        labels STRUCT(name VARCHAR, value VARCHAR)[] NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS metric_families (
        seq UINTEGER NOT NULL,
        name VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        help VARCHAR NOT NULL,
        unit VARCHAR NOT NULL
    )""",
    SAMPLES.format(name="samples"),
    HISTOGRAM_BOUNDS,
    """CREATE TABLE IF NOT EXISTS services (
        position UINTEGER NOT NULL,
        service VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS operations (
        position UINTEGER NOT NULL,
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        kind UTINYINT NOT NULL
    )""",
)


def _packed(keys: str, values: str) -> str:
    """SQL packing the version-1 lists `keys` and `values` as `packed.pack_columns` does."""
    key = sql_escape(f"{keys}[i]")
    value = (
        f"CASE WHEN {values}[i] IS NULL THEN chr({ord(ESC)}) || '{NONE[1]}'"
        f" ELSE {sql_escape(f'{values}[i]')} END"
    )
    entry = f"{key} || chr({ord(KV)}) || {value} || chr({ord(KV)})"
    return (
        f"CASE WHEN coalesce(len({keys}), 0) = 0 THEN '' ELSE array_to_string("
        f"list_transform(range(1, len({keys}) + 1), lambda i: {entry}), chr({ord(SEP)})) END"
    )


def _json(column: str, fields: str) -> str:
    """SQL turning a version-1 list of event or link structs into `packed._json_column`'s
    JSON text (`fields`: the struct's own fields as `'t': x.time_ns, ...`)."""
    attrs = _packed("x.attr_keys", "x.attr_values")
    item = f"{{{fields}, 'a': {attrs}, 'y': coalesce(x.attr_types, '')}}"
    return (
        f"CASE WHEN coalesce(len({column}), 0) = 0 THEN NULL"
        f" ELSE CAST(to_json(list_transform({column}, lambda x: {item})) AS VARCHAR) END"
    )


_OLD_ATTRS = "attr_keys, attr_values, attr_types"
_ATTRS = f"{_packed('attr_keys', 'attr_values')} AS attrs, coalesce(attr_types, '') AS attr_types"
_EVENTS = _json("events", "'n': x.name")
_EVENT_TIMES = (
    "CASE WHEN coalesce(len(events), 0) = 0 THEN NULL ELSE array_to_string("
    "list_transform(events, lambda x: CAST(x.time_ns - start_ns AS VARCHAR)), ',') END"
)
_LINKS = _json("links", "'h': x.trace_hi, 'l': x.trace_lo, 's': x.span_id")


def _rebuild(table: str, ddl: str, columns: str, version: int = 2) -> tuple[str, ...]:
    """Copy `table` into its new layout (of schema `version`) in row order (zonemaps follow
    arrival order); dropping the old table drops its indexes."""
    new = f"{table}_v{version}"
    return (
        ddl.format(name=new),
        f"INSERT INTO {new} BY NAME SELECT {columns} FROM {table} ORDER BY rowid",
        f"DROP TABLE {table}",
        f"ALTER TABLE {new} RENAME TO {table}",
    )


def _samples_to_blobs(con: duckdb.DuckDBPyConnection) -> None:
    """Copy `samples` into `samples_v2` in row order, bucket lists turned into BLOBs (DuckDB's
    SQL cannot write a double's bytes, so this step runs through Arrow), 64k rows at a time."""
    ((low, high),) = con.execute("SELECT min(rowid), max(rowid) FROM samples").fetchall()
    if low is None:
        return
    step = 1 << 16
    for first in range(low, high + 1, step):
        batch = con.sql(
            f"SELECT * FROM samples WHERE rowid >= {first} AND rowid < {first + step}"
            " ORDER BY rowid"
        ).to_arrow_table()
        for name in ("bounds", "counts", "exp_counts"):
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, name, blobs(pa.concat_arrays(batch[name].chunks)))
        con.register("_samples_batch", batch)
        con.execute("INSERT INTO samples_v2 BY NAME SELECT * FROM _samples_batch")
        con.unregister("_samples_batch")


def _compact_samples(con: duckdb.DuckDBPyConnection) -> None:
    """Copy version-2 `samples` into `samples_v3` in row order: bounds BLOBs become ids in
    `histogram_bounds`, 8-byte counts narrow BLOBs (metadata stays on every row: a row's own
    values are as good as the family's)."""
    ((low, high),) = con.execute("SELECT min(rowid), max(rowid) FROM samples").fetchall()
    if low is None:
        return
    ids: dict[bytes, int] = {}
    step = 1 << 16
    for first in range(low, high + 1, step):
        batch = con.sql(
            f"SELECT * FROM samples WHERE rowid >= {first} AND rowid < {first + step}"
            " ORDER BY rowid"
        ).to_arrow_table()
        bounds = [ids.setdefault(b, len(ids)) if b is not None else None
                  for b in batch.column("bounds").to_pylist()]  # fmt: skip
        batch = batch.drop_columns(["bounds"]).append_column(
            "bounds_id", pa.array(bounds, pa.uint32())
        )
        for name in ("counts", "exp_counts"):
            column = [None if c is None else narrow(np.frombuffer(c, UINT))
                      for c in batch.column(name).to_pylist()]  # fmt: skip
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, name, pa.array(column, pa.binary()))
        con.register("_samples_batch", batch)
        con.execute("INSERT INTO samples_v3 BY NAME SELECT * FROM _samples_batch")
        con.unregister("_samples_batch")
    table = pa.table(
        {
            "bounds_id": pa.array(list(ids.values()), pa.uint32()),
            "bounds": pa.array(list(ids), pa.binary()),
        }
    )
    con.register("_bounds", table)
    con.execute("INSERT INTO histogram_bounds BY NAME SELECT * FROM _bounds")
    con.unregister("_bounds")


Migration = str | Callable[[duckdb.DuckDBPyConnection], None]

MIGRATIONS: dict[int, tuple[Migration, ...]] = {
    1: (
        "DROP VIEW IF EXISTS all_logs",  # recreated at every open (access_logs.STATEMENTS)
        *_rebuild(
            "spans",
            SPANS,
            f"* EXCLUDE ({_OLD_ATTRS}, events, links), {_ATTRS},"
            f" {_EVENTS} AS events, {_EVENT_TIMES} AS event_times, {_LINKS} AS links",
        ),
        *_rebuild("resources", RESOURCES, f"* EXCLUDE ({_OLD_ATTRS}), {_ATTRS}"),
        *_rebuild("logs", LOGS, f"* EXCLUDE ({_OLD_ATTRS}), {_ATTRS}"),
        # Columns version 1 gained over time, absent from its oldest files.
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS start_ns BIGINT",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_scale TINYINT",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_offset INTEGER",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_counts UBIGINT[]",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_zero UBIGINT",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_min DOUBLE",
        "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_max DOUBLE",
        SAMPLES_V2.format(name="samples_v2"),
        _samples_to_blobs,
        "DROP TABLE samples",
        "ALTER TABLE samples_v2 RENAME TO samples",
    ),
    2: (
        SAMPLES.format(name="samples_v3"),
        HISTOGRAM_BOUNDS,
        _compact_samples,
        "DROP TABLE samples",
        "ALTER TABLE samples_v3 RENAME TO samples",
    ),
    3: _rebuild(
        "trace_index", TRACE_INDEX, f"{TRACE_KEY_SQL} AS trace_key, min_start, max_start", version=4
    ),
    4: (
        # Until version 4 a resource's id was its hash; the rows keep their resource, under
        # its number (1.1 s for 10M spans and 5M logs).
        "ALTER TABLE resources ADD COLUMN IF NOT EXISTS resource_hash UBIGINT",
        "UPDATE resources SET resource_hash = resource_id",
        "CREATE TEMP TABLE _numbers AS SELECT hash, row_number() OVER (ORDER BY hash) :: UBIGINT"
        " AS number FROM (SELECT DISTINCT resource_hash AS hash FROM resources)",
        *(
            f"UPDATE {table} SET resource_id = n.number FROM _numbers n"
            f" WHERE {table}.{column} = n.hash"
            for table, column in (
                ("resources", "resource_hash"),
                ("spans", "resource_id"),
                ("logs", "resource_id"),
            )
        ),
        "DROP TABLE _numbers",
        # The first event's offset moves to an integer column (packed.pack_events).
        "ALTER TABLE spans ADD COLUMN IF NOT EXISTS event_offset BIGINT",
        "UPDATE spans SET event_offset = CAST(split_part(event_times, ',', 1) AS BIGINT),"
        " event_times = CASE WHEN contains(event_times, ',')"
        " THEN substr(event_times, strpos(event_times, ',') + 1) END"
        " WHERE event_times IS NOT NULL",
    ),
}
"""Per schema version, the statements that bring a file of that version to the next (run in
one transaction when the file is opened)."""
