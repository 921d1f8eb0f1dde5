"""Access logs (one per call between services) as typed rows of the `access_logs` table.

The pipeline derives ~0.7 calls per span; rendered in Python into generic log rows (a body
and nine attributes as key/value arrays) they cost the owner about a third of its commit
time. Here a call is one row of plain columns, and log reads render those rows in SQL into
the `logs` layout, exactly as `meshscope.model.access_logs.access_log` renders a call (body,
attributes with their type letters, severity, service = target), so a log query's filters
apply to them as to any record (logs.py reads `logs` UNION ALL these rows).

The texts of `duration_ms` are built from the integer `duration_ns` with integer functions
only (no float-to-text function of the server, whose output differs between versions):
- the attribute is Python's repr of `duration_ns / 1e6`: below 2**33 ms (~99 days) the
  double's shortest round-trip digits are those of `duration_ns` (no other multiple of 1e-6
  ms lies within its rounding interval), written as repr writes them (scientific below 1e-4);
- the body's `{duration_ms:.3f}` rounds the double, not the decimal: the two differ only
  when the decimal is a tie (`duration_ns % 1000 == 500`), and then the sign of
  `double - decimal` is found exactly (`_ERROR`: Veltkamp split, every step exact).
Calls whose duration is negative or beyond that bound (`RANGE_NS`) are stored as generic
log rows `access_log` renders, as before (logs.py), so every call reads back the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meshscope.model.calls import Call
from meshscope.model.logs import Severity
from meshscope.store.clickhouse.native import Column, Numbers, Strings, Words
from meshscope.store.codec import call_columns

RANGE_NS = 8 * 10**15
"""Durations in [0, RANGE_NS) are stored typed; 8e15 ns / 1e6 < 2**33 ms (see above)."""


def access_columns(
    calls: Sequence[Call], seqs: Sequence[int]
) -> tuple[dict[str, Column], list[int]]:
    """The calls as `access_logs` insert columns in Native format (native.py: the texts that
    repeat as `Words`; call i gets `seqs[i]`), and the indexes of the calls whose duration is
    out of `RANGE_NS` (left out; the caller stores them as generic log rows)."""
    plain = call_columns(calls)
    durations = plain["duration_ns"]
    columns: dict[str, Column] = {
        "time_ns": Numbers(plain["time_ns"]),
        "seq": Numbers(np.array(seqs, np.uint64)),
        "source": Words.of(plain["source"]),
        "target": Words.of(plain["target"]),
        "duration_ns": Numbers(durations),
        "failed": Numbers(plain["failed"].astype(np.uint8)),
        "status_code": Numbers(plain["status_code"]),
        "method": Words.of(plain["method"]),
        "path": Strings(list(plain["path"])),  # e.g. /users/123: values of their own
        "connection_type": Words.of(plain["connection_type"]),
        "trace_hi": Numbers(plain["trace_hi"]),
        "trace_lo": Numbers(plain["trace_lo"]),
        "span_id": Numbers(plain["span_id"]),
    }
    typed = durations < RANGE_NS  # never negative (`Call.duration_ns`)
    if typed.all():
        return columns, []
    return {name: column.select(typed) for name, column in columns.items()}, np.flatnonzero(
        ~typed
    ).tolist()


# --- Rendering (SQL over one `access_logs` row; functions ClickHouse 18.16 has) ----------

_D = "duration_ns"

MS_TEXT = f"""multiIf(
    {_D} >= 100, concat(toString(intDiv({_D}, 1000000)), '.',
        if(modulo({_D}, 1000000) = 0, '0',
           replaceRegexpOne(substring(toString(modulo({_D}, 1000000) + 1000000), 2), '0+$', ''))),
    {_D} = 0, '0.0',
    {_D} < 10, concat(toString({_D}), 'e-06'),
    modulo({_D}, 10) = 0, concat(toString(intDiv({_D}, 10)), 'e-05'),
    concat(toString(intDiv({_D}, 10)), '.', toString(modulo({_D}, 10)), 'e-05'))"""
"""`str(duration_ns / 1e6)` (Python's repr) for a duration in [0, RANGE_NS)."""

# double(d / 1e6) * 1e6 - d, exactly in sign: x = hi + lo (Veltkamp, 26 bits each), so hi*1e6
# and lo*1e6 are exact (1e6 has 14 significant bits), hi*1e6 - d is exact (Sterbenz) and
# the final sum is rounded, which keeps its sign.
_X = f"({_D} / 1000000.)"
_HI = f"({_X} * 134217729. - ({_X} * 134217729. - {_X}))"
_ERROR = f"(({_HI} * 1000000. - {_D}) + ({_X} - {_HI}) * 1000000.)"
_UP = f"""(modulo({_D}, 1000) > 500 OR (modulo({_D}, 1000) = 500
    AND ({_ERROR} > 0 OR ({_ERROR} = 0 AND modulo(intDiv({_D}, 1000), 2) = 1))))"""
_US = f"(intDiv({_D}, 1000) + if({_UP}, 1, 0))"
MS3_TEXT = (
    f"concat(toString(intDiv({_US}, 1000)), '.',"
    f" substring(toString(modulo({_US}, 1000) + 1000), 2))"
)
"""`f"{duration_ns / 1e6:.3f}"` for a duration in [0, RANGE_NS)."""

_REQUEST = """multiIf(method != '' AND path != '', concat(method, ' ', path),
    method != '', method, path != '', path, '-')"""
_STATUS = "multiIf(status_code != 0, toString(status_code), failed = 1, 'error', 'ok')"
BODY = f"concat(source, ' -> ', target, ' ', {_REQUEST}, ' ', {_STATUS}, ' ', {MS3_TEXT}, 'ms')"

# Attributes in `access_log`'s order: required ones, then optional ones when set.
_OPTIONAL = (
    ("status_code != 0", "http.response.status_code", "toString(status_code)", "i"),
    ("method != ''", "http.request.method", "method", "s"),
    ("path != ''", "url.path", "path", "s"),
    ("connection_type != ''", "connection_type", "connection_type", "s"),
)


def _optional(array: int) -> str:
    return "".join(
        f", if({cond}, [{repr(key) if array == 0 else value}], emptyArrayString())"
        for cond, key, value, _ in _OPTIONAL
    )


ATTR_KEYS = (
    "arrayConcat(['log.type', 'source.service', 'destination.service', 'duration_ms', 'error']"
    f"{_optional(0)})"
)
ATTR_VALUES = (
    "arrayConcat(['access', toString(source), toString(target), "
    f"{MS_TEXT}, if(failed = 1, 'true', 'false')]{_optional(1)})"
)
ATTR_TYPES = (
    "concat('sssfb'" + "".join(f", if({cond}, '{tag}', '')" for cond, _, _, tag in _OPTIONAL) + ")"
)
SEVERITY = f"toUInt8(if(failed = 1, {int(Severity.ERROR)}, {int(Severity.INFO)}))"

SELECT = {
    "time_ns": "time_ns",
    "body": BODY,
    "service": "target",
    "severity": SEVERITY,
    "severity_text": "''",
    "trace_hi": "trace_hi",
    "trace_lo": "trace_lo",
    "span_id": "span_id",
    "attr_keys": ATTR_KEYS,
    "attr_values": ATTR_VALUES,
    "attr_types": ATTR_TYPES,
    "res_keys": "emptyArrayString()",
    "res_values": "emptyArrayString()",
    "res_types": "''",
    "seq": "seq",
    "access": "toUInt8(1)",
}
"""Each `logs` column a log read uses, as SQL over an `access_logs` row."""
