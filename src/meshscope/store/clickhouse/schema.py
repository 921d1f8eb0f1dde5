"""The tables (ADR 0011), generated for a server profile chosen from the server's version.

Every table has a `day` Date column (UTC) and daily partitions, so retention drops whole
days. Ids are UInt64 halves; attributes are parallel key/value arrays plus one type letter
per entry (store/codec.py), which restore the Python types on reading. `seq` is the
write sequence (connection.py): ClickHouse keeps no insertion order, the protocols need it.
DEFAULT, not MATERIALIZED, for `day`: MATERIALIZED columns break inserts through Distributed
tables on 18.16 (scaleout.md, section 3).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshscope.store.clickhouse.connection import Connection


@dataclass(frozen=True, slots=True)
class Profile:
    """What the DDL may use. `compat` runs on every server from 18.16 on; `modern` (servers
    from MODERN_SINCE) adds LowCardinality, column codecs, a bloom-filter index on the trace
    id and, when a retention is given, a TTL that drops whole parts (ADR 0011)."""

    name: str
    low_cardinality: bool = False
    codecs: bool = False
    skip_indexes: bool = False
    ttl: bool = False

    def lc(self, column_type: str) -> str:
        """The type of a column with few distinct values (service, operation, metric name)."""
        return f"LowCardinality({column_type})" if self.low_cardinality else column_type

    def codec(self, spec: str = "ZSTD(1)") -> str:
        """The CODEC clause of a column ("" without codecs: the server's default, LZ4)."""
        return f" CODEC({spec})" if self.codecs else ""

    def trace_index(self) -> str:
        """A data-skipping index for `trace_hi = ...` filters on a table not ordered by it."""
        if not self.skip_indexes:
            return ""
        return ", INDEX trace_id trace_hi TYPE bloom_filter(0.01) GRANULARITY 1"


COMPAT = Profile("compat")
MODERN = Profile("modern", low_cardinality=True, codecs=True, skip_indexes=True, ttl=True)

MODERN_SINCE = (20, 1)
"""The first server version with everything `modern` uses, none of it experimental: TTL
(19.6), bloom_filter skip indexes (19.5, experimental until 20.1), T64 (19.10), DoubleDelta
and Gorilla (19.11), LowCardinality without the experimental flag (19.11),
`ttl_only_drop_parts` (19.14), skip indexes on by default (20.1). Per the ClickHouse
changelogs; only 18.16 (compat) and chdb 26.9 (modern) are run here."""

_VERSION = re.compile(r"^(\d+)\.(\d+)")


def profile_for(version: str) -> Profile:
    """The profile for a server `version` ("18.16.1", "26.9.2.1"): `modern` from
    MODERN_SINCE on, `compat` before it or when the version cannot be read."""
    found = _VERSION.match(version.strip())
    if found and (int(found[1]), int(found[2])) >= MODERN_SINCE:
        return MODERN
    return COMPAT


def ttl_days(retention_hours: float) -> int:
    """Days kept by the TTL for a retention: the whole retention, rounded up, plus the day
    being written, so the TTL never drops a row `expire` would still keep."""
    return math.ceil(retention_hours / 24) + 1


# Column codecs (modern): ZSTD for everything, after a transform where the values allow one.
_ZSTD = "ZSTD(1)"
_SORTED = "Delta, ZSTD(1)"  # increasing along the sort key: times, sorted ids
_REGULAR = "DoubleDelta, ZSTD(1)"  # increasing at a near-constant step: sample times
_SMALL = "T64, ZSTD(1)"  # integers far below their type's range: durations
_FLOAT = "Gorilla, ZSTD(1)"  # slowly changing floats: sample values


def _day(column: str) -> str:
    return f"day Date DEFAULT toDate(toDateTime(intDiv({column}, 1000000000), 'UTC'))"


DAY_NS = 86_400 * 10**9
_EPOCH = dt.date(1970, 1, 1)
DAYS_END_NS = 2**32 * 10**9
"""Times in [0, DAYS_END_NS) get their own UTC day in `day` on every server version; the
DEFAULT's DateTime is 32-bit, so a time outside that range gets a day modulo 2^32 s."""


def day_of(ns: int) -> str | None:
    """The UTC day (ISO) `day` holds for a time; None outside [0, DAYS_END_NS)."""
    if not 0 <= ns < DAYS_END_NS:
        return None
    return (_EPOCH + dt.timedelta(days=ns // DAY_NS)).isoformat()


def day_range(start_ns: int, end_ns: int) -> str:
    """A condition on `day` for the rows with times in [start_ns, end_ns], which lets a
    query skip the other days' partitions; "" unless both bounds are in the range where
    `day` is the time's own day (outside it, rows may carry any day)."""
    first, last = day_of(start_ns), day_of(end_ns)
    if first is None or last is None:
        return ""
    return f" AND day >= '{first}' AND day <= '{last}'"


TRACE_GRANULE_ROWS = 1024
"""`trace_spans`' granule: a trace (a few spans) is read with the granule around it, in
each part, so 8x fewer rows than ClickHouse's default 8,192 are decompressed per trace (20
traces of the search benchmark: 61 -> 31 ms; one trace 6.7 -> 4.6 ms; +2.6% bytes; ADR
0021). A table made with the default keeps it: ClickHouse cannot change it afterwards."""


def _sample_columns(p: Profile) -> str:
    z, c, lc = p.codec(), p.codec, p.lc
    return f"""name {lc("String")}{z}, fingerprint UInt64{c(_SORTED)},
            time_ns Int64{c(_REGULAR)}, seq UInt64{c(_SORTED)},
            type {lc("String")}{z}, value Float64{c(_FLOAT)}, has_hist UInt8{z},
            bounds Array(Float64){z}, counts Array(UInt64){z}, hist_sum Float64{z},
            hist_count UInt64{z}, help String{z}, unit String{z}, start_ns Int64{z},
            has_exp UInt8{z}, exp_scale Int8{z}, exp_offset Int32{z},
            exp_counts Array(UInt64){z}, exp_zero UInt64{z}, exp_min Float64{z},
            exp_max Float64{z}, {_day("time_ns")}"""


def _attrs(p: Profile, prefix: str) -> str:
    """Parallel key/value arrays and one type letter per entry. Keys and type strings repeat
    from row to row (LowCardinality, modern), and so do a resource's values (a service's
    instances); a span's or a record's own values often do not."""
    z, lc = p.codec(), p.lc
    values = lc("String") if prefix == "res" else "String"
    return (
        f"{prefix}_keys Array({lc('String')}){z}, {prefix}_values Array({values}){z},"
        f" {prefix}_types {lc('String')}{z}"
    )


def statements(database: str, profile: Profile, ttl_days: int | None = None) -> list[str]:
    """CREATE statements for every table, each IF NOT EXISTS (safe at every start). With
    `ttl_days` and a profile with TTL, the expiring tables drop whole days (parts) that old."""
    p, lc, c = profile, profile.lc, profile.codec
    z = c()
    db = database
    ttl = ""
    if p.ttl and ttl_days:
        ttl = f" TTL day + INTERVAL {int(ttl_days)} DAY SETTINGS ttl_only_drop_parts = 1"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        # Search: one row per span, ordered for service/operation/time filters.
        f"""CREATE TABLE IF NOT EXISTS {db}.spans (
            service {lc("String")}{z}, name {lc("String")}{z}, start_ns Int64{c(_SORTED)},
            duration_ns Int64{c(_SMALL)}, trace_hi UInt64{z}, trace_lo UInt64{z},
            span_id UInt64{z}, kind UInt8{z}, status UInt8{z},
            {_attrs(p, "attr")}, resource UInt64{z}, {_day("start_ns")}{p.trace_index()}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (service, name, start_ns){ttl}""",
        # Each resource the spans of a day name by `resource` (its fingerprint), once per
        # day and shard (ADR 0026): a resource repeats on every span of its process.
        f"""CREATE TABLE IF NOT EXISTS {db}.{RESOURCES} (
            fingerprint UInt64{z}, {_attrs(p, "res")}, time_ns Int64{z}, {_day("time_ns")}
        ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY fingerprint{ttl}""",
        # Trace by id: the whole span as one payload (span_payload.py, ADR 0022), ordered by
        # trace id, written directly (not by an MV). No `seq`: a trace's spans are read in
        # `trace_order` (a table made by an earlier version has one, left at 0 by new writes).
        f"""CREATE TABLE IF NOT EXISTS {db}.trace_spans (
            trace_hi UInt64{c(_SORTED)}, trace_lo UInt64{z}, start_ns Int64{z},
            span String{z}, {_day("start_ns")}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (trace_hi, trace_lo, start_ns){ttl}
        {"," if ttl else " SETTINGS"} index_granularity = {TRACE_GRANULE_ROWS}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.logs (
            service {lc("String")}{z}, time_ns Int64{c(_SORTED)}, seq UInt64{c(_SORTED)},
            body String{z}, severity UInt8{z}, severity_text String{z}, trace_hi UInt64{z},
            trace_lo UInt64{z}, span_id UInt64{z}, access UInt8{z},
            {_attrs(p, "attr")}, {_attrs(p, "res")}, {_day("time_ns")}{p.trace_index()}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (service, time_ns){ttl}""",
        # Calls between services, one typed row each; log reads render them as the access
        # log records `model.access_logs.access_log` makes (access_logs.py), service = target.
        f"""CREATE TABLE IF NOT EXISTS {db}.access_logs (
            target {lc("String")}{z}, time_ns Int64{c(_SORTED)}, seq UInt64{c(_SORTED)},
            source {lc("String")}{z}, duration_ns Int64{c(_SMALL)}, failed UInt8{z},
            status_code Int32{z}, method {lc("String")}{z}, path String{z},
            connection_type {lc("String")}{z}, trace_hi UInt64{z}, trace_lo UInt64{z},
            span_id UInt64{z}, {_day("time_ns")}{p.trace_index()}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (target, time_ns){ttl}""",
        # Series are found by name and labels here, then samples read by fingerprint.
        # ReplacingMergeTree(rank), rank = -seq: a merge keeps the first write's row.
        f"""CREATE TABLE IF NOT EXISTS {db}.series (
            name {lc("String")}{z}, fingerprint UInt64{c(_SORTED)},
            label_keys Array({lc("String")}){z}, label_values Array(String){z}, seq UInt64{z},
            rank UInt64{z}, {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY (name, fingerprint)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.samples (
            {_sample_columns(p)}
        ) ENGINE = MergeTree PARTITION BY day ORDER BY (name, fingerprint, time_ns){ttl}""",
        # Each series' newest sample of each day (a merge keeps the highest `version`, the
        # time): `latest` reads it instead of a day of samples (metrics.py, ADR 0021).
        f"""CREATE TABLE IF NOT EXISTS {db}.{LATEST} (
            {_sample_columns(p)}, version UInt64{z}
        ) ENGINE = ReplacingMergeTree(version) PARTITION BY day
        ORDER BY (name, fingerprint){ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.families (
            name {lc("String")}{z}, type {lc("String")}{z}, help String{z}, unit String{z},
            seq UInt64{z}, rank UInt64{z}, {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY name""",
        f"""CREATE TABLE IF NOT EXISTS {db}.catalog (
            service {lc("String")}{z}, name {lc("String")}{z}, kind UInt8{z}, seq UInt64{z},
            rank UInt64{z}, {_day("seq")}
        ) ENGINE = ReplacingMergeTree(rank) PARTITION BY day ORDER BY (service, name, kind)""",
    ]


LATEST = "samples_latest"
RESOURCES = "resources"
SAMPLE_COLUMNS = (
    "name", "fingerprint", "time_ns", "seq", "type", "value", "has_hist", "bounds", "counts",
    "hist_sum", "hist_count", "help", "unit", "start_ns", "has_exp", "exp_scale",
    "exp_offset", "exp_counts", "exp_zero", "exp_min", "exp_max", "day",
)  # fmt: skip
"""The columns of `samples`, which `samples_latest` has too (and `version`)."""
VERSION_SQL = "bitXor(toUInt64(time_ns), toUInt64(9223372036854775808))"
"""`samples_latest.version` from `time_ns`: the time moved to unsigned, order kept
(`metrics.version` computes the same in Python)."""

LEGACY_BY_TRACE = "spans_by_trace"
"""The trace-id table of databases made before `trace_spans` (ADR 0022): a column per field
of the span. Never created now; read, and expired, while it exists."""

EXPIRING = (("spans", "start_ns"), ("trace_spans", "start_ns"), ("logs", "time_ns"),
            ("access_logs", "time_ns"), ("samples", "time_ns"), (LATEST, "time_ns"),
            (LEGACY_BY_TRACE, "start_ns"), (RESOURCES, ""))  # fmt: skip
"""Tables retention deletes from, with their time column, where they exist; series and the
catalog stay. `resources` has none: its rows go by whole days only (a day's row serves every
span of that day, whatever its time), after the spans of those days."""

RANK_MAX = 2**64 - 1


def create(conn: Connection, retention_hours: float | None = None) -> tuple[str, Profile]:
    """Read the server's version, pick its profile and create the missing tables; with a
    retention on a profile with TTL, also bring the expiring tables' TTL to it (tables made
    without one, e.g. on the server before an upgrade, or for another retention). Returns
    the version and the profile."""
    [(version,)] = conn.rows("SELECT version()")
    profile = profile_for(version)
    days = ttl_days(retention_hours) if retention_hours else None
    for statement in statements(conn.database, profile, days):
        conn.execute(statement)
    add_resource_column(conn, profile)
    if not exists(conn, _FILLED):
        _fill_latest(conn, profile)
    if profile.ttl and days:
        _update_ttl(conn, days)
    return str(version), profile


def exists(conn: Connection, table: str) -> bool:
    """Whether the connection's database has `table`."""
    return bool(
        conn.rows(
            "SELECT 1 FROM system.tables WHERE database = %(db)s AND name = %(table)s",
            {"db": conn.database, "table": table},
        )
    )


def add_resource_column(conn: Connection, profile: Profile, database: str = "") -> None:
    """Give `spans` of `database` (the connection's by default; a table, or a Distributed
    table over them) its `resource` column if it was made before ADR 0026 (its rows then
    read 0, no resource of `resources`: theirs is in their own `res_*` columns)."""
    database = database or conn.database
    if not has_column(conn, "spans", "resource", database):
        conn.execute(f"ALTER TABLE {database}.spans ADD COLUMN resource UInt64{profile.codec()}")


def has_column(conn: Connection, table: str, column: str, database: str = "") -> bool:
    """Whether `table` of `database` (the connection's by default) has `column`."""
    return bool(
        conn.rows(
            "SELECT 1 FROM system.columns WHERE database = %(db)s AND table = %(table)s"
            " AND name = %(column)s",
            {"db": database or conn.database, "table": table, "column": column},
        )
    )


_FILLED = f"{LATEST}_filled"
"""An empty table whose existence says `samples_latest` holds what `samples` held before."""


def _fill_latest(conn: Connection, profile: Profile) -> None:
    """A database made before `samples_latest` existed: fill it from `samples` (each
    series' newest row of each day), then create the `_FILLED` mark. Filling twice (nodes
    starting at once, a start that failed half way) only adds copies of rows, which the
    merges and the reads' newest-row choice make harmless; a new database has nothing to
    copy."""
    db = conn.database
    columns = ", ".join(SAMPLE_COLUMNS)
    conn.execute(
        f"INSERT INTO {db}.{LATEST} ({columns}, version)"
        f" SELECT {columns}, {VERSION_SQL} FROM {db}.samples"
        " WHERE (name, fingerprint, day, time_ns) IN (SELECT name, fingerprint, day,"
        f" max(time_ns) FROM {db}.samples GROUP BY name, fingerprint, day)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {db}.{_FILLED} (done UInt8{profile.codec()})"
        " ENGINE = MergeTree ORDER BY tuple()"
    )


def _update_ttl(conn: Connection, days: int) -> None:
    """`MODIFY SETTING`/`MODIFY TTL` on the expiring tables whose TTL differs from `days`.
    A changed TTL is applied to the existing parts by the server (a mutation, in the
    background), so a longer retention is not cut short by the parts' old TTL."""
    wanted = re.compile(rf"\bTTL day \+ (toIntervalDay\({days}\)|INTERVAL {days} DAY)(\s|$)")
    for table, _ in EXPIRING:
        found = conn.rows(
            "SELECT engine_full FROM system.tables WHERE database = %(db)s AND name = %(table)s",
            {"db": conn.database, "table": table},
        )
        if not found:  # LEGACY_BY_TRACE in a newer database
            continue
        [(engine,)] = found
        name = f"{conn.database}.{table}"
        if "ttl_only_drop_parts = 1" not in engine:
            conn.execute(f"ALTER TABLE {name} MODIFY SETTING ttl_only_drop_parts = 1")
        if not wanted.search(engine):
            conn.execute(f"ALTER TABLE {name} MODIFY TTL day + INTERVAL {days} DAY")
