"""Tenancy on a real `meshscope serve` (DuckDB files, ingest worker processes, auth on), fed by
the real OpenTelemetry SDK exporters (OTLP/HTTP with `OTEL_EXPORTER_OTLP_HEADERS`, OTLP/gRPC
with `authorization` metadata) and raw OTLP, Loki and remote-write requests.

Tenants team-a ("alpha" markers) and team-b ("bravo" markers) write traces, logs and metrics,
some under the same service names. Then:
- every documented read route, called by team-a's reader with team-b's trace id and names in
  its parameters, answers without a byte of team-b's data (and team-b's reader, on the routes
  that can show it, does see it: the check is not vacuous);
- a token naming another tenant is 403 on reads and writes (gRPC PERMISSION_DENIED);
- derived metrics are per tenant: the same service's calls are counted per tenant, and a
  client span of team-a never pairs with a server span of team-b in the same trace;
- Loki's multi-tenant read `team-a|team-b` returns both, each labelled `__tenant_id__`;
- after a restart the tenants' stores are found again.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import grpc
import httpx
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from meshscope.api.openapi_routes import access_of
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from tests.auth.test_matrix import OPERATIONS
from tests.e2e.test_durability import Ports, serve

WRITER_A = "tenant-a-writer-0123456789abcdef"
WRITER_B = "tenant-b-writer-0123456789abcdef"
READER_A = "tenant-a-reader-0123456789abcdef"
READER_B = "tenant-b-reader-0123456789abcdef"
READER_AB = "tenant-ab-reader-0123456789abcde"
TOKENS = f"""tokens:
  - {{name: a-writer, token: {WRITER_A}, scopes: [write], tenants: [team-a]}}
  - {{name: b-writer, token: {WRITER_B}, scopes: [write], tenants: [team-b]}}
  - {{name: a-reader, token: {READER_A}, scopes: [read], tenants: [team-a]}}
  - {{name: b-reader, token: {READER_B}, scopes: [read], tenants: [team-b]}}
  - {{name: ab-reader, token: {READER_AB}, scopes: [read], tenants: [team-a, team-b]}}
"""
CONFIG = """
auth:
  enabled: true
  tokens_file: {tokens}
  reload_interval_seconds: 0
tenancy:
  enabled: true
pipeline:
  flush_interval_seconds: 0.5
  servicegraph_ttl_seconds: 1
slos:
  - {{name: bravo-availability, service: shared-svc, objective: 0.99, tenant: team-b}}
