"""Model values <-> column values, shared by the backends and the ingest workers that build
their rows: ids as integers, attributes as text lists plus type tags, resources by a hash of
their content.

Attributes are collected as keys, values in their query text form (`attr_text`, so a search
for '500' finds the integer 500) and `attr_types`, one letter per entry that restores the
Python type on reading; each backend lays them out its own way (ClickHouse: two arrays;
DuckDB: one packed string, store/duckdb/packed.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import numpy.typing as npt

from meshscope.model.attributes import AttrValue
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.store.base import attr_text

_MASK64 = (1 << 64) - 1

TAG_STR = "s"
TAG_BOOL = "b"
TAG_INT = "i"
TAG_FLOAT = "f"
TAG_BYTES = "x"
TAG_JSON = "j"  # lists and maps; bytes nested inside them come back as hex strings
TAG_NONE = "n"


def id128(hex_id: str) -> tuple[int, int]:
    """A 128-bit hex id as (high, low) unsigned 64-bit halves; "" is (0, 0)."""
    if not hex_id:
        return 0, 0
    value = int(hex_id, 16)
    return value >> 64, value & _MASK64


def hex128(high: int, low: int) -> str:
    if high == 0 and low == 0:
        return ""
    return f"{high:016x}{low:016x}"


def id64(hex_id: str) -> int:
    return int(hex_id, 16) if hex_id else 0


def hex64(value: int) -> str:
    return f"{value:016x}" if value else ""


_TAGS: dict[type, str] = {
    str: TAG_STR,
    bool: TAG_BOOL,
    int: TAG_INT,
    float: TAG_FLOAT,
    bytes: TAG_BYTES,
    type(None): TAG_NONE,
}


def _text(value: AttrValue) -> str | None:
    return None if value is None else attr_text(value)


def _tag(value: AttrValue) -> str:
    if isinstance(value, str):
        return TAG_STR
    if value is None:
        return TAG_NONE
    if isinstance(value, bool):
        return TAG_BOOL
    if isinstance(value, int):
        return TAG_INT
    if isinstance(value, float):
        return TAG_FLOAT
    if isinstance(value, bytes):
        return TAG_BYTES
    return TAG_JSON


def text_and_tag(value: AttrValue) -> tuple[str | None, str]:
    """A value's `attr_values` entry and `attr_types` letter, as `AttrColumns` stores them."""
    return (
        value if type(value) is str else _text(value),
        _TAGS.get(type(value)) or _tag(value),
    )


def _value(text: str | None, tag: str) -> AttrValue:
    if tag == TAG_STR:
        return text
    if text is None or tag == TAG_NONE:
        return None
    if tag == TAG_BOOL:
        return text == "true"
    if tag == TAG_INT:
        return int(text)
    if tag == TAG_FLOAT:
        return float(text)
    if tag == TAG_BYTES:
        return bytes.fromhex(text)
    decoded: AttrValue = json.loads(text)
    return decoded


def decode_attrs(
    keys: list[str] | None, values: list[str | None] | None, tags: str | None
) -> dict[str, Any]:
    """Rebuild typed attributes from the three fetched columns."""
    if not keys or values is None:
        return {}
    if tags is None or len(tags) != len(keys):
        return dict(zip(keys, values, strict=True))
    return {key: _value(text, tag) for key, text, tag in zip(keys, values, tags, strict=True)}


class AttrColumns:
    """Collects attribute dicts row by row: flat keys and texts, per-row offsets and tags."""

    __slots__ = ("keys", "offsets", "tags", "values")

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self.keys: list[str] = []
        self.values: list[str | None] = []
        self.tags: list[str] = []

    def add(self, attributes: Mapping[str, AttrValue]) -> None:
        values = attributes.values()
        self.keys.extend(attributes)
        self.values.extend([v if type(v) is str else _text(v) for v in values])
        tags = _TAGS
        self.tags.append("".join([tags.get(type(v)) or _tag(v) for v in values]))
        self.offsets.append(len(self.keys))

    def extend(self, many: Sequence[Mapping[str, AttrValue]]) -> None:
        """`add` for many rows at once: flat comprehensions instead of a call per row."""
        self.keys.extend([key for attributes in many for key in attributes])
        self.values.extend(
            [v if type(v) is str else _text(v) for attributes in many for v in attributes.values()]
        )
        tags = _TAGS
        self.tags.extend(
            [
                "".join([tags.get(type(v)) or _tag(v) for v in attributes.values()])
                for attributes in many
            ]
        )
        self.offsets.extend(accumulate(map(len, many), initial=self.offsets[-1]))
        del self.offsets[-len(many) - 1]  # `initial` repeated the last offset


