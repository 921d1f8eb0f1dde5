"""The tables (ADR 0011), generated for a server profile chosen from the server's version.

Every table has a `day` Date column (UTC) and daily partitions, so retention drops whole
days. Ids are UInt64 halves; attributes are parallel key/value arrays plus one type letter
per entry (store/codec.py), which restore the Python types on reading. `seq` is the
write sequence (connection.py): ClickHouse keeps no insertion order, the protocols need it.
DEFAULT, not MATERIALIZED, for `day`: MATERIALIZED columns break inserts through Distributed
tables on 18.16 (scaleout.md, section 3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """What the DDL may use. `compat` runs on every server from 18.16 on; a modern profile
    (TTL with ttl_only_drop_parts, LowCardinality, ZSTD codecs, a bloom filter on the trace
    id) is the next step, checked on chdb (ADR 0011)."""

    name: str
    low_cardinality: bool = False

    def lc(self, column_type: str) -> str:
        """The type of a column with few distinct values (service, operation, metric name)."""
        return f"LowCardinality({column_type})" if self.low_cardinality else column_type


COMPAT = Profile("compat")


def profile_for(version: str) -> Profile:
    """The profile for a server `version` ("18.16.1"). Only `compat` exists so far."""
    return COMPAT


def _day(column: str) -> str:
    return f"day Date DEFAULT toDate(toDateTime(intDiv({column}, 1000000000), 'UTC'))"


def _attrs(prefix: str) -> str:
    return f"{prefix}_keys Array(String), {prefix}_values Array(String), {prefix}_types String"


def statements(database: str, profile: Profile) -> list[str]:
    """CREATE statements for every table, each IF NOT EXISTS (safe at every start)."""
    lc = profile.lc
    db = database
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        # Search: one row per span, ordered for service/operation/time filters.
        f"""CREATE TABLE IF NOT EXISTS {db}.spans (
            service {lc("String")}, name {lc("String")}, start_ns Int64, duration_ns Int64,
            trace_hi UInt64, trace_lo UInt64, span_id UInt64, kind UInt8, status UInt8,
            {_attrs("attr")}, {_attrs("res")}, {_day("start_ns")}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (service, name, start_ns)""",
        # Trace by id: the whole span, ordered by trace id, written directly (not by an MV).
        f"""CREATE TABLE IF NOT EXISTS {db}.spans_by_trace (
            trace_hi UInt64, trace_lo UInt64, start_ns Int64, seq UInt64, end_ns Int64,
            span_id UInt64, parent_id UInt64, service {lc("String")}, name {lc("String")},
            kind UInt8, status UInt8, status_message String, {_attrs("attr")}, {_attrs("res")},
            scope_name String, scope_version String, trace_state String, flags UInt32,
            ev_time Array(Int64), ev_name Array(String), ev_keys Array(Array(String)),
            ev_values Array(Array(String)), ev_types Array(String),
            ln_hi Array(UInt64), ln_lo Array(UInt64), ln_span Array(UInt64),
            ln_keys Array(Array(String)), ln_values Array(Array(String)), ln_types Array(String),
            {_day("start_ns")}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (trace_hi, trace_lo, start_ns)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.logs (
            service {lc("String")}, time_ns Int64, seq UInt64, body String, severity UInt8,
            severity_text String, trace_hi UInt64, trace_lo UInt64, span_id UInt64,
            access UInt8, {_attrs("attr")}, {_attrs("res")}, {_day("time_ns")}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (service, time_ns)""",
        # Series are found by name and labels here, then samples read by fingerprint.
        # ReplacingMergeTree(rank), rank = -seq: a merge keeps the first write's row.
        f"""CREATE TABLE IF NOT EXISTS {db}.series (
            name {lc("String")}, fingerprint UInt64, label_keys Array(String),
            label_values Array(String), seq UInt64, rank UInt64, {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY (name, fingerprint)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.samples (
            name {lc("String")}, fingerprint UInt64, time_ns Int64, seq UInt64,
            type {lc("String")}, value Float64, has_hist UInt8, bounds Array(Float64),
            counts Array(UInt64), hist_sum Float64, hist_count UInt64,
            help String, unit String, start_ns Int64, has_exp UInt8, exp_scale Int8,
            exp_offset Int32, exp_counts Array(UInt64), exp_zero UInt64, exp_min Float64,
            exp_max Float64, {_day("time_ns")}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (name, fingerprint, time_ns)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.families (
            name String, type String, help String, unit String, seq UInt64, rank UInt64,
            {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY name""",
        f"""CREATE TABLE IF NOT EXISTS {db}.catalog (
            service {lc("String")}, name {lc("String")}, kind UInt8, seq UInt64, rank UInt64,
            {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY (service, name, kind)""",
    ]


EXPIRING = (("spans", "start_ns"), ("spans_by_trace", "start_ns"), ("logs", "time_ns"),
            ("samples", "time_ns"))  # fmt: skip
"""Tables retention deletes from, with their time column; series and the catalog stay."""

RANK_MAX = 2**64 - 1
