"""The parameters of Jaeger's `GET /api/traces` search, as Jaeger's query_parser.go reads them.

Tags come as URL-encoded JSON (`tags={"error":"true"}`, what Jaeger UI and Grafana send) or as
repeated `tag=key:value`. The tags Jaeger derives from OTLP fields are searchable too:
`error=true` and `otel.status_code` select by span status, `span.kind` by kind; every other tag
matches a span attribute, or its resource's (process tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from starlette.datastructures import QueryParams

from meshscope.api.params import (
    NS_PER_US,
    ParamError,
    go_duration_ns,
    optional_int,
    scaled,
    trace_id,
)
from meshscope.model.spans import SpanKind, StatusCode
from meshscope.store.base import TraceQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 1500  # Jaeger UI's largest "Limit Results"
DEFAULT_LOOKBACK_NS = 2 * 24 * 3600 * 10**9
KINDS = {kind.name.lower(): kind for kind in SpanKind if kind is not SpanKind.UNSPECIFIED}
STATUSES = {status.name: status for status in StatusCode}


@dataclass(frozen=True, slots=True)
class Search:
    """Either trace ids to fetch directly, or a query."""

    trace_ids: list[str] = field(default_factory=list)
    query: TraceQuery = field(default_factory=TraceQuery)


def parse_search(params: QueryParams, now_ns: Callable[[], int] = time.time_ns) -> Search:
    ids = [trace_id(raw) for raw in params.getlist("traceID") if raw.strip()]
    service = params.get("service", "").strip()
    operation = params.get("operation", "").strip()
    limit = optional_int(params, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT) or DEFAULT_LIMIT
    end = optional_int(params, "end", 0, 0)
    end_ns = scaled(end, NS_PER_US) if end else now_ns()
    start = optional_int(params, "start", 0, 0)
    start_ns = scaled(start, NS_PER_US) if start else max(0, end_ns - DEFAULT_LOOKBACK_NS)
    if start_ns > end_ns:
        raise ParamError("parameter start must not be after end")
    min_ns = _duration(params, "minDuration")
    max_ns = _duration(params, "maxDuration")
    if max_ns and min_ns > max_ns:
        raise ParamError("parameter maxDuration must be greater than minDuration")
    if ids:
        return Search(trace_ids=ids)
    if not service:
        raise ParamError("parameter service is required (or give traceID)")
    status, kind, attributes = _conditions(_tags(params))
    return Search(
        query=TraceQuery(
            service=service,
            operation=operation,
            attributes=attributes,
            min_duration_ns=min_ns,
            max_duration_ns=max_ns,
            start_ns=start_ns,
            end_ns=end_ns + 1,  # Jaeger's end is inclusive; TraceQuery's is not
            limit=limit,
            status=status,
            kind=kind,
        )
    )


def _duration(params: QueryParams, name: str) -> int:
    text = params.get(name, "")
    return go_duration_ns(text, name) if text.strip() else 0


def _tags(params: QueryParams) -> dict[str, str]:
    tags: dict[str, str] = {}
    for raw in params.getlist("tags"):
        if not raw.strip():
            continue
        try:
            decoded = orjson.loads(raw)  # depth-limited (1024), unlike json.loads
        except ValueError as exc:
            raise ParamError(f"malformed parameter tags (not JSON): {exc}") from None
        if not isinstance(decoded, dict):
            raise ParamError('malformed parameter tags: expected a JSON object like {"k":"v"}')
        for key, value in decoded.items():
            if isinstance(value, dict | list) or value is None:
                raise ParamError(f"malformed parameter tags: value of {key!r} must be a string")
            tags[key] = value if isinstance(value, str) else json.dumps(value)
    for raw in params.getlist("tag"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise ParamError(f'malformed parameter tag="{raw}": expected key:value')
        tags[key] = value
    return tags


def _conditions(
    tags: dict[str, str],
) -> tuple[StatusCode | None, SpanKind | None, dict[str, str]]:
    status: StatusCode | None = None
    kind: SpanKind | None = None
    attributes: dict[str, str] = {}
    for key, value in tags.items():
        if key == "error" and value.lower() == "true":
            status = _one_status(status, StatusCode.ERROR)
        elif key == "otel.status_code":
            found = STATUSES.get(value.upper().removeprefix("STATUS_CODE_"))
            if found is None:
                raise ParamError(f"tag otel.status_code must be OK, ERROR or UNSET, not {value!r}")
            status = _one_status(status, found)
        elif key == "span.kind":
            kind = KINDS.get(value.lower())
            if kind is None:
                raise ParamError(f"tag span.kind must be one of {', '.join(KINDS)}, not {value!r}")
        else:
            attributes[key] = value
    return status, kind, attributes


def _one_status(current: StatusCode | None, wanted: StatusCode) -> StatusCode:
    if current is not None and current is not wanted:
        raise ParamError("tags ask for two different span statuses")
    return wanted
