"""Loki's detected labels and fields (`/loki/api/v1/detected_labels`, `/detected_fields`,
`/detected_field/{name}/values`): what Grafana's Logs Drilldown offers to filter a service's
logs by (ADR 0028's addendum).

Detected labels are the stream labels of the range's records (the newest
`INDEX_SCAN_RECORDS` matching ones, as the index routes read), with how many values each
has; as Loki's `DetectedLabels`, a label whose values all look like ids (numbers or UUIDs) is
left out, but for 0/1 flags and the static labels `cluster`, `namespace`, `instance`, `pod`.

Detected fields are read from the newest `line_limit` entries of a log query, as Loki's
`parseDetectedFields`: each entry's structured metadata (`parsers` null), the labels the
query's own parsers added, and what `| json` extracts from its line (`| logfmt` for a line
that is not a JSON object), the stream labels aside. A field's type is that of the first
value seen (the newest entry's; Loki types each stream's first value anew), its cardinality
the exact count of its values (Loki's is a HyperLogLog estimate), its `jsonPath` the JSON
keys it came from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.routing import Route

from meshscope.api.loki import DEFAULT_LIMIT, HOUR_NS, MAX_LIMIT, label_categories, loki_endpoint
from meshscope.api.loki_index import INDEX_SCAN_RECORDS, parse_selector, range_step
from meshscope.api.loki_params import Params, one, parse_limit, time_range
from meshscope.api.params import ParamError
from meshscope.clock import Clock, SystemClock
from meshscope.go_parsers import (
    BYTE_UNITS,
    format_bytes,
    is_bool,
    is_duration,
    is_float,
    is_int,
    is_uuid,
    parse_bytes,
)
from meshscope.query import budget
from meshscope.query.logql import LogExpr, parse
from meshscope.query.logql.ast import Parser
from meshscope.query.logql.json_fields import decode_object, leaves
from meshscope.query.logql.labels import label_name
from meshscope.query.logql.pipeline import ERROR_LABEL, ERROR_LABELS, run
from meshscope.query.logql.select import Entry, Scan, entries, label_sets
from meshscope.store.base import Storage

STATIC_LABELS = frozenset({"cluster", "namespace", "instance", "pod"})
"""Labels Loki lists whatever their values look like."""
DEFAULT_FIELD_LIMIT = 1000
MAX_FIELD_LIMIT = 2**32 - 1
_FLAGS = frozenset({"0", "1"})
_BYTE_UNITS = tuple(unit for unit in BYTE_UNITS if unit)
"""The endings of a value Loki writes back as a size (`allowedBytesUnits`)."""


def rejected(values: Collection[str]) -> bool:
    """Loki's `shouldRejectLabel`: no values, or values that are all ids (numbers or UUIDs),
    unless they are at most two 0/1 flags."""
    if not values:
        return True
    if len(values) <= 2 and all(value in _FLAGS for value in values):
        return False
    return all(is_float(value) or is_uuid(value) for value in values)


def detected_labels(sets: Iterable[dict[str, str]]) -> list[dict[str, Any]]:
    """Each stream label name kept (see `rejected`) with its number of values, by name."""
    values: dict[str, set[str]] = {}
    for labels in sets:
        for name, value in labels.items():
            values.setdefault(name, set()).add(value)
    return [
        {"label": name, "cardinality": len(found)}
        for name, found in sorted(values.items())
        if (name in STATIC_LABELS and found) or not rejected(found)
    ]


def field_type(value: str) -> str:
    """Loki's `determineType`: the first of int, float, boolean, duration and bytes that Go
    reads the value as, else string."""
    if is_int(value):
        return "int"
    if is_float(value):
        return "float"
    if is_bool(value):
        return "boolean"
    if is_duration(value):
        return "duration"
    if parse_bytes(value) is not None:
        return "bytes"
    return "string"


@dataclass(slots=True)
class Field:
    """A detected field: its type, values, the parsers that found it, its JSON path."""

    type: str
    values: set[str] = field(default_factory=set)
    parsers: list[str] = field(default_factory=list)
    json_path: list[str] | None = None

    def as_json(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"label": name, "type": self.type, "cardinality": len(self.values),
                               "parsers": self.parsers or None}  # fmt: skip
        if self.json_path:
            out["jsonPath"] = self.json_path
        return out


_PARSERS = (Parser("json"), Parser("logfmt"))


def parse_line(line: str, stream: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(parser, the labels it extracts): `| json`'s, or `| logfmt`'s for a line `| json`
    fails on (logfmt never fails), both as the pipeline names them (a name clashing with a
    stream label gets `_extracted`)."""
    for parser in _PARSERS:
        outcome = run((parser,), stream, line)
        labels = outcome[0] if outcome is not None else {}
        if parser.kind == "logfmt" or ERROR_LABEL not in labels:
            return parser.kind, {k: v for k, v in labels.items() if k not in stream
                                 and k not in ERROR_LABELS}  # fmt: skip
    return "logfmt", {}  # not reached: logfmt reads any line


def json_paths(line: str, stream: Collection[str]) -> dict[str, list[str]]:
    """The JSON keys each `| json` label of the line comes from (`user_id`: ["user", "id"]),
    named as the pipeline names them; the first path of a name kept, as the pipeline keeps
    the first value."""
    document, _ = decode_object(line)
    out: dict[str, list[str]] = {}
    for joined, path, _ in leaves(document) if document is not None else ():
        name = label_name(joined)
        out.setdefault(name + "_extracted" if name in stream else name, list(path))
    return out


