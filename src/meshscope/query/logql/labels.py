"""The labels a stored log record shows to LogQL.

- `service_name`: the record's service;
- every resource attribute, then every record attribute (which win), with names made valid
  label names (`k8s.pod.name` -> `k8s_pod_name`) and values in their text form (`attr_text`);
  labels with an empty value are left out, as Loki does;
- `detected_level` (and `level`, unless the record has one) from the severity: `trace`,
  `debug`, `info`, `warn`, `error`, `fatal`, when the severity is known.
"""

from __future__ import annotations

import re

from meshscope.model.logs import LogRecord, Severity
from meshscope.store.base import attr_text

SERVICE_LABEL = "service_name"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """An attribute key as a valid label name."""
    name = _INVALID.sub("_", key)
    return "_" + name if name[:1].isdigit() else name


def level_name(severity: Severity) -> str:
    return "" if severity is Severity.UNSPECIFIED else severity.name.lower()


def record_labels(record: LogRecord) -> dict[str, str]:
    labels: dict[str, str] = {}
    for source in (record.resource, record.attributes):
        for key, value in source.items():
            labels[label_name(key)] = attr_text(value)
    labels[SERVICE_LABEL] = record.service
    level = level_name(record.severity)
    if level:
        labels["detected_level"] = level
        if not labels.get("level"):
            labels["level"] = level
    return {k: v for k, v in labels.items() if v != ""}
