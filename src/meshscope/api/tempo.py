"""Tempo's query API under `/tempo`, for Grafana's Tempo data source (URL `http://<ui>/tempo`).

- `GET /tempo/api/echo`: `echo` (the data source's connection test).
- `GET /tempo/api/traces/{id}`: the trace as `tempopb.Trace` protobuf when the client accepts
  `application/protobuf` (Grafana does), else JSON `{"batches": [ResourceSpans...]}`; 404.
- `GET /tempo/api/search`: `q` (TraceQL subset, query/traceql.py; default `{}`) or Tempo's
  tag search `tags` (logfmt `key=value` pairs, matched as query/tempo_search.py's module doc
  says; with `q` it is a 400, as in Tempo), `minDuration`/`maxDuration` (Go durations, cut
  to whole milliseconds as Tempo does, bounding the trace's duration inclusively; 0 = no
  bound; they apply to `q` searches too), `limit` (default 20), `start`/`end` (unix
  seconds, default the last hour), `spss` (spans per span set, default 3): `{"traces":
  [{traceID, rootServiceName, rootTraceName, startTimeUnixNano, durationMs, spanSet,
  spanSets}], "metrics": {"inspectedTraces"}}`.
- `GET /tempo/api/search/tags`, `/tempo/api/v2/search/tags` and
  `/tempo/api/search/tag/{tag}/values`, `/tempo/api/v2/search/tag/{tag}/values`: attribute
  names and values (`service.name` and `name` from the catalog, others from the newest 200
  traces of `start`/`end`, default the last hour); values are narrowed by `q`, the query so
  far (the spans of its span sets), when this subset can read it.
Bad parameters and queries are 400 with a plain-text message, as Tempo answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meshscope.api.handlers import Handler, status_of, threaded
from meshscope.api.params import ParamError, go_duration_ns, integer, logfmt_pairs
from meshscope.api.params import trace_id as parse_trace_id
from meshscope.ingest.prom_names import format_float
from meshscope.model.otlp import any_value, trace_request
from meshscope.model.spans import Span
from meshscope.query.tempo_search import TraceFilter, TraceHit, search, tag_search
from meshscope.query.traceql import (
    INTRINSICS,
    MatchAll,
    Query,
    TraceQLError,
    field_value,
    matches,
    parse,
)
from meshscope.query.traceql_stages import Spanset
from meshscope.store.base import Storage, TraceQuery

PREFIX = "/tempo"
HOUR_S = 3600
MAX_LIMIT = 1000
MAX_Q = 10_000
"""A tag-value `q` longer than this narrows nothing (it is only a hint for autocompletion)."""
TAG_SAMPLE_TRACES = 200
_INTRINSIC_TAGS = ("duration", "kind", "name", "status", "statusMessage")


def tempo_routes(storage: Storage, now_ns: Callable[[], int] = time.time_ns) -> list[Route]:
    def get_trace(request: Request) -> Response:
        trace_id = parse_trace_id(request.path_params["trace_id"], "traceID")
        spans = storage.traces.get_trace(trace_id)
        if not spans:
            return PlainTextResponse(f"trace not found: {trace_id}", status_code=404)
        message = trace_request(spans)
        if _wants_protobuf(request.headers.get("accept", "")):
            return Response(message.SerializeToString(), media_type="application/protobuf")
        batches = MessageToDict(message).get("resourceSpans", [])
        return Response(orjson.dumps({"batches": batches}), media_type="application/json")

    def window(params: QueryParams) -> tuple[int, int]:
        """`start`/`end` (unix seconds; default the last hour) as [start_ns, end_ns)."""
        end_s = integer(params["end"], "end") if params.get("end") else now_ns() // 10**9
        start_s = integer(params["start"], "start") if params.get("start") else end_s - HOUR_S
        if end_s < start_s:
            raise ParamError("invalid end: before start")
        return start_s * 10**9, (end_s + 1) * 10**9

    def search_traces(request: Request) -> Response:
        params = request.query_params
        query, trace_filter = _search_query(params)
        limit = integer(params.get("limit") or "20", "limit", 1, MAX_LIMIT)
        per_set = integer(params.get("spss") or "3", "spss", 1, MAX_LIMIT)
        found = search(storage.traces, query, *window(params), limit, trace_filter)
        fields = _fields(query)
        body = {
            "traces": [_trace_json(hit, fields, per_set) for hit in found.traces],
            "metrics": {"inspectedTraces": found.inspected_traces, "completedJobs": 1,
                        "totalJobs": 1},
        }  # fmt: skip
        return Response(orjson.dumps(body), media_type="application/json")

    def tags(request: Request, v2: bool) -> Response:
        resource, span = _sampled_keys(_recent_spans(storage, *window(request.query_params)))
        if not v2:
            names = sorted({*resource, *span})
            return Response(orjson.dumps({"tagNames": names}), media_type="application/json")
        scopes = [
            {"name": "resource", "tags": sorted(resource)},
            {"name": "span", "tags": sorted(span)},
            {"name": "intrinsic", "tags": list(_INTRINSIC_TAGS)},
        ]
        scope = request.query_params.get("scope", "")
        if scope not in _SCOPES:
            raise ParamError(f"invalid scope: {scope[:40]!r}")
        if scope and scope != "all":  # Tempo's other scopes (event, link, ...): none here
            scopes = [s for s in scopes if s["name"] == scope]
        return Response(orjson.dumps({"scopes": scopes}), media_type="application/json")

    def tag_values(request: Request, v2: bool) -> Response:
        tag = request.path_params["tag"]
        params = request.query_params
        values = _values(storage, tag, window(params), _narrowing(params.get("q", "")))
        if not v2:
            body: Any = {"tagValues": sorted({_typed(value)["value"] for value in values})}
        else:
            # Status and kind values are TraceQL keywords, as Tempo types them: Grafana's
            # builder quotes "string" values, and `{status="error"}` is no valid query.
            keyword = tag in ("status", "kind")
            body = {
                "tagValues": [
                    {"type": "keyword", "value": value} if keyword else _typed(value)
                    for value in values
                ]
            }
        return Response(orjson.dumps(body), media_type="application/json")

    def endpoint(work: Callable[..., Response], *args: Any) -> Handler:
        def refuse(error: Exception) -> Response:
            return PlainTextResponse(str(error), status_code=status_of(error))

        return threaded(lambda request: work(request, *args), JSONResponse, refuse,
                        (ParamError, TraceQLError))  # fmt: skip

    async def echo(request: Request) -> Response:
        return PlainTextResponse("echo")

    return [
        Route(f"{PREFIX}/api/echo", echo, methods=["GET"]),
        Route(f"{PREFIX}/api/traces/{{trace_id}}", endpoint(get_trace), methods=["GET"]),
        Route(f"{PREFIX}/api/search", endpoint(search_traces), methods=["GET"]),
        Route(f"{PREFIX}/api/search/tags", endpoint(tags, False), methods=["GET"]),
        Route(f"{PREFIX}/api/v2/search/tags", endpoint(tags, True), methods=["GET"]),
        Route(
            f"{PREFIX}/api/search/tag/{{tag}}/values", endpoint(tag_values, False), methods=["GET"]
        ),
        Route(
            f"{PREFIX}/api/v2/search/tag/{{tag}}/values",
            endpoint(tag_values, True),
            methods=["GET"],
        ),
    ]


def _wants_protobuf(accept: str) -> bool:
    """Whether the Accept header prefers `application/protobuf` (Grafana's) to JSON: listed
    with a quality above 0 and not below JSON's (or `*/*`'s)."""
    quality: dict[str, float] = {}
    for item in accept.split(",")[:32]:
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = q
    protobuf = quality.get("application/protobuf", 0.0)
    json = max(quality.get("application/json", 0.0), quality.get("*/*", 0.0))
    return protobuf > 0 and protobuf >= json


_SCOPES = frozenset(
    ("", "all", "resource", "span", "intrinsic", "event", "link", "instrumentation")
)
"""The `scope`s Tempo's v2 tag search knows; any other is a 400, as in Tempo."""


