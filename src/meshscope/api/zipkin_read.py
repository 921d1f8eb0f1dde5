"""The Zipkin v2 read API (`/api/v2/...` on the Zipkin port): routes only.

Errors are plain text, as Zipkin's server writes them: 400 for bad parameters, 404 for an
unknown trace. `annotationQuery` terms are ANDed: `key=value` matches a tag (span attribute or
resource attribute), `error` an error span, any other bare word a span with a tag of that name
or an annotation of that value; bare words other than `error` are checked on the traces the
store finds (up to OVERSCAN times `limit` of them), so a rare word may return fewer traces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from meshscope.api.handlers import Handler, status_of, threaded
from meshscope.api.params import (
    NS_PER_MS,
    NS_PER_US,
    ParamError,
    integer,
    optional_int,
    scaled,
    trace_id,
)
from meshscope.api.zipkin_model import span_json
from meshscope.model.spans import Span, StatusCode
from meshscope.pipeline.derive.servicegraph import REQUESTS
from meshscope.query import traces as trace_queries
from meshscope.query.dependencies import dependencies
from meshscope.store.base import MAX_TIME_NS, LabelMatcher, MatchOp, Storage, TraceQuery

DAY_MS = 24 * 3600 * 1000
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
OVERSCAN = 10
NowNs = Callable[[], int]


def _endpoint(work: Callable[[Request], Any]) -> Handler:
    return threaded(
        work, JSONResponse, lambda error: PlainTextResponse(str(error), status_of(error))
    )


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise ParamError(f"{name} is required")
    return value


def parse_annotation_query(text: str) -> tuple[dict[str, str], bool, list[str]]:
    """(tag conditions, errors only, other bare words)."""
    tags: dict[str, str] = {}
    words: list[str] = []
    error = False
    for term in text.split(" and "):
        term = term.strip()
        if not term:
            continue
        key, sep, value = term.partition("=")
        if sep and not key.strip():
            raise ParamError(f'annotationQuery term "{term}" has no key')
        if sep and not value.strip():  # `key=`: the key with any value, as Zipkin's
            term, sep = key.strip(), ""
        if sep:
            tags[key.strip()] = value.strip()
        elif term == "error":
            error = True
        else:
            words.append(term)
    return tags, error, words


def _has_word(spans: list[Span], word: str, service: str) -> bool:
    """Whether a span (of `service`, when given: as Zipkin's QueryRequest, the service
    constrains the other conditions) has the tag or an annotation `word`."""
    return any(
        (not service or s.service == service)
        and (word in s.attributes or any(e.name == word for e in s.events))
        for s in spans
    )


def zipkin_read_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    def services(request: Request) -> Any:
        return sorted(storage.catalog.services())

    def span_names(request: Request) -> Any:
        service = _required(request, "serviceName")
        return sorted({op.name for op in storage.catalog.operations(service)})

    def remote_services(request: Request) -> Any:
        service = _required(request, "serviceName")
        matcher = LabelMatcher("client", MatchOp.EQ, service)
        series = storage.metrics.latest(REQUESTS, [matcher], MAX_TIME_NS, MAX_TIME_NS)
        return sorted({dict(s.labels).get("server", "") for s in series} - {""})

    def traces(request: Request) -> Any:
        params = request.query_params
        end_ms = optional_int(params, "endTs", now_ns() // NS_PER_MS, 1)
        lookback_ms = optional_int(params, "lookback", DAY_MS, 1)
        limit = optional_int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        min_us = optional_int(params, "minDuration", 0)
        max_us = optional_int(params, "maxDuration", 0)
        # As Zipkin's QueryRequest.Builder.build().
        if "minDuration" in params and min_us <= 0:
            raise ParamError("minDuration <= 0")
        if "maxDuration" in params and "minDuration" not in params:
            raise ParamError("maxDuration is only valid with minDuration")
        if max_us and min_us > max_us:
            raise ParamError("maxDuration must be greater than or equal to minDuration")
        span_name = params.get("spanName", "").strip()
        tags, error, words = parse_annotation_query(params.get("annotationQuery", ""))
        remote = params.get("remoteServiceName", "").strip()
        if remote:  # the remote endpoint of a span of the service: its `peer.service`
            tags = {**tags, "peer.service": remote}
        service = params.get("serviceName", "").strip()
        end_ns = scaled(end_ms, NS_PER_MS)
        query = TraceQuery(
            service=service,
            operation="" if span_name == "all" else span_name,
            attributes=tags,
            min_duration_ns=scaled(min_us, NS_PER_US),
            max_duration_ns=scaled(max_us, NS_PER_US),
            status=StatusCode.ERROR if error else None,
            start_ns=max(0, end_ns - scaled(lookback_ms, NS_PER_MS)),
            end_ns=end_ns + 1,
            limit=limit * OVERSCAN if words else limit,
        )
        found = trace_queries.find_traces(storage.traces, query)
        found = [t for t in found if all(_has_word(t, w, service) for w in words)][:limit]
        return [[span_json(s) for s in spans] for spans in found]

    def trace(request: Request) -> Any:
        wanted = trace_id(request.path_params["trace_id"], "traceId")
        spans = trace_queries.get_trace(storage.traces, wanted)
        if not spans:
            return PlainTextResponse(f"trace {wanted} not found", status_code=404)
        return [span_json(s) for s in spans]

    def trace_many(request: Request) -> Any:
        raw = _required(request, "traceIds")
        ids = [trace_id(part, "traceIds") for part in raw.split(",") if part.strip()]
        if not ids:  # as Zipkin's server
            raise ParamError("traceIds parameter is empty")
        found, _ = trace_queries.get_traces(storage.traces, ids)
        return [[span_json(s) for s in spans] for spans in found]

    def dependency_links(request: Request) -> Any:
        end_ms = integer(_required(request, "endTs"), "endTs", 1)
        lookback_ms = optional_int(request.query_params, "lookback", DAY_MS, 1)
        end_ns = scaled(end_ms, NS_PER_MS)
        start_ns = max(0, end_ns - scaled(lookback_ms, NS_PER_MS))
        out = []
        for edge in dependencies(storage.metrics, start_ns, end_ns):
            link: dict[str, Any] = {
                "parent": edge.parent,
                "child": edge.child,
                "callCount": edge.calls,
            }
            if edge.errors:
                link["errorCount"] = edge.errors
            out.append(link)
        return out

    base = "/api/v2"
    return [
        Route(f"{base}/services", _endpoint(services), methods=["GET"]),
        Route(f"{base}/spans", _endpoint(span_names), methods=["GET"]),
        Route(f"{base}/remoteServices", _endpoint(remote_services), methods=["GET"]),
        Route(f"{base}/traces", _endpoint(traces), methods=["GET"]),
        Route(f"{base}/trace/{{trace_id}}", _endpoint(trace), methods=["GET"]),
        Route(f"{base}/traceMany", _endpoint(trace_many), methods=["GET"]),
        Route(f"{base}/dependencies", _endpoint(dependency_links), methods=["GET"]),
    ]
