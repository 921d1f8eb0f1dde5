"""Spans in the Jaeger UI / query-API JSON model (`model/json/model.go` of Jaeger).

OTLP -> Jaeger conventions, as the OTel Collector's translator (`pkg/translator/jaeger`,
which Jaeger v2 uses) has them: resource attributes become process tags; span kind the tag
`span.kind` (`internal` too); status `otel.status_code` / `otel.status_description` plus
`error=true`; the W3C trace state `w3c.tracestate`; events become logs with the event name in
field `event` (unless an attribute has that name); scope `otel.scope.name`/`.version`; a link
is a FOLLOWS_FROM reference unless its `opentracing.ref_type` attribute says `child_of`; list
and map values are tags of their compact JSON (pdata's `AsString`), an empty value "".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from meshscope.model.attributes import AttrValue, json_text
from meshscope.model.ids import is_valid_span_id
from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode

Json = dict[str, Any]
REF_TYPE = "opentracing.ref_type"


_TYPES = {bool: "bool", int: "int64", float: "float64", str: "string"}
"""The Jaeger type of a value of exactly these Python types (one dict lookup: a search
answer has ~10 tags per span); other values go through `key_value`'s checks."""


def key_value(key: str, value: AttrValue) -> Json:
    kind = _TYPES.get(type(value))
    if kind is not None:
        return {"key": key, "type": kind, "value": value}
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
    if value is None:  # an empty AnyValue
        return {"key": key, "type": "string", "value": ""}
    return {"key": key, "type": "string", "value": json_text(value)}


def span_tags(span: Span) -> list[Json]:
    tags = [key_value(k, v) for k, v in span.attributes.items()]
    if span.kind is not SpanKind.UNSPECIFIED:
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
    if span.trace_state:
        tags.append(key_value("w3c.tracestate", span.trace_state))
    return tags


def _ref_type(link: SpanLink) -> str:
    """A link's reference type: CHILD_OF when it says so (spans converted from Jaeger or
    OpenTracing carry `opentracing.ref_type`), else FOLLOWS_FROM."""
    return "CHILD_OF" if link.attributes.get(REF_TYPE) == "child_of" else "FOLLOWS_FROM"


def _log(event: SpanEvent) -> Json:
    fields = [key_value(k, v) for k, v in event.attributes.items()]
    if event.name and "event" not in event.attributes:
        fields.insert(0, key_value("event", event.name))
    return {"timestamp": event.time_ns // 1000, "fields": fields}


def _process_key(span: Span) -> Hashable:
    """What tells processes apart: the service and the resource (in any key order; 1, 1.0 and
    True are different values)."""
    try:
        key = (span.service, frozenset((k, v, type(v)) for k, v in span.resource.items()))
        hash(key)
    except TypeError:  # list values
        return json.dumps([span.service, sorted(span.resource.items())], default=str)
    return key


def shared_span_ids(spans: Sequence[Span]) -> dict[int, str]:
    """New ids for the SERVER spans that share their id with a CLIENT span (Zipkin's shared
    spans), by index in `spans`, as Jaeger's `DedupeClientServerSpanIDs` adjuster gives them
    (the UI keys spans by id): the next unused ids above the trace's largest."""
    kinds: dict[str, set[SpanKind]] = {}
    for span in spans:
        kinds.setdefault(span.span_id, set()).add(span.kind)
    shared = {i for i, span in enumerate(spans) if span.kind is SpanKind.SERVER
              and SpanKind.CLIENT in kinds[span.span_id]}  # fmt: skip
    if not shared:
        return {}
    used = {int(span_id, 16) for span_id in kinds if is_valid_span_id(span_id)}
    next_id = max(used, default=0)
    renamed: dict[int, str] = {}
    for index in sorted(shared):
        next_id += 1
        while next_id in used:
            next_id += 1
        if next_id >= 2**64:
            break  # no id left above the largest: kept shared, as Jaeger warns and stops
        used.add(next_id)
        renamed[index] = f"{next_id:016x}"
    return renamed


def trace_json(spans: Sequence[Span]) -> Json:
    """One trace: spans plus a processes table with one entry per distinct (service, resource).
    A SERVER span sharing its id with a CLIENT span gets a new one and the CLIENT span as its
    parent, and the spans whose parent was the shared id get it as theirs (`shared_span_ids`).
    """
    renamed = shared_span_ids(spans)
    new_parent = {spans[index].span_id: new for index, new in renamed.items()}
    processes: dict[str, Json] = {}
    keys: dict[Hashable, str] = {}
    # Spans read together often share one resource dict: its process is then found by the
    # dict's identity (valid while `spans` holds them all) without building its key again.
    by_identity: dict[tuple[str, int], str] = {}
    out_spans: list[Json] = []
    for index, span in enumerate(spans):
        process_id = by_identity.get((span.service, id(span.resource)))
        if process_id is None:
            resource_key = _process_key(span)
            process_id = keys.get(resource_key)
            if process_id is None:
                process_id = keys[resource_key] = f"p{len(keys) + 1}"
                tags = [key_value(k, v) for k, v in span.resource.items() if k != "service.name"]
                processes[process_id] = {"serviceName": span.service, "tags": tags}
            by_identity[span.service, id(span.resource)] = process_id
        span_id, parent_id = span.span_id, span.parent_span_id
        if index in renamed:  # the shared id is the client's: its parent
            span_id, parent_id = renamed[index], span.span_id
        elif parent_id in new_parent:
            parent_id = new_parent[parent_id]
        references = []
        if parent_id:
            references.append(
                {"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": parent_id}
            )
        references += [
            {"refType": _ref_type(link), "traceID": link.trace_id, "spanID": link.span_id}
            for link in span.links
        ]
        out_spans.append(
            {
                "traceID": span.trace_id,
                "spanID": span_id,
                "flags": span.flags & 0xFF,  # the W3C trace flags byte; OTLP keeps more bits
                "operationName": span.name,
                "references": references,
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": span_tags(span),
                "logs": [_log(event) for event in span.events],
                "processID": process_id,
                "warnings": None,
            }
        )
    trace_id = spans[0].trace_id if spans else ""
    return {"traceID": trace_id, "spans": out_spans, "processes": processes, "warnings": None}


def trace_fragment(spans: Sequence[Span]) -> orjson.Fragment:
    """`trace_json` written to JSON at once, for an answer of several traces: the dicts of one
    trace (~15 per span) are freed before the next is built, so a search answering 20 traces
    (~600 spans) keeps a few hundred of them alive, not ~10,000, and the garbage collector
    neither runs as often nor moves them to its oldest generation, whose collections (tens
    of ms in a server) were the API's slowest answers. orjson refuses integers beyond 64
    bits: such a trace is written by `json`."""
    body = trace_json(spans)
    try:
        return orjson.Fragment(orjson.dumps(body))
    except TypeError:
        return orjson.Fragment(json.dumps(body, separators=(",", ":")).encode())


def traces_fragments(found: list[list[Span]]) -> list[orjson.Fragment]:
    """`trace_fragment` of each trace, in order, each trace's spans released once written
    (`found` is emptied)."""
    found.reverse()
    out: list[orjson.Fragment] = []
    while found:
        out.append(trace_fragment(found.pop()))
    return out