def resource_id(resource: Mapping[str, AttrValue]) -> int:
    """A resource's id: a hash of its content (0: no resource), the same in every process."""
    if not resource:
        return 0
    columns = AttrColumns()
    columns.add(dict(sorted(resource.items())))
    text = "\x1f".join(f"{k}\x1e{v}" for k, v in zip(columns.keys, columns.values, strict=True)) + (
        "\x1d" + columns.tags[0]
    )
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


_NO_CALLS: tuple[tuple[()], ...] = ((),) * len(Call._fields)


def call_columns(calls: Sequence[Call]) -> dict[str, Any]:
    """Calls between services as a backend's typed access-log columns, built column by
    column (a Call is a tuple): time, source, target, duration (`Call.duration_ns`), failed,
    HTTP status code, method, path, connection type, trace id halves, span id. Numbers are
    NumPy arrays (int64; failed bool; status_code int32, OverflowError past it; the ids
    uint64), texts tuples."""
    (
        source,
        target,
        time_ns,
        failed,
        client_ns,
        server_ns,
        connection_type,
        status_code,
        method,
        path,
        trace_id,
        span_id,
    ) = zip(*calls, strict=True) if calls else _NO_CALLS
    client = np.array(client_ns, np.int64)
    server = np.array(server_ns, np.int64)
    traces = hex_words(trace_id, 2)
    return {
        "time_ns": np.array(time_ns, np.int64),
        "source": source,
        "target": target,
        "duration_ns": np.where(client >= 0, client, np.maximum(server, 0)),  # observed_duration
        "failed": np.array(failed, np.bool_),
        "status_code": np.array(status_code, np.int32),
        "method": method,
        "path": path,
        "connection_type": connection_type,
        "trace_hi": traces[:, 0],
        "trace_lo": traces[:, 1],
        "span_id": hex_words(span_id, 1)[:, 0],
    }


def hex_words(ids: Sequence[str], words: int) -> npt.NDArray[np.uint64]:
    """Hex ids of up to `words` 64-bit words ("": 0) as an (n, words) uint64 array, read as
    `id128` (two words) and `id64` (one) read them: ids of full width (the usual) with one
    `bytes.fromhex`, others one by one. ValueError for a text that is not hex, OverflowError
    for a wider id."""
    width = 16 * words
    out = np.zeros((len(ids), words), np.uint64)
    full = np.fromiter(map(len, ids), np.int64, len(ids)) == width
    rows = np.flatnonzero(full)
    if len(rows):
        chosen = ids if len(rows) == len(ids) else [ids[row] for row in rows.tolist()]
        raw = bytes.fromhex("".join(chosen))  # whitespace between pairs would shorten it:
        if len(raw) != 8 * words * len(rows):  # then one by one, and int() refuses it
            full[:] = False
        else:
            out[rows] = np.frombuffer(raw, ">u8").reshape(-1, words)
    for row in np.flatnonzero(~full).tolist():
        value = int(ids[row], 16) if ids[row] else 0
        if value >> (64 * words):
            raise OverflowError(f"an id wider than {width} hex digits: {ids[row]!r}")
        for word in range(words):
            out[row, words - 1 - word] = (value >> (64 * word)) & _MASK64
    return out


LOG_COLUMNS = (
    "time_ns", "body", "service", "severity", "severity_text", "trace_hi", "trace_lo", "span_id",
    "attr_keys", "attr_values", "attr_types", "res_keys", "res_values", "res_types",
)  # fmt: skip
"""The columns a backend reads a log record from, in the order `log_record` takes them."""


def log_record(
    row: Sequence[Any],
    attributes: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
) -> LogRecord:
    """A log record from its LOG_COLUMNS values, or from the first eight of them and the
    attributes and resource a backend decoded itself."""
    (time_ns, body, service, severity, severity_text, t_hi, t_lo, span_id) = row[:8]
    if attributes is None or resource is None:
        (keys, values, types, res_keys, res_values, res_types) = row[8:]
        attributes = decode_attrs(keys, values, types)
        resource = decode_attrs(res_keys, res_values, res_types)
    return LogRecord(
        time_ns=time_ns,
        body=body,
        service=service,
        severity=severity,
        severity_text=severity_text,
        trace_id=hex128(t_hi, t_lo),
        span_id=hex64(span_id),
        attributes=attributes,
        resource=resource,
    )
