"""The tables of the DuckDB store.

Two access paths for traces, as in ClickHouse-based trace stores:
- search: `spans` is appended in arrival order, which is roughly start-time order, so DuckDB's
  per-row-group min/max (zonemaps) on `start_ns` prune a time-range scan to the right row
  groups; service/name are dictionary-compressed strings, attributes key/value lists.
- by id: `trace_index` holds one small row per (trace, write) with the trace's start range; a
  lookup finds its rows through an ART index on `trace_lo` (a point lookup instead of a scan of
  the whole index: 0.5 vs 1.8 ms at 1.2M traces), then reads `spans` inside that start range,
  which the `start_ns` zonemaps narrow to a row group or two. DuckDB uses the ART index only
  for `trace_lo = v` or `trace_lo IN (...)` alone (adding `AND trace_hi = ?` makes it a scan),
  so `trace_hi` is checked on the rows found. Search ranks traces by their start from the same
  index (store/duckdb/trace_search.py).
Ids are unsigned integers (a trace id is two UBIGINT halves), not 32-char strings. Resources
repeat on every span of a process, so they are stored once in `resources`, keyed by a hash.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

ATTRS = "attr_keys VARCHAR[], attr_values VARCHAR[], attr_types VARCHAR"
EVENT = f"STRUCT(time_ns BIGINT, name VARCHAR, {ATTRS})"
LINK = f"STRUCT(trace_hi UBIGINT, trace_lo UBIGINT, span_id UBIGINT, {ATTRS})"

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    f"""CREATE TABLE IF NOT EXISTS spans (
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
        {ATTRS},
        events {EVENT}[],
        links {LINK}[],
        resource_id UBIGINT NOT NULL,
        scope_name VARCHAR NOT NULL,
        scope_version VARCHAR NOT NULL,
        trace_state VARCHAR NOT NULL,
        flags UINTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS trace_index (
        trace_hi UBIGINT NOT NULL,
        trace_lo UBIGINT NOT NULL,
        min_start BIGINT NOT NULL,
        max_start BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS trace_index_lo ON trace_index (trace_lo)",
    f"""CREATE TABLE IF NOT EXISTS resources (
        resource_id UBIGINT NOT NULL,
        {ATTRS}
    )""",
    f"""CREATE TABLE IF NOT EXISTS logs (
        time_ns BIGINT NOT NULL,
        service VARCHAR NOT NULL,
        severity UTINYINT NOT NULL,
        severity_text VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        trace_hi UBIGINT NOT NULL,
        trace_lo UBIGINT NOT NULL,
        span_id UBIGINT NOT NULL,
        access BOOLEAN NOT NULL,
        {ATTRS},
        resource_id UBIGINT NOT NULL
    )""",
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
    """CREATE TABLE IF NOT EXISTS samples (
        series_id UINTEGER NOT NULL,
        time_ns BIGINT NOT NULL,
        value DOUBLE NOT NULL,
        type VARCHAR NOT NULL,
        help VARCHAR NOT NULL,
        unit VARCHAR NOT NULL,
        bounds DOUBLE[],
        counts UBIGINT[],
        hist_sum DOUBLE,
        hist_count UBIGINT
    )""",
    # Added after version 1 (files written before get them empty, read as "unknown"): the
    # series' start time and the exponential histogram of span durations (ADR 0010).
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS start_ns BIGINT",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_scale TINYINT",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_offset INTEGER",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_counts UBIGINT[]",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_zero UBIGINT",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_min DOUBLE",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS exp_max DOUBLE",
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
