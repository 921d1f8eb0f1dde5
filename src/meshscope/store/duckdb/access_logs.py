"""Access logs (one per call between services) in their own typed table.

The pipeline derives ~0.7 access logs per span; stored as generic log rows (a formatted body
and nine attributes) they cost as much to insert as the spans themselves
and ~60 bytes each on disk. Here a call is one row of plain typed columns (dictionary- and
bit-packed by DuckDB), and the view `all_logs` renders these rows in the `logs` layout (body,
attributes, severity exactly as `meshscope.model.access_logs.access_log` makes them),
so every log query reads `all_logs` and finds them like any other record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from meshscope.model.calls import Call
from meshscope.model.logs import Severity
from meshscope.store.codec import call_columns
from meshscope.store.duckdb.packed import SEP, sql_entry
from meshscope.store.duckdb.trace_locator import trace_keys

_TABLE = """CREATE TABLE IF NOT EXISTS access_logs (
    time_ns BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    duration_ns BIGINT NOT NULL,
    failed BOOLEAN NOT NULL,
    status_code INTEGER NOT NULL,
    method VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    connection_type VARCHAR NOT NULL,
    trace_hi UBIGINT NOT NULL,
    trace_lo UBIGINT NOT NULL,
    span_id UBIGINT NOT NULL
)"""

_MS = "CAST(duration_ns / 1e6 AS VARCHAR)"  # Python's repr of the same double, checked in tests


# Each attribute: its key, SQL for its text, whether that text can hold any character (then
# it is escaped; numbers and constants need not be) and its type tag.
_SEP = f"chr({ord(SEP)})"
_REQUIRED = [
    ("log.type", "'access'", False, "s"),
    ("source.service", "source", True, "s"),
    ("destination.service", "target", True, "s"),
    ("duration_ms", _MS, False, "f"),
    ("error", "CASE WHEN failed THEN 'true' ELSE 'false' END", False, "b"),
]
_OPTIONAL = [
    ("status_code <> 0", ("http.response.status_code", "CAST(status_code AS VARCHAR)", False, "i")),
    ("method <> ''", ("http.request.method", "method", True, "s")),
    ("path <> ''", ("url.path", "path", True, "s")),
    ("connection_type <> ''", ("connection_type", "connection_type", True, "s")),
]
_ATTRS = f" || {_SEP} || ".join(sql_entry(*attr[:3]) for attr in _REQUIRED) + "".join(
    f" || CASE WHEN {condition} THEN {_SEP} || {sql_entry(*attr[:3])} ELSE '' END"
    for condition, attr in _OPTIONAL
)
_TYPES = " || ".join(
    [f"'{''.join(attr[3] for attr in _REQUIRED)}'"]
    + [f"CASE WHEN {condition} THEN '{attr[3]}' ELSE '' END" for condition, attr in _OPTIONAL]
)
_REQUEST = """CASE WHEN method <> '' AND path <> '' THEN method || ' ' || path
    WHEN method <> '' THEN method WHEN path <> '' THEN path ELSE '-' END"""
_STATUS = """CASE WHEN status_code <> 0 THEN CAST(status_code AS VARCHAR)
    WHEN failed THEN 'error' ELSE 'ok' END"""
_BODY = f"""source || ' -> ' || target || ' ' || ({_REQUEST}) || ' ' || ({_STATUS}) || ' '
    || printf('%.3f', duration_ns / 1e6) || 'ms'"""

_VIEW = f"""CREATE OR REPLACE VIEW all_logs AS
    SELECT time_ns, service, severity, severity_text, body, trace_hi, trace_lo, span_id, access,
        attrs, attr_types, resource_id, 0 AS src, rowid AS row
    FROM logs
    UNION ALL
    SELECT time_ns, target, CASE WHEN failed THEN {int(Severity.ERROR)}
        ELSE {int(Severity.INFO)} END :: UTINYINT, '', {_BODY}, trace_hi, trace_lo, span_id,
        true, {_ATTRS}, {_TYPES}, 0 :: UBIGINT, 1, rowid
    FROM access_logs"""

STATEMENTS = (_TABLE, _VIEW)
"""Run at every open (after the base schema): the view follows this module's rendering."""


_TYPES_BY_COLUMN = {
    "time_ns": pa.int64(), "source": pa.string(), "target": pa.string(),
    "duration_ns": pa.int64(), "failed": pa.bool_(), "status_code": pa.int32(),
    "method": pa.string(), "path": pa.string(), "connection_type": pa.string(),
    "trace_hi": pa.uint64(), "trace_lo": pa.uint64(), "span_id": pa.uint64(),
}  # fmt: skip


def access_table(calls: Sequence[Call]) -> pa.Table:
    """The calls as `access_logs` rows (`store.codec.call_columns`, typed for this table),
    grouped by trace as spans are (traces.py: each trace id stored once per run, ADR 0020)."""
    table = pa.table(
        {
            name: pa.array(values, _TYPES_BY_COLUMN[name])
            for name, values in call_columns(calls).items()
        }
    )
    keys = trace_keys(table.column("trace_hi").to_numpy(), table.column("trace_lo").to_numpy())
    return table.take(np.argsort(keys, kind="stable"))
