"""The description of every HTTP route of every meshscope app, from which api/openapi.py builds
the OpenAPI document. A route of the apps that is missing here fails tests/api/test_openapi.py.

Each entry: (app names, method, path) -> (summary, parameters, response description); a
parameter is (name, where: query|path|header|body, required, type, description).
"""

from __future__ import annotations

from typing import NamedTuple


class Param(NamedTuple):
    name: str
    where: str
    required: bool
    type: str
    description: str


class Doc(NamedTuple):
    apps: tuple[str, ...]
    method: str
    path: str
    summary: str
    params: tuple[Param, ...] = ()
    response: str = "JSON"


def q(name: str, description: str, type_: str = "string", required: bool = False) -> Param:
    return Param(name, "query", required, type_, description)


def p(name: str, description: str) -> Param:
    return Param(name, "path", True, "string", description)


UI, OTLP, ZIPKIN = "ui", "otlp_http", "zipkin"
_SPM = (
    q("service", "service (repeatable, required)", required=True),
    q("groupByOperation", "true: one series per operation"),
    q("endTs", "ms since epoch (default now)", "integer"),
    q("lookback", "ms (default 1 h)", "integer"),
    q("step", "ms (default 5 s)", "integer"),
    q("ratePer", "rate window, ms (default 10 min)", "integer"),
    q("spanKind", "server (default), client, ... (repeatable)"),
)
_TIME_RANGE = (q("start", "range start, ms since epoch (default end - 1 h)", "integer"),
               q("end", "range end, ms since epoch (default now)", "integer"))  # fmt: skip
_PROM_RANGE = (q("start", "RFC 3339 or unix seconds"), q("end", "RFC 3339 or unix seconds"))
_TEMPO_RANGE = (
    q("start", "unix seconds (default end - 1 h)", "integer"),
    q("end", "unix seconds (default now)", "integer"),
)
_TEMPO_TAG_VALUES = (
    q("q", "the query so far: values of its spans only (ignored if not readable)"),
    *_TEMPO_RANGE,
)
_MATCH = q("match[]", "series selector (repeatable)")
_DETECTED = (
    q("query", "LogQL log query", required=True), q("start", "time"), q("end", "time"),
    q("since", "duration"), q("line_limit", "newest lines read, default 100", "integer"),
    q("limit", "fields or values, default 1000", "integer"),
    q("field_limit", "older name of limit", "integer"), q("step", "checked, not used"),
)  # fmt: skip
_BODY_OTLP = Param("body", "body", True, "binary", "OTLP protobuf or JSON, gzip allowed")