def _search_query(params: QueryParams) -> tuple[Query, TraceFilter]:
    """The search's query and whole-trace conditions: from `q`, or from Tempo's `tags`; with
    `minDuration`/`maxDuration` either way. Empty parameters count as absent, as in Tempo."""
    q, tags = params.get("q") or "", params.get("tags") or ""
    if q and tags:
        raise ParamError("invalid request: can't specify tags and q in the same query")
    min_ms = _duration_ms(params, "minDuration")
    max_ms = _duration_ms(params, "maxDuration")
    if min_ms and max_ms is not None and min_ms > max_ms:  # as Tempo, maxDuration=0 too
        raise ParamError("invalid maxDuration: must be greater than minDuration")
    durations = TraceFilter((min_ms or 0) * 10**6, (max_ms or 0) * 10**6)
    if tags:
        return tag_search(logfmt_pairs(tags, "tags"), durations)
    return parse(q or "{}"), durations


def _duration_ms(params: QueryParams, name: str) -> int | None:
    """A Go duration parameter in whole milliseconds (Tempo's SearchRequest carries them so);
    None when absent or empty."""
    text = params.get(name) or ""
    return go_duration_ns(text, name) // 10**6 if text else None


def _fields(query: Query) -> list[str]:
    """Attribute fields the query names or selects (returned with each matching span, as
    Tempo does)."""
    named = [*(c.field for c in query.conditions()), *query.selected()]
    return [field for field in dict.fromkeys(named) if field not in INTRINSICS]