class EntryFields(NamedTuple):
    """What an entry shows as fields: its structured metadata, the parser that read its line
    and each parsed label's values (the query's parsers' and the line's), beside its stream
    labels."""

    stream: dict[str, str]
    metadata: dict[str, str]
    parser: str
    parsed: dict[str, list[str]]


def entry_fields(entry: Entry) -> EntryFields:
    stream, metadata, by_query = label_categories(entry)
    parser, found = parse_line(entry.line, stream)
    parsed = {name: [value] for name, value in by_query.items() if name not in ERROR_LABELS}
    for name, value in found.items():
        if value not in parsed.setdefault(name, []):
            parsed[name].append(value)
    return EntryFields(stream, metadata, parser, parsed)


def detected_fields(found: Iterable[Entry], limit: int) -> dict[str, Field]:
    """The fields of the entries, at most `limit` (the first seen; later ones are left out,
    as Loki's)."""
    fields: dict[str, Field] = {}

    def take(name: str, values: list[str]) -> Field | None:
        known = fields.get(name)
        if known is None and len(fields) < limit and name:
            known = fields[name] = Field(field_type(values[0]))
        if known is not None:
            known.values.update(values)
        return known

    for entry in found:
        shown = entry_fields(entry)
        for name in sorted(shown.metadata):
            take(name, [shown.metadata[name]])
        paths: dict[str, list[str]] | None = None
        for name, values in shown.parsed.items():
            known = take(name, values)
            if known is None:
                continue
            if shown.parser not in known.parsers:
                known.parsers.append(shown.parser)
            if shown.parser == "json" and known.json_path is None:
                paths = json_paths(entry.line, shown.stream) if paths is None else paths
                known.json_path = paths.get(name)
    return fields


def as_written(value: str) -> str:
    """A parsed value as Loki's values answer writes it: a size with a unit (`10MiB`)
    rewritten as go-humanize writes sizes (`10MB`), so it can go into a query as it is. Loki
    rewrites `5m` too (it reads as 5 MB); here a value of another type is kept as it is."""
    size = parse_bytes(value)
    if size is None or not value.lower().endswith(_BYTE_UNITS) or field_type(value) != "bytes":
        return value
    return format_bytes(size).replace(" ", "", 1)


def field_values(found: Iterable[Entry], name: str, limit: int) -> list[str]:
    """The distinct values of field `name` among the entries (the first `limit` seen,
    newest first), sorted."""
    values: dict[str, None] = {}
    for entry in found:
        if len(values) >= limit:
            break
        shown = entry_fields(entry)
        if name in shown.metadata:
            values[shown.metadata[name]] = None
        for value in shown.parsed.get(name, ()):
            values[as_written(value)] = None
    return sorted(list(values)[:limit])


def log_query(params: Params) -> LogExpr:
    """`query`: a LogQL log query (a selector and an optional pipeline), required."""
    text = one(params, "query")
    if not text.strip():
        raise ParamError("query is required (a LogQL log query)")
    expr = parse(text)
    if not isinstance(expr, LogExpr):
        raise ParamError(f"invalid query: {text!r} is not a log query")
    return expr


def loki_detected_routes(storage: Storage, clock: Clock | None = None) -> list[Route]:
    clock = clock or SystemClock()

    def labels(params: Params, _: Request) -> Any:
        text = one(params, "query")
        matchers = parse_selector(text) if text.strip() else ()
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        sets = label_sets(storage.logs, matchers, start, end, INDEX_SCAN_RECORDS)
        budget.check()
        return {"detectedLabels": detected_labels(sets)}

    def newest(params: Params) -> tuple[Iterator[Entry], int]:
        """The newest `line_limit` entries of `query`, and the `limit` (or `field_limit`)."""
        expr = log_query(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        range_step(params, start, end)  # checked as Loki checks it, not used
        lines = parse_limit(one(params, "line_limit"), DEFAULT_LIMIT, MAX_LIMIT)
        limit_text = one(params, "limit") or one(params, "field_limit")
        limit = parse_limit(limit_text, DEFAULT_FIELD_LIMIT, MAX_FIELD_LIMIT)
        found = entries(storage.logs, expr, start, end, Scan(), limit=lines, newest_first=True)
        return found, limit

    def fields(params: Params, _: Request) -> Any:
        found, limit = newest(params)
        detected = detected_fields(found, limit)
        if not detected:
            return {}
        return {"fields": [detected[name].as_json(name) for name in sorted(detected)],
                "limit": limit}  # fmt: skip

    def values(params: Params, request: Request) -> Any:
        found, limit = newest(params)
        listed = field_values(found, request.path_params["name"], limit)
        return {"values": listed, "limit": limit} if listed else {}

    both = ["GET", "POST"]
    return [
        Route("/loki/api/v1/detected_labels", loki_endpoint(labels), methods=both),
        Route("/loki/api/v1/detected_fields", loki_endpoint(fields), methods=both),
        Route("/loki/api/v1/detected_field/{name}/values", loki_endpoint(values), methods=both),
    ]