DOCS: tuple[Doc, ...] = (
    Doc((UI, OTLP, ZIPKIN), "GET", "/health", "Liveness: `ok`", response="text"),
    Doc((UI,), "GET", "/metrics", "meshscope's own metrics", response="Prometheus text"),
    Doc((UI,), "GET", "/api/services", "Jaeger: service names", response="Jaeger envelope"),
    Doc((UI,), "GET", "/api/services/{service:path}/operations", "Jaeger: operation names",
        (p("service", "service name"),), "Jaeger envelope"),
    Doc((UI,), "GET", "/api/operations", "Jaeger: operations with span kind",
        (q("service", "service name", required=True),
         q("spanKind", "server|client|producer|consumer|internal")), "Jaeger envelope"),
    Doc((UI,), "GET", "/api/traces", "Jaeger: search, full traces most recent first",
        (q("service", "service (required unless traceID)"), q("operation", "span name"),
         q("tags", 'JSON map, e.g. {"error":"true"}'), q("tag", "key:value (repeatable)"),
         q("minDuration", "Go duration, e.g. 100ms"), q("maxDuration", "Go duration"),
         q("start", "µs since epoch (default end - 2 days)", "integer"),
         q("end", "µs since epoch (default now)", "integer"),
         q("limit", "traces, default 100, at most 1500", "integer"),
         q("traceID", "fetch these traces (repeatable)"), q("lookback", "ignored")),
        "Jaeger envelope"),
    Doc((UI,), "GET", "/api/traces/{trace_id}", "Jaeger: one trace (404 if unknown)",
        (p("trace_id", "1-32 hex characters"),), "Jaeger envelope"),
    Doc((UI,), "GET", "/api/dependencies", "Jaeger: service dependencies",
        (q("endTs", "ms since epoch (default now)", "integer"),
         q("lookback", "ms (default 24 h)", "integer"), q("service", "only edges of it")),
        "Jaeger envelope"),
    Doc((UI,), "GET", "/api/metrics/latencies", "Jaeger SPM: latency quantile per service",
        (q("quantile", "e.g. 0.95", "number", required=True), *_SPM), "Jaeger MetricFamily"),
    Doc((UI,), "GET", "/api/metrics/calls", "Jaeger SPM: calls per second per service",
        _SPM, "Jaeger MetricFamily"),
    Doc((UI,), "GET", "/api/metrics/errors", "Jaeger SPM: errors per call per service",
        _SPM, "Jaeger MetricFamily"),
    Doc((UI,), "GET", "/tempo/api/echo", "Tempo: connection test (echo)"),
    Doc((UI,), "GET", "/tempo/api/traces/{trace_id}",
        "Tempo: one trace (protobuf tempopb.Trace with Accept: application/protobuf, else JSON)",
        (p("trace_id", "1-32 hex characters"),)),
    Doc((UI,), "GET", "/tempo/api/search", "Tempo: TraceQL search (span-set filters) or tag search",
        (q("q", "TraceQL, e.g. { status = error }"),
         q("tags", 'logfmt key=value pairs, e.g. service.name="cart" http.status_code=500 '
           "(not with q)"),
         q("minDuration", "Go duration, e.g. 100ms: traces at least this long"),
         q("maxDuration", "Go duration, e.g. 1.5s: traces at most this long"),
         q("limit", "traces, default 20", "integer"),
         q("start", "unix seconds (default end - 1 h)", "integer"),
         q("end", "unix seconds (default now)", "integer"),
         q("spss", "spans per span set, default 3", "integer"))),
    Doc((UI,), "GET", "/tempo/api/search/tags", "Tempo: attribute names", _TEMPO_RANGE),
    Doc((UI,), "GET", "/tempo/api/v2/search/tags", "Tempo: attribute names by scope",
        (q("scope", "resource, span or intrinsic"), *_TEMPO_RANGE)),
    Doc((UI,), "GET", "/tempo/api/search/tag/{tag}/values", "Tempo: values of an attribute",
        (p("tag", "attribute name"), *_TEMPO_TAG_VALUES)),
    Doc((UI,), "GET", "/tempo/api/v2/search/tag/{tag}/values",
        "Tempo: typed values of an attribute",
        (p("tag", "scoped attribute or intrinsic"), *_TEMPO_TAG_VALUES)),
    Doc((UI,), "GET", "/api/meshscope/stats", "spans and log records per service"),
    Doc((UI,), "GET", "/api/meshscope/whoami",
        "the token's name and tenants, and the tenant read (the UI's tenant picker)"),
    Doc((UI,), "GET", "/api/meshscope/red", "RED per service or operation",
        (*_TIME_RANGE, q("service", "one service"), q("groupBy", "service|operation"),
         q("spanKind", "server (default)|client|producer|consumer|internal|all"))),
    Doc((UI,), "GET", "/api/meshscope/red/range", "RED per interval (charts, sparklines)",
        (*_TIME_RANGE, q("steps", "intervals, default 60, at most 1000", "integer"),
         q("service", "one service"), q("groupBy", "service|operation"),
         q("spanKind", "server (default)|client|producer|consumer|internal|all"))),
    Doc((UI,), "GET", "/api/meshscope/graph", "service graph with per-edge numbers", _TIME_RANGE),
    Doc((UI,), "GET", "/api/meshscope/traces/{trace_id}/stats",
        "counts, services and critical path of a trace", (p("trace_id", "1-32 hex"),)),
    Doc((UI,), "GET", "/api/meshscope/openapi.json", "this OpenAPI document"),
    *(Doc((UI,), method, path, summary, params, "Prometheus envelope")
      for method in ("GET", "POST")
      for path, summary, params in (
          ("/api/v1/query", "PromQL instant query",
           (q("query", "PromQL", required=True), q("time", "evaluation time"))),
          ("/api/v1/query_range", "PromQL range query",
           (q("query", "PromQL", required=True), *_PROM_RANGE, q("step", "duration"))),
          ("/api/v1/series", "series matching selectors", (_MATCH, *_PROM_RANGE)),
          ("/api/v1/labels", "label names", (_MATCH, *_PROM_RANGE)),
          ("/api/v1/format_query", "the query pretty-printed (400 if it does not parse)",
           (q("query", "PromQL", required=True),)),
          ("/api/v1/query_exemplars", "exemplars (slowest spans) of span-metric series",
           (q("query", "PromQL", required=True), *_PROM_RANGE)))),
    Doc((UI,), "GET", "/api/v1/label/{name}/values", "values of a label",
        (p("name", "label name"), _MATCH), "Prometheus envelope"),
    Doc((UI,), "GET", "/api/v1/metadata", "metric metadata", (q("metric", "one metric"),),
        "Prometheus envelope"),
    Doc((UI,), "GET", "/api/v1/status/buildinfo", "build information",
        response="Prometheus envelope"),
    Doc((OTLP,), "POST", "/v1/traces", "OTLP/HTTP traces", (_BODY_OTLP,), "OTLP response"),
    Doc((OTLP,), "POST", "/v1/metrics", "OTLP/HTTP metrics", (_BODY_OTLP,), "OTLP response"),
    Doc((OTLP,), "POST", "/v1/logs", "OTLP/HTTP logs", (_BODY_OTLP,), "OTLP response"),
    Doc((ZIPKIN,), "POST", "/api/v2/spans", "Zipkin: ingest spans (202)",
        (Param("body", "body", True, "binary", "ListOfSpans JSON"),), "empty"),
    Doc((ZIPKIN,), "GET", "/api/v2/services", "Zipkin: service names"),
    Doc((ZIPKIN,), "GET", "/api/v2/spans", "Zipkin: span names of a service",
        (q("serviceName", "service", required=True),)),
    Doc((ZIPKIN,), "GET", "/api/v2/remoteServices", "Zipkin: services a service calls",
        (q("serviceName", "service", required=True),)),
    Doc((ZIPKIN,), "GET", "/api/v2/traces", "Zipkin: search",
        (q("serviceName", "service"), q("spanName", "span name or all"),
         q("remoteServiceName", "the service a span of serviceName calls"),
         q("annotationQuery", "k=v and word ..."), q("minDuration", "µs, > 0", "integer"),
         q("maxDuration", "µs (with minDuration)", "integer"),
         q("endTs", "ms (default now)", "integer"),
         q("lookback", "ms (default 24 h)", "integer"),
         q("limit", "traces, default 10", "integer"))),
    Doc((ZIPKIN,), "GET", "/api/v2/trace/{trace_id}", "Zipkin: one trace (404 if unknown)",
        (p("trace_id", "16 or 32 hex"),)),
    Doc((ZIPKIN,), "GET", "/api/v2/traceMany", "Zipkin: several traces",
        (q("traceIds", "comma-separated ids", required=True),)),
    Doc((ZIPKIN,), "GET", "/api/v2/dependencies", "Zipkin: dependency links",
        (q("endTs", "ms", "integer", required=True),
         q("lookback", "ms (default 24 h)", "integer"))),
    Doc((UI,), "POST", "/api/v1/write", "Prometheus remote write 1.0 (snappy protobuf; 204)",
        (Param("body", "body", True, "binary", "snappy-compressed prometheus.WriteRequest"),),
        "empty (204) or plain-text error"),
    Doc((UI,), "GET", "/api/sampling", "Jaeger remote sampling strategy of a service",
        (q("service", "service name", required=True),), "Jaeger sampling strategy"),
    Doc((UI,), "GET", "/sampling", "Jaeger remote sampling strategy (v2 path)",
        (q("service", "service name", required=True),), "Jaeger sampling strategy"),
    Doc((UI,), "POST", "/loki/api/v1/push", "Loki push (JSON or snappy protobuf; 204)",
        (Param("body", "body", True, "binary", "logproto.PushRequest or JSON streams"),),
        "empty (204) or plain-text error"),
    *(Doc((UI,), method, path, summary, params, "Loki envelope")
      for method in ("GET", "POST")
      for path, summary, params in (
          ("/loki/api/v1/query_range", "LogQL over a time range",
           (q("query", "LogQL", required=True), q("start", "ns, s or RFC 3339"),
            q("end", "ns, s or RFC 3339"), q("since", "duration"),
            q("limit", "lines, default 100", "integer"), q("direction", "backward|forward"),
            q("step", "metric queries: duration or seconds"))),
          ("/loki/api/v1/query", "LogQL at one instant",
           (q("query", "LogQL", required=True), q("time", "ns, s or RFC 3339"),
            q("limit", "lines", "integer"), q("direction", "backward|forward"))),
          ("/loki/api/v1/labels", "label names",
           (q("start", "time"), q("end", "time"), q("since", "duration"),
            q("query", "stream selector"))),
          ("/loki/api/v1/label/{name}/values", "values of a label",
           (p("name", "label name"), q("start", "time"), q("end", "time"),
            q("since", "duration"), q("query", "stream selector"))),
          ("/loki/api/v1/series", "streams matching selectors",
           (q("match[]", "stream selector (repeatable)"), q("start", "time"),
            q("end", "time"), q("since", "duration"))),
          ("/loki/api/v1/index/volume", "bytes per label values of matching streams",
           (q("query", "stream selector", required=True), q("start", "time"),
            q("end", "time"), q("limit", "groups, default 100", "integer"),
            q("targetLabels", "comma-separated label names"),
            q("aggregateBy", "series|labels"))),
          ("/loki/api/v1/index/volume_range", "bytes per label values, per step",
           (q("query", "stream selector", required=True), q("start", "time"),
            q("end", "time"), q("since", "duration"),
            q("step", "duration or seconds (default range / 250)"),
            q("limit", "groups per step, default 100", "integer"),
            q("targetLabels", "comma-separated label names"),
            q("aggregateBy", "series|labels"))),
      )),
    *(Doc((UI,), method, path, summary, params, "JSON object")
      for method in ("GET", "POST")
      for path, summary, params in (
          ("/loki/api/v1/index/stats", "streams, entries and bytes of a selector",
           (q("query", "stream selector", required=True), q("start", "time"),
            q("end", "time"))),
          ("/loki/api/v1/detected_labels", "stream labels and their cardinality (Drilldown)",
           (q("query", "stream selector"), q("start", "time"), q("end", "time"),
            q("since", "duration"))),
          ("/loki/api/v1/detected_fields", "fields of the newest lines of a log query",
           _DETECTED),
          ("/loki/api/v1/detected_field/{name}/values", "values of a detected field",
           (p("name", "field name"), *_DETECTED)),
      )),
    Doc((UI,), "GET", "/loki/api/v1/status/buildinfo", "Loki build information"),
    Doc((UI,), "GET", "/api/meshscope/traces/{trace_id}/logs", "the logs of a trace",
        (p("trace_id", "1-32 hex digits, not all zeros"), q("access", "true: include access logs"),
         q("limit", "at most this many logs (default 1000, at most 10000)", "integer"))),
    Doc((UI,), "GET", "/", "the web UI (single page; views in the URL fragment)", response="HTML"),
    Doc((UI,), "GET", "/ui/{path:path}", "web UI assets: scripts, styles, vendored libraries",
        (p("path", "file under the UI's static folder"),), "file"),
    Doc((UI,), "GET", "/api/meshscope/slos", "every configured SLO evaluated: SLI, budget, burn",
        (q("time", "evaluation instant, ms since epoch (default now)", "integer"),)),
    Doc((UI,), "GET", "/api/v1/rules",
        "Prometheus: SLO burn-rate rules and the rule files' PromQL alerting rules",
        (q("type", "alert|record"), q("exclude_alerts", "true|false"),
         q("rule_group[]", "only these groups (repeatable)")), "Prometheus envelope"),
    Doc((UI,), "GET", "/api/v1/alerts",
        "Prometheus: firing SLO alerts, pending and firing PromQL rule alerts",
        response="Prometheus envelope"),
    Doc((UI,), "GET", "/prometheus/api/v1/rules", "Loki ruler: the LogQL alerting rules",
        (q("type", "alert|record"), q("exclude_alerts", "true|false"),
         q("rule_group[]", "only these groups (repeatable)")), "Prometheus envelope"),
    Doc((UI,), "GET", "/prometheus/api/v1/alerts",
        "Loki ruler: pending and firing LogQL rule alerts", response="Prometheus envelope"),
    Doc((UI,), "GET", "/api/meshscope/logs", "log records newest first, with trace ids",
        (*_TIME_RANGE, q("trace", "a trace id: only its records"), q("service", "one service"),
         q("severity", "lowest level: trace|debug|info|warn|error|fatal"),
         q("q", "text the body contains"), q("limit", "records, default 200, at most 2000",
         "integer"), q("access", "true: include access logs"))),
)  # fmt: skip

