"""A real `meshscope serve` with TLS on every listener and tokens required: the real
OpenTelemetry SDK exporters (OTLP/HTTP with the exporter's `headers`, OTLP/gRPC with
`OTEL_EXPORTER_OTLP_HEADERS`) deliver over TLS with a write token and are refused without;
Zipkin and the query APIs answer over TLS; SIGHUP reloads the tokens file; no secret ever
reaches the server's log; mutual TLS refuses clients without a certificate."""

from __future__ import annotations

import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.auth.certs import Certs, make_certs
from tests.auth.serving import auth_settings, client_context, serve_tls, tls_settings
from tests.auth.tokens import READER, SECRETS, WRITER, WRONG, bearer, write_tokens
from tests.e2e.test_durability import Ports
from tests.ingest.otel_sdk import REMOTE_TRACE_ID, make_spans

pytestmark = pytest.mark.slow
TRACE = format(REMOTE_TRACE_ID, "032x")
NEW_TOKEN = "rotated-token-0123456789abcdef"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-tls")


@pytest.fixture(scope="module")
def certs(workdir: Path) -> Certs:
    return make_certs(workdir / "certs")


@pytest.fixture(scope="module")
def server(workdir: Path, certs: Certs) -> Iterator[tuple[Ports, subprocess.Popen[bytes]]]:
    ports = Ports()
    tokens = write_tokens(workdir / "tokens.yaml")
    settings = {**tls_settings(certs), **auth_settings(tokens)}
    with serve_tls(workdir, ports, settings, client_context(certs)) as proc:
        yield ports, proc


def test_health_is_open_and_plain_http_is_not_served(
    server: tuple[Ports, subprocess.Popen[bytes]], certs: Certs
) -> None:
    ports, _ = server
    context = client_context(certs)
    for port in (ports.ui, ports.otlp_http, ports.zipkin):
        assert httpx.get(f"https://127.0.0.1:{port}/health", verify=context).text == "ok"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    # A client that does not trust the server's CA refuses it.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{ports.ui}/health", verify=ssl.create_default_context(
            cafile=str(certs.other_ca)))  # fmt: skip


def test_sdk_http_exporter_needs_a_write_token(
    server: tuple[Ports, subprocess.Popen[bytes]], certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports, _ = server
    # requests lets these override the exporter's certificate_file (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    endpoint = f"https://127.0.0.1:{ports.otlp_http}/v1/traces"

    def export(headers: dict[str, str] | None) -> SpanExportResult:
        exporter = HttpSpanExporter(
            endpoint=endpoint, certificate_file=str(certs.ca), headers=headers, timeout=10
        )
        try:
            return exporter.export(make_spans())
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]

    assert export(None) is SpanExportResult.FAILURE
    assert export({"Authorization": f"Bearer {READER}"}) is SpanExportResult.FAILURE
    assert export({"Authorization": f"Bearer {WRITER}"}) is SpanExportResult.SUCCESS
    answer = httpx.get(
        f"https://127.0.0.1:{ports.ui}/api/traces/{TRACE}",
        headers=bearer(READER),
        verify=client_context(certs),
    )
    assert answer.status_code == 200
    assert {span["operationName"] for span in answer.json()["data"][0]["spans"]} >= {
        "GET /api/cart"
    }