"""
NOW_NS = time.time_ns() - 30 * 10**9
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# The cross-tenant trace: team-a's client span, team-b's server span (its child).
CROSS_TRACE = "c0ffee00" * 4
CLIENT_SPAN = "00000000000000a1"
SERVER_SPAN = "00000000000000b1"
# team-a's own paired call, the positive control for pairing.
OWN_TRACE = "a11ce000" * 4
SHARED_SPANS = {"team-a": 5, "team-b": 7}  # server spans of `shared-svc` per tenant


def bearer(token: str, tenant: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if tenant is not None:
        headers["X-Scope-OrgID"] = tenant
    return headers


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _trace_request(service: str, spans: list[dict[str, Any]]) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", service))
    added = rs.scope_spans.add().spans
    for span in spans:
        added.add(
            trace_id=bytes.fromhex(span["trace"]),
            span_id=bytes.fromhex(span["id"]),
            parent_span_id=bytes.fromhex(span.get("parent", "")),
            name=span["name"],
            kind=span["kind"],
            start_time_unix_nano=NOW_NS,
            end_time_unix_nano=NOW_NS + 2_000_000,
        )
    return request.SerializeToString()


def _logs_request(service: str, body: str, trace_id: str) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", service))
    rl.scope_logs.add().log_records.add(
        time_unix_nano=NOW_NS, body=AnyValue(string_value=body), trace_id=bytes.fromhex(trace_id)
    )
    return request.SerializeToString()


def _sdk_spans(service: str, shared: int, marker: str) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tenancy-test")
    for index in range(3):
        with tracer.start_as_current_span(
            f"{marker}-op-{index}", kind=SpanKind.SERVER, attributes={"team": marker}
        ):
            pass
    spans = list(exporter.get_finished_spans())
    shared_provider = TracerProvider(resource=Resource({"service.name": "shared-svc"}))
    shared_exporter = InMemorySpanExporter()
    shared_provider.add_span_processor(SimpleSpanProcessor(shared_exporter))
    shared_tracer = shared_provider.get_tracer("tenancy-test")
    for _ in range(shared):
        with shared_tracer.start_as_current_span("GET /shared", kind=SpanKind.SERVER):
            pass
    return spans + list(shared_exporter.get_finished_spans())


def _ids(spans: list[ReadableSpan]) -> list[str]:
    """The spans' trace ids, in order: the first is a trace of the tenant's own service."""
    return list(dict.fromkeys(f"{span.context.trace_id:032x}" for span in spans))


@dataclass(frozen=True)
class Served:
    ports: Ports
    workdir: Path
    trace_ids: dict[str, list[str]]  # per tenant, the SDK traces' ids

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.ui}{path}"


def serve_tenancy(workdir: Path, ports: Ports) -> AbstractContextManager[subprocess.Popen[bytes]]:
    (workdir / "tokens.yaml").write_text(TOKENS)
    config = workdir / "meshscope.yaml"
    config.write_text(CONFIG.format(tokens=workdir / "tokens.yaml"))
    return serve(workdir / "tenancy.duckdb", ports, config=config)


def _write_all(ports: Ports) -> dict[str, list[str]]:
    """Each tenant's telemetry; returns the SDK traces' ids per tenant."""
    ids: dict[str, list[str]] = {}
    # team-a: the SDK over OTLP/HTTP, credentials from OTEL_EXPORTER_OTLP_HEADERS.
    spans_a = _sdk_spans("alpha-svc", SHARED_SPANS["team-a"], "alpha")
    saved = os.environ.get("OTEL_EXPORTER_OTLP_HEADERS")
    os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer%20{WRITER_A}"
    try:
        http_exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{ports.otlp_http}/v1/traces")
    finally:
        if saved is None:
            del os.environ["OTEL_EXPORTER_OTLP_HEADERS"]
        else:
            os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = saved
    assert http_exporter.export(spans_a) is SpanExportResult.SUCCESS
    ids["team-a"] = _ids(spans_a)
    # team-b: the SDK over OTLP/gRPC with authorization metadata.
    spans_b = _sdk_spans("bravo-svc", SHARED_SPANS["team-b"], "bravo")
    grpc_exporter = GrpcSpanExporter(
        endpoint=f"127.0.0.1:{ports.otlp_grpc}",
        insecure=True,
        headers=(("authorization", f"Bearer {WRITER_B}"),),
    )
    assert grpc_exporter.export(spans_b) is SpanExportResult.SUCCESS
    grpc_exporter.shutdown()
    ids["team-b"] = _ids(spans_b)
    otlp = f"http://127.0.0.1:{ports.otlp_http}"
    proto = {"Content-Type": "application/x-protobuf"}
    # The cross-tenant call, and team-a's own paired call.
    cross_client = _trace_request(
        "frontend", [{"trace": CROSS_TRACE, "id": CLIENT_SPAN, "name": "GET /x", "kind": 3}]
    )
    cross_server = _trace_request(
        "checkout",
        [{"trace": CROSS_TRACE, "id": SERVER_SPAN, "parent": CLIENT_SPAN, "name": "GET /x",
          "kind": 2}],
    )  # fmt: skip
    own = [
        ("frontend", {"trace": OWN_TRACE, "id": "00000000000000c1", "name": "GET /y", "kind": 3}),
        ("payments", {"trace": OWN_TRACE, "id": "00000000000000c2", "parent": "00000000000000c1",
                      "name": "GET /y", "kind": 2}),
    ]  # fmt: skip
    posts = [
        (WRITER_A, "/v1/traces", cross_client),
        (WRITER_B, "/v1/traces", cross_server),
        *[(WRITER_A, "/v1/traces", _trace_request(svc, [span])) for svc, span in own],
        (WRITER_A, "/v1/logs", _logs_request("alpha-svc", "alpha-secret-line", ids["team-a"][0])),
        (WRITER_B, "/v1/logs", _logs_request("bravo-svc", "bravo-secret-line", ids["team-b"][0])),
    ]
    for token, path, body in posts:
        response = httpx.post(otlp + path, content=body, headers={**proto, **bearer(token)})
        assert response.status_code == 200, response.text
    ui = f"http://127.0.0.1:{ports.ui}"
    for token, marker in ((WRITER_A, "alpha"), (WRITER_B, "bravo")):
        loki = {"streams": [{"stream": {"service_name": f"{marker}-svc", "job": f"{marker}-job"},
                             "values": [[str(NOW_NS), f"{marker}-loki-line"]]}]}  # fmt: skip
        response = httpx.post(
            ui + "/loki/api/v1/push",
            content=orjson.dumps(loki),
            headers={"Content-Type": "application/json", **bearer(token)},
        )
        assert response.status_code == 204, response.text
        write = WriteRequest()
        series = write.timeseries.add()
        series.labels.add(name="__name__", value=f"{marker}_only_total")
        series.labels.add(name=f"{marker}_label", value=f"{marker}-value")
        series.samples.add(value=1.0, timestamp=NOW_NS // 10**6)
        response = httpx.post(
            ui + "/api/v1/write",
            content=bytes(cramjam.snappy.compress_raw(write.SerializeToString())),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                     "X-Prometheus-Remote-Write-Version": "0.1.0", **bearer(token)},
        )  # fmt: skip
        assert response.status_code == 204, response.text
    return ids


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ports = Ports()
    workdir = tmp_path_factory.mktemp("tenancy")
    with serve_tenancy(workdir, ports):
        ids = _write_all(ports)
        served = Served(ports, workdir, ids)
        _wait_for_derived(served)
        yield served


def _promql(served: Served, query: str, token: str, tenant: str | None = None) -> list[Any]:
    response = httpx.get(
        served.url("/api/v1/query"), params={"query": query}, headers=bearer(token, tenant)
    )
    assert response.status_code == 200, response.text
    result: list[Any] = response.json()["data"]["result"]
    return result


def _wait_for_derived(served: Served) -> None:
    """Until both tenants' span metrics and team-a's own service-graph edge are stored."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a = _promql(served, 'sum(calls_total{service_name="shared-svc"})', READER_A)
        b = _promql(served, 'sum(calls_total{service_name="shared-svc"})', READER_B)
        edge = _promql(served, "traces_service_graph_request_total", READER_A)
        if a and b and edge:
            return
        time.sleep(0.25)
    raise AssertionError("derived metrics did not arrive")