# Who may call each route when authentication is on (docs/security.md): `open` needs no
# credentials, the others a token holding one of the scopes named. Not listed: `read`.
OPEN, READ, WRITE, ADMIN = "open", "read", "write", "admin"
ACCESS: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/health"): (OPEN,),
    ("GET", "/"): (OPEN,),  # the page and its assets hold no data; the UI asks for a token
    ("GET", "/ui/{path:path}"): (OPEN,),
    ("GET", "/api/meshscope/openapi.json"): (OPEN,),
    ("GET", "/metrics"): (ADMIN,),  # every tenant's numbers; `auth.metrics_open` opens it
    ("POST", "/v1/traces"): (WRITE,),
    ("POST", "/v1/metrics"): (WRITE,),
    ("POST", "/v1/logs"): (WRITE,),
    ("POST", "/api/v2/spans"): (WRITE,),
    ("POST", "/api/v1/write"): (WRITE,),
    ("POST", "/loki/api/v1/push"): (WRITE,),
    # Parts of client requests forwarded by the other nodes of a cluster (`cluster.token`);
    # only served with a `cluster:` section, so not in DOCS (ADR 0015).
    ("POST", "/internal/cluster/v1/{kind}"): (WRITE,),
    # SDKs that write fetch their sampling strategy; readers may look at it too.
    ("GET", "/api/sampling"): (READ, WRITE),
    ("GET", "/sampling"): (READ, WRITE),
}


def access_of(method: str, path: str) -> tuple[str, ...]:
    """The scopes route `method path` (a template) accepts, or (`open`,)."""
    return ACCESS.get((method, path), (READ,))
