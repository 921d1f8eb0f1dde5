"""Spans in the Jaeger UI / query-API JSON model (`model/json/model.go` of Jaeger).

OTLP -> Jaeger conventions: resource attributes become process tags; span kind the tag
`span.kind`; status `otel.status_code` / `otel.status_description` plus `error=true`; events
become logs with the event name in field `event`; scope `otel.scope.name`/`.version`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Hashable, Sequence
from typing import Any

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, SpanKind, StatusCode

Json = dict[str, Any]


def key_value(key: str, value: AttrValue) -> Json:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": base64.b64encode(value).decode()}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": json.dumps(value, default=str)}


def span_tags(span: Span) -> list[Json]:
    tags = [key_value(k, v) for k, v in span.attributes.items()]
    if span.kind not in (SpanKind.UNSPECIFIED, SpanKind.INTERNAL):
        tags.append(key_value("span.kind", span.kind.name.lower()))
    if span.status_code is not StatusCode.UNSET:
        tags.append(key_value("otel.status_code", span.status_code.name))
    if span.status_message:
        tags.append(key_value("otel.status_description", span.status_message))
    if span.is_error:
        tags.append(key_value("error", True))
    if span.scope_name:
        tags.append(key_value("otel.scope.name", span.scope_name))
    if span.scope_version:
        tags.append(key_value("otel.scope.version", span.scope_version))
    return tags


def _process_key(span: Span) -> Hashable:
    """What tells processes apart: the service and the resource (in any key order; 1, 1.0 and
    True are different values)."""
    try:
        key = (span.service, frozenset((k, v, type(v)) for k, v in span.resource.items()))
        hash(key)
    except TypeError:  # list values
        return json.dumps([span.service, sorted(span.resource.items())], default=str)
    return key


def trace_json(spans: Sequence[Span]) -> Json:
    """One trace: spans plus a processes table with one entry per distinct (service, resource)."""
    processes: dict[str, Json] = {}
    keys: dict[Hashable, str] = {}
    out_spans: list[Json] = []
    for span in spans:
        resource_key = _process_key(span)
        process_id = keys.get(resource_key)
        if process_id is None:
            process_id = keys[resource_key] = f"p{len(keys) + 1}"
            tags = [key_value(k, v) for k, v in span.resource.items() if k != "service.name"]
            processes[process_id] = {"serviceName": span.service, "tags": tags}
        references = []
        if span.parent_span_id:
            references.append(
                {"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id}
            )
        references += [
            {"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}
            for link in span.links
        ]
        out_spans.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "flags": span.flags & 0xFF,  # the W3C trace flags byte; OTLP keeps more bits
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": span_tags(span),
                "logs": [
                    {
                        "timestamp": event.time_ns // 1000,
                        "fields": [
                            key_value("event", event.name),
                            *(key_value(k, v) for k, v in event.attributes.items()),
                        ],
                    }
                    for event in span.events
                ],
                "processID": process_id,
                "warnings": None,
            }
        )
    trace_id = spans[0].trace_id if spans else ""
    return {"traceID": trace_id, "spans": out_spans, "processes": processes, "warnings": None}
