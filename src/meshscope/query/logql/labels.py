"""The labels a stored log record shows to LogQL, in Loki 3's two categories.

Stream labels (what `/labels`, `/series` and a categorized stream's `stream` hold):
- `service_name`: the record's service;
- every resource attribute (Loki push: the stream labels).

Structured metadata (per record, as Loki 3 stores OTLP log attributes and trace context):
- every record attribute (Loki push: the pushed structured metadata);
- `trace_id` and `span_id`: the record's ids (lowercase hex), which win over attributes of
  those names;
- `detected_level` (and `level`, unless the record has one) from the severity: `trace`,
  `debug`, `info`, `warn`, `error`, `fatal`, when the severity is known.

Names are made valid label names (`k8s.pod.name` -> `k8s_pod_name`), a map attribute is
flattened into `key_subkey` labels, values are in their text form (`attr_text`), and labels
with an empty value are left out, as Loki does. Queries
see both categories merged (metadata wins a name clash), so selectors, label filters and
`by (...)` work on either.
"""

from __future__ import annotations

import re

from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord, Severity
from meshscope.store.base import attr_text

SERVICE_LABEL = "service_name"
TRACE_ID_LABEL = "trace_id"
SPAN_ID_LABEL = "span_id"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """An attribute key as a valid label name."""
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
    return {k: v for k, v in metadata.items() if v != ""}


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