PARAMS: dict[str, dict[str, str]] = {
    "/api/traces": {"service": "bravo-svc", "lookback": "1h", "limit": "100"},
    "/api/dependencies": {"endTs": str(time.time_ns() // 10**6 + 60_000), "lookback": "3600000"},
    "/api/meshscope/logs": {"service": "bravo-svc"},
    "/api/metrics/calls": {"service": "bravo-svc"},
    "/api/metrics/errors": {"service": "bravo-svc"},
    "/api/metrics/latencies": {"service": "bravo-svc", "quantile": "0.95"},
    "/api/operations": {"service": "bravo-svc"},
    "/api/v1/query": {"query": '{__name__=~".+"}'},
    "/api/v1/query_range": {"query": '{__name__=~"calls.*"}', "start": str(time.time() - 600),
                            "end": str(time.time() + 60), "step": "15"},
    "/api/v1/query_exemplars": {"query": "duration_milliseconds_bucket",
                                "start": str(time.time() - 600), "end": str(time.time() + 60)},
    "/api/v1/series": {"match[]": '{__name__=~".+"}'},
    "/loki/api/v1/query": {"query": 'count_over_time({service_name=~".+"}[1h])'},
    "/loki/api/v1/query_range": {"query": '{service_name=~".+"}', "limit": "1000",
                                 "start": str(NOW_NS - 10**12), "end": str(time.time_ns())},
    "/loki/api/v1/series": {"match[]": '{service_name=~".+"}'},
    "/tempo/api/search": {"tags": "service.name=bravo-svc", "start": str(int(time.time()) - 3600)},
    "/api/v2/traces": {"serviceName": "bravo-svc", "lookback": "3600000", "limit": "100"},
    "/api/v2/spans": {"serviceName": "bravo-svc"},
    "/api/v2/traceMany": {"traceIds": "{trace_id}"},
    "/api/v2/dependencies": {"endTs": str(time.time_ns() // 10**6 + 60_000),
                             "lookback": "3600000"},
}  # fmt: skip
SHOWS_DATA = {
    "/api/services", "/api/traces", "/api/traces/{trace_id}", "/api/operations",
    "/api/services/{service}/operations", "/api/meshscope/logs", "/api/meshscope/red",
    "/api/meshscope/traces/{trace_id}/logs", "/api/v1/query", "/api/v1/series",
    "/api/v1/label/{name}/values", "/api/v1/labels", "/api/v1/metadata", "/api/v1/rules",
    "/loki/api/v1/query_range", "/loki/api/v1/label/{name}/values", "/loki/api/v1/series",
    "/tempo/api/traces/{trace_id}", "/tempo/api/search", "/api/v2/services", "/api/v2/traces",
    "/api/v2/trace/{trace_id}", "/api/v2/spans", "/api/v2/traceMany",
}  # fmt: skip
"""Routes whose answer to team-b's reader holds team-b's data (so team-a's answer without
it means isolation, not an empty route)."""
READS = [
    (app, path)
    for app, method, path in OPERATIONS
    if method == "GET" and path not in ("/", "/health", "/metrics", "/ui/{path:path}")
]


def _read(served: Served, app: str, path: str, token: str) -> httpx.Response:
    trace_id = served.trace_ids["team-b"][0]
    fill = {"{trace_id}": trace_id, "{service}": "bravo-svc", "{name}": "service_name",
            "{tag}": "service.name", "{path:path}": "js/app.js"}  # fmt: skip
    if path == "/api/v1/label/{name}/values":
        fill["{name}"] = "__name__"
    concrete = path
    for key, value in fill.items():
        concrete = concrete.replace(key, value)
    params = {k: v.replace("{trace_id}", trace_id) for k, v in PARAMS.get(path, {}).items()}
    port = served.ports.zipkin if app == "zipkin" else served.ports.ui
    return httpx.get(
        f"http://127.0.0.1:{port}{concrete}", params=params, headers=bearer(token), timeout=30
    )


def _leaks(served: Served, text: str) -> list[str]:
    """team-b's markers in `text`, but for the trace id the request itself named (answers
    echo it: "trace ... not found"); that trace's spans and logs say "bravo" anyway."""
    asked = served.trace_ids["team-b"][0]
    markers = ["bravo", *(tid for tid in served.trace_ids["team-b"] if tid != asked)]
    return [marker for marker in markers if marker in text.lower()]


@pytest.mark.parametrize(("app", "path"), READS)
def test_no_read_sees_the_other_tenants_data(served: Served, app: str, path: str) -> None:
    mine = _read(served, app, path, READER_A)
    assert mine.status_code < 500, (path, mine.text)
    assert not _leaks(served, mine.text), (path, mine.text[:2000])
    if path in SHOWS_DATA:
        theirs = _read(served, app, path, READER_B)
        assert theirs.status_code == 200, (path, theirs.text)
        assert _leaks(served, theirs.text), (path, "team-b's reader sees no team-b data")


WRITES = [
    (app, path)
    for app, method, path in OPERATIONS
    if method == "POST" and access_of(method, path) == ("write",)
]


@pytest.mark.parametrize(("app", "path"), WRITES)
def test_no_write_lands_in_another_tenant(served: Served, app: str, path: str) -> None:
    port = {"ui": served.ports.ui, "otlp_http": served.ports.otlp_http,
            "zipkin": served.ports.zipkin}[app]  # fmt: skip
    response = httpx.post(
        f"http://127.0.0.1:{port}{path}",
        content=b"{}",
        headers={"Content-Type": "application/json", **bearer(WRITER_A, "team-b")},
    )
    assert response.status_code == 403, (path, response.text)
    assert "team-b" in response.text or app == "otlp_http"  # OTLP: a google.rpc.Status


def test_naming_another_tenant_is_403(served: Served) -> None:
    response = httpx.get(served.url("/api/services"), headers=bearer(READER_A, "team-b"))
    assert response.status_code == 403 and "team-b" in response.json()["errors"][0]["msg"]
    response = httpx.get(  # several tenants: not on the exemplars route
        served.url("/api/v1/query_exemplars"),
        params={"query": "up"},
        headers=bearer(READER_AB, "team-a|team-b"),
    )
    assert response.status_code == 400 and response.json()["errorType"] == "bad_data"
    body = _trace_request("intruder", [{"trace": "ab" * 16, "id": "ab" * 8, "name": "x",
                                        "kind": 2}])  # fmt: skip
    response = httpx.post(
        f"http://127.0.0.1:{served.ports.otlp_http}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf", **bearer(WRITER_A, "team-b")},
    )
    assert response.status_code == 403
    channel = grpc.insecure_channel(f"127.0.0.1:{served.ports.otlp_grpc}")
    try:
        export = channel.unary_unary(TRACE_EXPORT)
        with pytest.raises(grpc.RpcError) as refused:
            export(
                body,
                metadata=(("authorization", f"Bearer {WRITER_A}"), ("x-scope-orgid", "team-b")),
                timeout=10,
            )
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        channel.close()
    services = httpx.get(served.url("/api/services"), headers=bearer(READER_B)).json()["data"]
    assert "intruder" not in services


def test_span_metrics_are_per_tenant(served: Served) -> None:
    for reader, tenant in ((READER_A, "team-a"), (READER_B, "team-b")):
        result = _promql(served, 'sum(calls_total{service_name="shared-svc"})', reader)
        assert float(result[0]["value"][1]) == SHARED_SPANS[tenant]
    # The reader of both tenants picks one with the header.
    result = _promql(served, 'sum(calls_total{service_name="shared-svc"})', READER_AB, "team-b")
    assert float(result[0]["value"][1]) == SHARED_SPANS["team-b"]


def test_spans_of_two_tenants_never_pair(served: Served) -> None:
    edges_a = _promql(served, "traces_service_graph_request_total", READER_A)
    pairs_a = {(e["metric"]["client"], e["metric"]["server"]) for e in edges_a}
    assert ("frontend", "payments") in pairs_a  # team-a's own call pairs
    edges_b = _promql(served, "traces_service_graph_request_total", READER_B)
    pairs_b = {(e["metric"]["client"], e["metric"]["server"]) for e in edges_b}
    assert ("frontend", "checkout") not in pairs_a | pairs_b


def test_prometheus_reads_several_tenants_with_tenant_labels(served: Served) -> None:
    """Mimir's tenant federation: a token of both tenants naming both sees each tenant's
    series labelled `__tenant_id__`, and can aggregate or select by it."""
    query = 'sum by (__tenant_id__) (calls_total{service_name="shared-svc"})'
    result = _promql(served, query, READER_AB, "team-a|team-b")
    got = {r["metric"]["__tenant_id__"]: float(r["value"][1]) for r in result}
    assert got == {"team-a": SHARED_SPANS["team-a"], "team-b": SHARED_SPANS["team-b"]}
    only_b = _promql(served, 'sum(calls_total{__tenant_id__="team-b"})', READER_AB, "team-a|team-b")
    assert float(only_b[0]["value"][1]) == sum(
        float(r["value"][1]) for r in _promql(served, "sum(calls_total)", READER_B)
    )
    refused = httpx.get(
        served.url("/api/v1/query"),
        params={"query": "up"},
        headers=bearer(READER_A, "team-a|team-b"),
    )
    assert refused.status_code == 403


def test_slos_are_their_tenants(served: Served) -> None:
    mine = httpx.get(served.url("/api/meshscope/slos"), headers=bearer(READER_A)).json()
    theirs = httpx.get(served.url("/api/meshscope/slos"), headers=bearer(READER_B)).json()
    assert mine["data"]["slos"] == []
    assert [slo["name"] for slo in theirs["data"]["slos"]] == ["bravo-availability"]


def test_loki_reads_several_tenants_with_tenant_labels(served: Served) -> None:
    params = {"query": '{job=~".+-job"}', "start": str(NOW_NS - 10**12),
              "end": str(time.time_ns())}  # fmt: skip
    response = httpx.get(
        served.url("/loki/api/v1/query_range"),
        params=params,
        headers=bearer(READER_AB, "team-a|team-b"),
    )
    assert response.status_code == 200, response.text
    streams = response.json()["data"]["result"]
    found = {(s["stream"]["__tenant_id__"], s["values"][0][1]) for s in streams}
    assert found == {("team-a", "alpha-loki-line"), ("team-b", "bravo-loki-line")}
    only_b = {**params, "query": '{job=~".+-job", __tenant_id__="team-b"}'}
    response = httpx.get(
        served.url("/loki/api/v1/query_range"),
        params=only_b,
        headers=bearer(READER_AB, "team-a|team-b"),
    )
    lines = [s["values"][0][1] for s in response.json()["data"]["result"]]
    assert lines == ["bravo-loki-line"]
    refused = httpx.get(
        served.url("/loki/api/v1/query_range"),
        params=params,
        headers=bearer(READER_A, "team-a|team-b"),
    )
    assert refused.status_code == 403


def test_tenants_are_found_again_after_a_restart(tmp_path: Path) -> None:
    ports = Ports()
    trace = "d00d" * 8
    body = _trace_request("restart-svc", [{"trace": trace, "id": "d1" * 8, "name": "op",
                                           "kind": 2}])  # fmt: skip
    with serve_tenancy(tmp_path, ports):
        response = httpx.post(
            f"http://127.0.0.1:{ports.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf", **bearer(WRITER_B)},
        )
        assert response.status_code == 200
    assert (tmp_path / "tenancy.tenants" / "team-b.duckdb").is_file()
    with serve_tenancy(tmp_path, ports):
        ui = f"http://127.0.0.1:{ports.ui}/api/traces/{trace}"
        assert httpx.get(ui, headers=bearer(READER_B)).status_code == 200
        assert httpx.get(ui, headers=bearer(READER_A)).status_code == 404
