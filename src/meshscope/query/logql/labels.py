"""The labels a stored log record shows to LogQL, in Loki 3's two categories.

Stream labels (what `/labels`, `/series` and a categorized stream's `stream` hold):
- `service_name`: the record's service;
- every resource attribute (Loki push: the stream labels).

Structured metadata (per record, as Loki 3 stores OTLP log attributes and trace context):
- every record attribute (Loki push: the pushed structured metadata);
- `trace_id` and `span_id`: the record's ids (lowercase hex), which win over attributes of
  those names;
- `detected_level` (and `level`, unless the record has one) from the severity: `trace`,
  `debug`, `info`, `warn`, `error`, `fatal`, when the severity is known; else, as Loki's
  level detection, from the line (`detect_level`), `unknown` when it names none.

Names are made valid label names (`k8s.pod.name` -> `k8s_pod_name`), a map attribute is
flattened into `key_subkey` labels, values are in their text form (`attr_text`), and labels
with an empty value are left out, as Loki does. Queries see both categories merged
(metadata wins a name clash), so selectors, label filters and `by (...)` work on either.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import orjson

from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord, Severity
from meshscope.query.logql.logfmt import logfmt_pairs
from meshscope.store.base import attr_text

SERVICE_LABEL = "service_name"
TRACE_ID_LABEL = "trace_id"
SPAN_ID_LABEL = "span_id"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


@functools.lru_cache(maxsize=16_384)
def label_name(key: str) -> str:
    """An attribute key as a valid label name (keys repeat on every record: remembered)."""
    name = _INVALID.sub("_", key)
    return "_" + name if name[:1].isdigit() else name


def level_name(severity: int) -> str:
    """The level of a severity number (`info` for 9-12), "" for unspecified."""
    level = Severity.from_number(severity)
    return "" if level is Severity.UNSPECIFIED else level.name.lower()


def stream_labels(record: LogRecord) -> dict[str, str]:
    labels = _named(record.resource)
    labels[SERVICE_LABEL] = record.service
    return {k: v for k, v in labels.items() if v != ""}


def structured_metadata(record: LogRecord, stream: dict[str, str]) -> dict[str, str]:
    """The record's structured metadata; `stream` (its stream labels) decides whether a
    `level` is derived from the severity (not when the stream has one)."""
    metadata = _named(record.attributes)
    if record.trace_id:
        metadata[TRACE_ID_LABEL] = record.trace_id
    if record.span_id:
        metadata[SPAN_ID_LABEL] = record.span_id
    level = level_name(record.severity)
    if level:
        metadata["detected_level"] = level
        if not metadata.get("level") and not stream.get("level"):
            metadata["level"] = level
    else:
        metadata["detected_level"] = detect_level(record.body)
    return {k: v for k, v in metadata.items() if v != ""}


_LEVEL_FIELDS = frozenset({"level", "LEVEL", "Level", "severity", "SEVERITY", "Severity",
                           "lvl", "LVL", "Lvl"})  # fmt: skip
_LEVEL_VALUES = {
    "trace": "trace", "trc": "trace", "debug": "debug", "dbg": "debug", "info": "info",
    "inf": "info", "information": "info", "warn": "warn", "wrn": "warn", "warning": "warn",
    "error": "error", "err": "error", "critical": "critical", "fatal": "fatal",
}  # fmt: skip
_LEVEL_WORDS = (("trace", "trace"), ("debug", "debug"), ("fatal", "fatal"),
                ("critical", "critical"), ("error", "error"), ("err", "error"),
                ("warning", "warn"), ("warn", "warn"), ("info", "info"))  # fmt: skip
MAX_DETECTED_CHARS = 4096
"""How much of a line the level detection reads."""


def detect_level(line: str) -> str:
    """The level of a record without a severity, as Loki's distributor detects it
    (`field_detection.go`, `discover_log_levels`): a level field of a JSON or logfmt line,
    else the first of the level words standing alone in it, else `unknown`."""
    line = line[:MAX_DETECTED_CHARS]
    value = _level_field(line)
    if value is not None:
        found = _LEVEL_VALUES.get(value.lower())
        if found is not None:
            return found
    lower = line.lower()
    for word, level in _LEVEL_WORDS:
        at = lower.find(word)
        if at >= 0 and not _word_char(lower, at - 1) and not _word_char(lower, at + len(word)):
            return level
    return "unknown"


def _word_char(text: str, at: int) -> bool:
    return 0 <= at < len(text) and (text[at].isalnum() or text[at] == "_")


def _level_field(line: str) -> str | None:
    stripped = line.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return None
        pending = [document] if isinstance(document, dict) else []
        while pending:  # depth first, as Loki's nested search
            current = pending.pop()
            for key, value in current.items():
                if key in _LEVEL_FIELDS and isinstance(value, str):
                    return value
                if isinstance(value, dict):
                    pending.append(value)
        return None
    if "=" in line:
        for key, value in logfmt_pairs(line):
            if key in _LEVEL_FIELDS:
                return value
    return None


def label_string(labels: Iterable[tuple[str, str]]) -> str:
    """A label set as Loki writes one (`{a="x", b="y"}`): its streams' order and the series
    its errors name."""
    return "{" + ", ".join(f"{name}={orjson.dumps(value).decode()}" for name, value in labels) + "}"


def record_labels(record: LogRecord) -> dict[str, str]:
    """Stream labels and structured metadata merged, as queries see them."""
    stream = stream_labels(record)
    return {**stream, **structured_metadata(record, stream)}


def _named(attributes: dict[str, AttrValue]) -> dict[str, str]:
    """Labels of attributes; a map is flattened into `key_subkey` labels, as Loki's OTLP
    ingestion does (`attributeToLabels`), other values are their text form."""
    out: dict[str, str] = {}
    for key, value in attributes.items():
        if isinstance(value, dict):
            _flatten(label_name(key), value, out)
        else:
            out[label_name(key)] = attr_text(value)
    return out


def _flatten(prefix: str, attributes: dict[str, AttrValue], out: dict[str, str]) -> None:
    pending = [(prefix, attributes)]  # iterative: a map nested 1,000 deep is no recursion
    while pending:
        prefix, mapping = pending.pop()
        for key, value in mapping.items():
            name = label_name(f"{prefix}_{key}")
            if isinstance(value, dict):
                pending.append((name, value))
            else:
                out[name] = attr_text(value)
