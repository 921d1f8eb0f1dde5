"""Per-tenant ingest limits on a real `meshscope serve` (DuckDB, ingest worker processes)
with two write tokens, driven by the real OpenTelemetry SDK exporters.

- tenant team-a (20 spans/s, burst 40) sends faster than that over OTLP/HTTP: refused with
  429 + Retry-After, the SDK's retry waits that long and every span is delivered;
- tenant team-b (same limits), sending under its rate at the same time: no refusal;
- OTLP/gRPC past the limit: RESOURCE_EXHAUSTED with RetryInfo, and the SDK's gRPC exporter
  retries after it and delivers;
- tenant bulk (the team-a token's second tenant, chosen by X-Scope-OrgID) has a bytes/s
  limit: a large body is refused before it is decoded;
- the per-tenant counts are on /metrics.
No assertion is on speed: only on what was refused and what arrived.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_durability import Ports, serve
from tests.limits import requests

TOKEN_A = "team-a-writer-0123456789abcdef"
TOKEN_B = "team-b-writer-0123456789abcdef"
ADMIN = "limits-admin-0123456789abcdef"
READER = "limits-reader-0123456789abcdef"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

CONFIG = """
auth:
  enabled: true
  tokens_file: {tokens}
  reload_interval_seconds: 0
limits:
  overrides_file: {overrides}
  reload_interval_seconds: 0
  defaults:
    spans_per_second: 20
    spans_burst: 40
  tenants:
    bulk:
      request_bytes_per_second: 1000
      request_bytes_burst: 100000
"""
TOKENS = f"""tokens:
  - {{name: a, token: {TOKEN_A}, scopes: [write], tenants: [team-a, bulk]}}
  - {{name: b, token: {TOKEN_B}, scopes: [write], tenants: [team-b]}}
  - {{name: ops, token: {ADMIN}, scopes: [admin]}}
  - {{name: reader, token: {READER}, scopes: [read], tenants: [team-a, team-b]}}
