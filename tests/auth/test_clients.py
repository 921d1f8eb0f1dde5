"""meshscope's own clients pass credentials to a receiver that asks for them, over TLS:
`meshscope.instrument(token=...)` and `OTEL_EXPORTER_OTLP_HEADERS` (the real OTel SDK
exporters), and the sidecar (which the demo runs) from the same variables, checking the
receiver's certificate against `OTEL_EXPORTER_OTLP_CERTIFICATE`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

import meshscope
from meshscope.auth.http import guard_routes
from meshscope.auth.tokens import TokenStore
from meshscope.model.ids import new_span_id, new_trace_id
from meshscope.sidecar.settings import ExportSettings, otlp_client_env
from tests.auth.certs import Certs, make_certs
from tests.auth.tokens import READER, WRITER, write_tokens
from tests.ingest.servers import PipelineSink, receiver_app
from tests.serving import serving
from tests.sidecar.harness import LoopThread, running_sidecars, running_upstream, sidecar


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def receiver(tmp_path: Path, certs: Certs) -> Iterator[tuple[str, PipelineSink]]:
    """OTLP/HTTP and Zipkin receivers asking for a write token, over TLS."""
    sink = PipelineSink()
    app: Starlette = receiver_app(sink)
    guard_routes("otlp_http", app.routes, TokenStore(write_tokens(tmp_path / "t.yaml")),
                 metrics_open=False)  # fmt: skip
    with serving(
        app, ssl_certfile=str(certs.server_cert), ssl_keyfile=str(certs.server_key)
    ) as url:
        yield url, sink


def _wait_for(sink: PipelineSink, service: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not sorted(sink.storage.traces.span_counts()):
        assert time.monotonic() < deadline, f"no span of {service} arrived"
        time.sleep(0.05)
    assert service in sorted(sink.storage.traces.span_counts())


def _instrumented_span(endpoint: str, token: str | None) -> None:
    obs = meshscope.instrument(service="checkout", endpoint=endpoint, set_global=False,
                               stream=None, token=token)  # fmt: skip
    with obs.tracer.start_as_current_span("charge"):
        pass
    obs.flush()
    obs.shutdown()


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch, certs: Certs) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certs.ca))
    # requests lets these override the exporter's CA (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    return monkeypatch


def test_instrument_with_a_token(
    receiver: tuple[str, PipelineSink], sdk_env: pytest.MonkeyPatch
) -> None:
    url, sink = receiver
    _instrumented_span(url, READER)  # refused: a read token cannot write
    assert sorted(sink.storage.traces.span_counts()) == []
    _instrumented_span(url, WRITER)
    _wait_for(sink, "checkout")


def test_instrument_with_the_sdk_headers_variable(
    receiver: tuple[str, PipelineSink], sdk_env: pytest.MonkeyPatch
) -> None:
    url, sink = receiver
    _instrumented_span(url, None)
    assert sorted(sink.storage.traces.span_counts()) == []
    sdk_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{WRITER}")
    _instrumented_span(url, None)
    _wait_for(sink, "checkout")


def test_otlp_client_env() -> None:
    assert otlp_client_env({}) == {"headers": (), "ca_file": ""}
    settings = otlp_client_env({"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x=y",
                                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem"})  # fmt: skip
    assert settings == {
        "headers": (("authorization", "Bearer abc"), ("x", "y")),
        "ca_file": "/ca.pem",
    }


@pytest.mark.parametrize("token", [WRITER, READER])
def test_sidecar_exports_with_the_sdk_variables(
    receiver: tuple[str, PipelineSink], certs: Certs, token: str
) -> None:
    url, sink = receiver
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{token}",
           "OTEL_EXPORTER_OTLP_CERTIFICATE": str(certs.ca)}  # fmt: skip
    export = ExportSettings(endpoint=url, flush_interval_s=0.05, **otlp_client_env(env))
    loop = LoopThread()
    try:
        with (
            running_upstream(loop) as upstream,
            running_sidecars(loop, [sidecar("api", upstream)], export) as running,
        ):
            inbound = f"http://127.0.0.1:{running.ports['api/inbound']}"
            traceparent = f"00-{new_trace_id()}-{new_span_id()}-01"
            httpx.get(f"{inbound}/echo/x", headers={"traceparent": traceparent})
            if token == WRITER:
                _wait_for(sink, "api")
            else:
                time.sleep(1)  # several export attempts, each refused
                assert sorted(sink.storage.traces.span_counts()) == []
    finally:
        loop.close()