def test_sdk_grpc_exporter_with_env_headers(
    server: tuple[Ports, subprocess.Popen[bytes]],
    certs: Certs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports, _ = server
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certs.ca))

    def export() -> SpanExportResult:
        exporter = GrpcSpanExporter(endpoint=f"https://127.0.0.1:{ports.otlp_grpc}", timeout=10)
        try:
            return exporter.export(make_spans())
        finally:
            exporter.shutdown()

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    assert export() is SpanExportResult.FAILURE
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{WRITER}")
    assert export() is SpanExportResult.SUCCESS


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {WRONG}"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {READER}"),), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_grpc_refusals_over_tls(
    server: tuple[Ports, subprocess.Popen[bytes]],
    certs: Certs,
    metadata: tuple[tuple[str, str], ...],
    code: grpc.StatusCode,
) -> None:
    ports, _ = server
    credentials = grpc.ssl_channel_credentials(certs.ca.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{ports.otlp_grpc}", credentials) as channel:
        method = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as raised:
            method(b"", metadata=metadata, timeout=10)
    assert raised.value.code() is code


def test_zipkin_over_tls(server: tuple[Ports, subprocess.Popen[bytes]], certs: Certs) -> None:
    ports, _ = server
    span = [{"traceId": "5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "name": "get",
             "timestamp": int(time.time() * 1e6), "duration": 1000,
             "localEndpoint": {"serviceName": "zipkin-client"}}]  # fmt: skip
    url = f"https://127.0.0.1:{ports.zipkin}/api/v2/spans"
    context = client_context(certs)
    assert httpx.post(url, json=span, verify=context).status_code == 401
    assert httpx.post(url, json=span, verify=context, headers=bearer(WRITER)).status_code == 202
    services = httpx.get(f"https://127.0.0.1:{ports.zipkin}/api/v2/services", verify=context,
                         headers=bearer(READER))  # fmt: skip
    assert "zipkin-client" in services.json()


def test_sighup_reloads_the_tokens_file(
    server: tuple[Ports, subprocess.Popen[bytes]], certs: Certs, workdir: Path
) -> None:
    ports, proc = server
    context = client_context(certs)
    url = f"https://127.0.0.1:{ports.ui}/api/services"
    assert httpx.get(url, verify=context, headers=bearer(NEW_TOKEN)).status_code == 401
    tokens = workdir / "tokens.yaml"
    original = tokens.read_text()
    tokens.write_text(original + f"  - {{name: rotated, token: {NEW_TOKEN}, scopes: [read]}}\n")
    try:
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while httpx.get(url, verify=context, headers=bearer(NEW_TOKEN)).status_code != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload the tokens file"
            time.sleep(0.1)
        assert proc.poll() is None
    finally:
        tokens.write_text(original)
        proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while httpx.get(url, verify=context, headers=bearer(NEW_TOKEN)).status_code != 401:
        assert time.monotonic() < deadline, "the removed token still works"
        time.sleep(0.1)


def test_zz_no_secret_reaches_the_log(
    server: tuple[Ports, subprocess.Popen[bytes]], workdir: Path
) -> None:
    """Defined after the tests above (pytest runs them in order): every token has been sent."""
    log = (workdir / "server.log").read_text()
    assert "tokens file reloaded" in log and "authentication on" in log
    for secret in (*SECRETS, WRONG, NEW_TOKEN):
        assert secret not in log


def test_mutual_tls(workdir: Path, certs: Certs) -> None:
    ports = Ports()
    tokens = write_tokens(workdir / "mtls-tokens.yaml")
    settings = {**tls_settings(certs, mutual=True), **auth_settings(tokens)}
    mutual_dir = workdir / "mtls"
    mutual_dir.mkdir()
    with_cert = client_context(certs, client_cert=True)
    with serve_tls(mutual_dir, ports, settings, with_cert):
        url = f"https://127.0.0.1:{ports.ui}/api/services"
        assert httpx.get(url, verify=with_cert, headers=bearer(READER)).status_code == 200
        assert httpx.get(url, verify=with_cert).status_code == 401  # a certificate is no token
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=client_context(certs), headers=bearer(READER))
        credentials = grpc.ssl_channel_credentials(
            certs.ca.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes()
        )
        method_path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        with grpc.secure_channel(f"127.0.0.1:{ports.otlp_grpc}", credentials) as channel:
            channel.unary_unary(method_path)(
                b"", metadata=(("authorization", f"Bearer {WRITER}"),), timeout=10
            )
        bare = grpc.ssl_channel_credentials(certs.ca.read_bytes())
        with (
            grpc.secure_channel(f"127.0.0.1:{ports.otlp_grpc}", bare) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            channel.unary_unary(method_path)(
                b"", metadata=(("authorization", f"Bearer {WRITER}"),), timeout=10
            )
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