def _trace_json(hit: TraceHit, fields: list[str], per_set: int) -> dict[str, Any]:
    # The query's span sets: one (as Tempo's `{A} && {B}`, `{A} || {B}` give the spans of
    # both sides each once, `{A} >> {B}` the B spans, ...), or one per `by()` group.
    spansets = [_spanset_json(spanset, fields, per_set) for spanset in hit.spansets]
    out: dict[str, Any] = {
        "traceID": hit.trace_id,
        # As Tempo: without a root span (no parent) received, it says so.
        "rootServiceName": hit.root.service if hit.root.is_root else NO_ROOT,
        "rootTraceName": hit.root.name if hit.root.is_root else "",
        "startTimeUnixNano": str(hit.start_ns),
        "durationMs": (hit.end_ns - hit.start_ns) // 10**6,
        "spanSets": spansets,
    }
    if spansets:
        out["spanSet"] = spansets[0]
    return out


def _spanset_json(spanset: Spanset, fields: list[str], per_set: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "spans": [_span_json(span, fields) for span in spanset.spans[:per_set]],
        "matched": len(spanset.spans),
    }
    if spanset.attributes:  # what `by()` and the aggregates said of the set, as Tempo
        out["attributes"] = [
            {"key": key, "value": MessageToDict(any_value(value)) if value is not None else {}}
            for key, value in spanset.attributes
        ]
    return out


def _span_json(span: Span, fields: list[str]) -> dict[str, Any]:
    attributes = [{"key": "service.name", "value": {"stringValue": span.service}}]
    for name in fields:
        value = field_value(span, name)
        key = name.split(".", 1)[1] if not name.startswith(".") else name[1:]
        if value is not None and key != "service.name":
            attributes.append({"key": key, "value": MessageToDict(any_value(value))})
    return {
        "spanID": span.span_id,
        "name": span.name,
        "startTimeUnixNano": str(span.start_ns),
        "durationNanos": str(span.duration_ns),
        "attributes": attributes,
    }


def _recent_spans(storage: Storage, start_ns: int, end_ns: int) -> list[Span]:
    """The spans of the newest `TAG_SAMPLE_TRACES` traces in [start_ns, end_ns)."""
    query = TraceQuery(start_ns=start_ns, end_ns=end_ns, limit=TAG_SAMPLE_TRACES)
    ids = storage.traces.find_trace_ids(query)
    return [span for spans in storage.traces.get_traces(ids).values() for span in spans]


def _sampled_keys(spans: list[Span]) -> tuple[set[str], set[str]]:
    resource: set[str] = {"service.name"}
    span_keys: set[str] = set()
    for span in spans:
        resource.update(span.resource)
        span_keys.update(span.attributes)
    return resource, span_keys


def _narrowing(text: str) -> Query | None:
    """Tag values' `q`: the query so far, whose spans the values are taken from (Grafana
    sends the other conditions of the query being written). One this subset cannot read
    (a half-written condition, a pipeline) narrows nothing, as Tempo ignores what it
    cannot use."""
    if not text.strip() or len(text) > MAX_Q:
        return None
    try:
        query = parse(text)
    except TraceQLError:
        return None
    return query if not all(isinstance(node, MatchAll) for node in query.filters()) else None


def _values(
    storage: Storage, tag: str, window: tuple[int, int], query: Query | None = None
) -> list[Any]:
    """Values of `tag` (`service.name`, `name`, a scoped `resource.x`/`span.x`/`.x`, or a
    bare attribute name) on the spans of `query` in `window` (without a query, services
    and operation names come from the catalog: all of them)."""
    if tag in ("status", "kind"):
        return ["error", "ok", "unset"] if tag == "status" else [
            "server", "client", "producer", "consumer", "internal", "unspecified"
        ]  # fmt: skip
    if query is None and tag in ("service.name", "resource.service.name", ".service.name"):
        return sorted(storage.catalog.services())
    if query is None and tag == "name":
        names = {
            op.name for s in storage.catalog.services() for op in storage.catalog.operations(s)
        }
        return sorted(names)
    field = tag if tag.startswith((".", "span.", "resource.")) or tag == "name" else "." + tag
    spans = _recent_spans(storage, *window)
    if query is not None:
        filters = query.filters()
        spans = [span for span in spans if any(matches(node, span) for node in filters)]
    # An unscoped `.x` has the values of span and resource attributes `x` alike, as Tempo
    # reads both columns for it (a query's `.x` prefers the span's, the values list both).
    fields = [field] if not field.startswith(".") else [f"span{field}", f"resource{field}"]
    seen: dict[tuple[str, Any], Any] = {}  # by type and value, as Tempo: 1 and 1.0 are two
    for span in spans:
        for one in fields:
            value = field_value(span, one)
            if isinstance(value, str | int | float | bool):
                seen.setdefault((type(value).__name__, value), value)
    return [seen[key] for key in sorted(seen)]


NO_ROOT = "<root span not yet received>"
"""Tempo's `rootServiceName` for a trace without a root span (pkg/search)."""


def _typed(value: Any) -> dict[str, str]:
    if isinstance(value, bool):
        return {"type": "bool", "value": str(value).lower()}
    if isinstance(value, int):
        return {"type": "int", "value": str(value)}
    if isinstance(value, float):  # as Go prints it, which Tempo does: 1.0 is "1"
        return {"type": "float", "value": format_float(value)}
    return {"type": "string", "value": str(value)}