"""


Server = AbstractContextManager[subprocess.Popen[bytes]]


def serve_with_limits(workdir: Path, ports: Ports) -> Server:
    (workdir / "tokens.yaml").write_text(TOKENS)
    config = workdir / "meshscope.yaml"
    (workdir / "overrides.yaml").write_text("overrides: {}\n")
    config.write_text(
        CONFIG.format(tokens=workdir / "tokens.yaml", overrides=workdir / "overrides.yaml")
    )
    return serve(workdir / "limits.duckdb", ports, config=config)


def _spans(service: str, count: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("limits-test")
    for index in range(count):
        with tracer.start_as_current_span(f"op-{index % 3}"):
            pass
    return list(exporter.get_finished_spans())


def _metrics(ports: Ports) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(
        f"http://127.0.0.1:{ports.ui}/metrics",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("meshscope_tenant")
        for sample in family.samples
    }


def _value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def _stored_spans(ports: Ports, service: str) -> int:
    response = httpx.get(
        f"http://127.0.0.1:{ports.ui}/api/traces",
        params={"service": service, "limit": 1000, "lookback": "1h"},
        headers={"Authorization": f"Bearer {READER}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sum(len(trace["spans"]) for trace in response.json()["data"])


@dataclass(frozen=True)
class Served:
    ports: Ports
    proc: subprocess.Popen[bytes]
    workdir: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    chosen = Ports()
    workdir = tmp_path_factory.mktemp("limits")
    with serve_with_limits(workdir, chosen) as proc:
        yield Served(chosen, proc, workdir)


@pytest.fixture
def ports(served: Served) -> Ports:
    return served.ports


def test_sdk_retries_after_429_and_the_other_tenant_is_not_refused(ports: Ports) -> None:
    endpoint = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"
    exporter_a = OTLPSpanExporter(endpoint=endpoint, headers={"authorization": f"Bearer {TOKEN_A}"})
    exporter_b = OTLPSpanExporter(endpoint=endpoint, headers={"authorization": f"Bearer {TOKEN_B}"})
    results_b: list[SpanExportResult] = []

    def team_b() -> None:  # 8 spans every 0.5 s: 16 spans/s, under its 20
        for _ in range(6):
            results_b.append(exporter_b.export(_spans("svc-b", 8)))
            time.sleep(0.5)

    sender = threading.Thread(target=team_b)
    sender.start()
    # team-a: 3 batches of 40 at once, 120 spans against 40 + 20/s: refused, then retried.
    results_a = [exporter_a.export(_spans("svc-a", 40)) for _ in range(3)]
    sender.join(60)
    assert results_a == [SpanExportResult.SUCCESS] * 3
    assert results_b == [SpanExportResult.SUCCESS] * 6
    metrics = _metrics(ports)
    refused_a = _value(metrics, "meshscope_tenant_refused_requests_total",
                       tenant="team-a", reason="spans_rate")  # fmt: skip
    assert refused_a >= 1  # answered 429 + Retry-After, and the SDK came back
    assert _value(metrics, "meshscope_tenant_items_total", tenant="team-a", signal="spans") == 120
    assert _value(metrics, "meshscope_tenant_items_total", tenant="team-b", signal="spans") == 48
    refused_b = [v for (name, labels), v in metrics.items()
                 if ("tenant", "team-b") in labels and "refused" in name]  # fmt: skip
    assert sum(refused_b) == 0
    assert _stored_spans(ports, "svc-a") == 120  # nothing twice, nothing lost
    assert _stored_spans(ports, "svc-b") == 48


def test_retry_after_is_when_the_bucket_admits(ports: Ports) -> None:
    url = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"
    headers = {"Authorization": f"Bearer {TOKEN_B}", "Content-Type": "application/x-protobuf"}
    time.sleep(2.5)  # team-b's bucket full again (40 spans)
    assert httpx.post(url, content=requests.spans(40), headers=headers).status_code == 200
    refused = httpx.post(url, content=requests.spans(40), headers=headers)
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 2  # 40 missing spans at 20/s: 2 s less the time since
    time.sleep(retry_after)
    assert httpx.post(url, content=requests.spans(40), headers=headers).status_code == 200


def test_grpc_resource_exhausted_then_the_sdk_retries(ports: Ports) -> None:
    metadata = (("authorization", f"Bearer {TOKEN_A}"),)
    time.sleep(2.5)  # team-a's bucket full again
    with grpc.insecure_channel(f"127.0.0.1:{ports.otlp_grpc}") as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        export(requests.spans(40, "svc-grpc"), metadata=metadata, timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            export(requests.spans(20, "svc-grpc"), metadata=metadata, timeout=10)
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "tenant 'team-a' is over its limit of 20 spans/s" in str(raised.value.details())
    exporter = GrpcSpanExporter(
        endpoint=f"127.0.0.1:{ports.otlp_grpc}", insecure=True, headers=metadata
    )
    before = _value(_metrics(ports), "meshscope_tenant_refused_requests_total",
                    tenant="team-a", reason="spans_rate")  # fmt: skip
    # The bucket is (nearly) empty and 40 spans need 2 s of refill: the first attempt is
    # refused, the retry after the RetryInfo delay lands.
    assert exporter.export(_spans("svc-grpc-sdk", 40)) == SpanExportResult.SUCCESS
    exporter.shutdown()
    after = _value(_metrics(ports), "meshscope_tenant_refused_requests_total",
                   tenant="team-a", reason="spans_rate")  # fmt: skip
    assert after > before  # the SDK was refused at least once, and retried
    assert _stored_spans(ports, "svc-grpc-sdk") == 40


def test_bytes_limit_refuses_a_large_body_before_decoding(ports: Ports) -> None:
    url = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"
    headers = {
        "Authorization": f"Bearer {TOKEN_A}",
        "Content-Type": "application/x-protobuf",
        "X-Scope-OrgID": "bulk",  # the token's second tenant
    }
    response = httpx.post(url, content=b"\xff" * 200_000, headers=headers)  # undecodable
    assert response.status_code == 413  # not 400: refused on its size, never decoded
    response = httpx.post(url, content=b"\xff" * 90_000, headers=headers)
    assert response.status_code == 400  # within the burst: decoded, and undecodable
    response = httpx.post(url, content=b"\xff" * 20_000, headers=headers)
    assert response.status_code == 429  # the rest of the burst is 10,000 bytes
    assert int(response.headers["Retry-After"]) >= 10
    headers["X-Scope-OrgID"] = "team-b"  # not this token's
    assert httpx.post(url, content=requests.spans(1), headers=headers).status_code == 403
    metrics = _metrics(ports)
    assert _value(metrics, "meshscope_tenant_refused_requests_total",
                  tenant="bulk", reason="bytes_rate") == 1  # fmt: skip
    assert _value(metrics, "meshscope_tenant_refused_requests_total",
                  tenant="bulk", reason="too_large") == 1  # fmt: skip
    assert _value(metrics, "meshscope_tenant_refused_requests_total",
                  tenant="team-a", reason="forbidden_tenant") == 1  # fmt: skip


def test_sighup_reloads_the_overrides_file(served: Served) -> None:
    """Last: it leaves team-b with a burst of 5 spans."""
    url = f"http://127.0.0.1:{served.ports.otlp_http}/v1/traces"
    headers = {"Authorization": f"Bearer {TOKEN_B}", "Content-Type": "application/x-protobuf"}
    overrides = served.workdir / "overrides.yaml"
    overrides.write_text("overrides:\n  team-b: {spans_burst: 5}\n")
    served.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while httpx.post(url, content=requests.spans(6), headers=headers).status_code != 413:
        assert time.monotonic() < deadline, "the overrides file was not reloaded"
        time.sleep(0.2)
    metrics = _metrics(served.ports)
    assert _value(metrics, "meshscope_tenant_limits_reloads_total", outcome="ok") == 1
