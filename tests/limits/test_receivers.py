"""Every receiver, wired by `build`, refuses a tenant past its limits and takes the rest:
OTLP/HTTP (traces, logs, metrics), Zipkin, Loki push and remote write in process, OTLP/gRPC
on a real grpc.aio server; nothing of a refused request is stored."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.app import App, build
from meshscope.auth.config import AuthConfig
from meshscope.config import Config, StorageConfig
from meshscope.ingest.grpc import RETRY_INFO_KEY, STATUS_DETAILS_KEY, serve_grpc
from meshscope.limits.config import LimitsConfig, Signal, TenantLimits
from meshscope.store.base import LabelMatcher, MatchOp
from meshscope.tenancy.config import TenancyConfig
from meshscope.tenancy.context import as_tenants
from tests.auth.tokens import READER, WRITER, bearer, write_tokens
from tests.limits import requests

OTLP = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
RW = {**OTLP, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

SLOW = 0.001  # per second: nothing refills during a test
LIMITS = LimitsConfig(
    defaults=TenantLimits(
        spans_per_second=SLOW,
        spans_burst=10,
        log_records_per_second=SLOW,
        log_records_burst=10,
        metric_samples_per_second=SLOW,
        metric_samples_burst=10,
    ),
    tenants={"big": TenantLimits(request_bytes_per_second=SLOW, request_bytes_burst=2000)},
)


@contextmanager
def running(tmp_path: Path, limits: LimitsConfig = LIMITS, auth: bool = False) -> Iterator[App]:
    tokens = str(write_tokens(tmp_path / "t.yaml")) if auth else ""
    config = Config(
        storage=StorageConfig(kind="memory", path=str(tmp_path / "x")),
        limits=limits,
        auth=AuthConfig(enabled=auth, tokens_file=tokens, reload_interval_seconds=0),
    )
    app = build(config)
    app.start()
    try:
        yield app
    finally:
        app.stop()


@dataclass(frozen=True)
class Receiver:
    listener: str  # the App attribute
    path: str
    body: Callable[[int], bytes]
    headers: dict[str, str]
    signal: Signal
    refused: int = 429

    def post(self, app: App, count: int, **headers: str) -> tuple[int, dict[str, str], str]:
        asgi: Starlette = getattr(app, self.listener)
        client = TestClient(asgi)
        response = client.post(
            self.path, content=self.body(count), headers={**self.headers, **headers}
        )
        return response.status_code, dict(response.headers), response.text


RECEIVERS = {
    "otlp traces": Receiver("otlp_http", "/v1/traces", requests.spans, OTLP, "spans"),
    "otlp logs": Receiver("otlp_http", "/v1/logs", requests.logs, OTLP, "logs"),
    "otlp metrics": Receiver("otlp_http", "/v1/metrics", requests.metrics, OTLP, "metrics"),
    "zipkin": Receiver("zipkin", "/api/v2/spans", requests.zipkin, JSON, "spans"),
    "loki push": Receiver("ui", "/loki/api/v1/push", requests.loki, JSON, "logs"),
    "remote write": Receiver("ui", "/api/v1/write", requests.remote_write, RW, "metrics"),
}


def _stored(app: App, signal: Signal) -> int | None:
    """Spans or log records in the store (metric samples are not counted by the stores)."""
    if signal == "spans":
        return sum(app.storage.traces.span_counts().values())
    if signal == "logs":
        return sum(app.storage.logs.log_counts().values())
    return None


@pytest.mark.parametrize("name", RECEIVERS)
def test_past_the_limit_is_429_with_retry_after_and_nothing_stored(
    tmp_path: Path, name: str
) -> None:
    receiver = RECEIVERS[name]
    with running(tmp_path) as app:
        assert receiver.post(app, 6)[0] in (200, 202, 204)
        status, headers, text = receiver.post(app, 6)  # 12 > burst 10
        assert status == 429, text
        assert int(headers["retry-after"]) >= 1
        stored = _stored(app, receiver.signal)
        assert stored in (6, None)  # nothing of the refused request
        assert receiver.post(app, 4)[0] in (200, 202, 204)  # the refused 6 took nothing
        assert _stored(app, receiver.signal) in (10, None)
        limiter = app.limiter
        assert limiter is not None
        assert limiter.items["default", receiver.signal] == 10
        assert limiter.refused_items["default", receiver.signal, "rate_limited"] == 6
        assert limiter.refused_requests["default", f"{receiver.signal}_rate"] == 1


def test_the_message_names_tenant_and_limit(tmp_path: Path) -> None:
    with running(tmp_path) as app:
        receiver = RECEIVERS["zipkin"]
        receiver.post(app, 10, **{"X-Scope-OrgID": "team-a"})
        status, _, text = receiver.post(app, 1, **{"X-Scope-OrgID": "team-a"})
    assert status == 429
    expected = r"tenant 'team-a' is over its limit of 0\.001 spans/s \(burst 10\): retry in"
    assert re.fullmatch(expected + r" (999\.\d\d|1000\.00) s", text), text


def test_a_request_over_the_burst_is_413(tmp_path: Path) -> None:
    with running(tmp_path) as app:
        status, headers, text = RECEIVERS["zipkin"].post(app, 11)
    assert status == 413 and "retry-after" not in headers
    assert "a request of 11 spans is over the burst of 10" in text


def test_bytes_are_refused_before_decoding(tmp_path: Path) -> None:
    """Tenant `big` may send 2,000 bytes in all: a larger body is 413 and an undecodable
    one past the rest of the burst 429, both before any decoding (else they would be 400)."""
    with running(tmp_path) as app:
        client = TestClient(app.otlp_http)
        big = {**OTLP, "X-Scope-OrgID": "big"}
        response = client.post("/v1/traces", content=b"\xff" * 2001, headers=big)
        assert response.status_code == 413  # over the burst: never admissible
        response = client.post("/v1/traces", content=b"\xff" * 1500, headers=big)
        assert response.status_code == 400  # admitted on its bytes, then undecodable
        response = client.post("/v1/traces", content=b"\xff" * 1000, headers=big)
        assert response.status_code == 429  # 1,500 + 1,000 > 2,000: refused undecoded
        assert app.limiter is not None
        assert app.limiter.refused_requests["big", "bytes_rate"] == 1
        assert app.limiter.items["big", "bytes"] == 1500


def test_tenants_are_limited_separately_and_by_header(tmp_path: Path) -> None:
    receiver = RECEIVERS["otlp traces"]
    with running(tmp_path) as app:
        assert receiver.post(app, 10)[0] == 200
        assert receiver.post(app, 1)[0] == 429
        assert receiver.post(app, 10, **{"X-Scope-OrgID": "team-b"})[0] == 200
        assert receiver.post(app, 1, **{"x-scope-orgid": "team-b"})[0] == 429
        assert receiver.post(app, 1, **{"X-Scope-OrgID": "a|b"})[0] == 400


def test_with_auth_the_tenant_comes_from_the_token(tmp_path: Path) -> None:
    """The writer token of tests/auth/tokens.py has tenants [team-a]."""
    receiver = RECEIVERS["otlp traces"]
    with running(tmp_path, auth=True) as app:
        assert receiver.post(app, 1)[0] == 401  # authentication first
        assert receiver.post(app, 1, **bearer(READER))[0] == 403  # no write scope
        assert receiver.post(app, 10, **bearer(WRITER))[0] == 200
        assert receiver.post(app, 1, **bearer(WRITER), **{"X-Scope-OrgID": "team-a"})[0] == 429
        status, _, _ = receiver.post(app, 1, **bearer(WRITER), **{"X-Scope-OrgID": "team-b"})
        assert status == 403  # a tenant the token lacks
        assert app.limiter is not None
        assert app.limiter.items["team-a", "spans"] == 10
        assert app.limiter.refused_requests["team-a", "forbidden_tenant"] == 1
        zipkin = RECEIVERS["zipkin"]
        status, _, text = zipkin.post(app, 1, **bearer(WRITER), **{"X-Scope-OrgID": "other"})
        assert (status, text) == (403, "token 'collector' may not write for tenant 'other'")


def test_per_tenant_counts_on_metrics(tmp_path: Path) -> None:
    receiver = RECEIVERS["otlp traces"]
    with running(tmp_path) as app:
        receiver.post(app, 10, **{"X-Scope-OrgID": "team-a"})
        receiver.post(app, 5, **{"X-Scope-OrgID": "team-a"})
        text = TestClient(app.ui).get("/metrics").text
    assert 'meshscope_tenant_items_total{signal="spans",tenant="team-a"} 10.0' in text
    assert (
        'meshscope_tenant_refused_items_total{reason="rate_limited",signal="spans",'
        'tenant="team-a"} 5.0'
    ) in text
    assert (
        'meshscope_tenant_refused_requests_total{reason="spans_rate",tenant="team-a"} 1.0' in text
    )
    assert 'meshscope_tenant_request_bytes_total{tenant="team-a"}' in text


def test_tenant_label_values_are_capped(tmp_path: Path) -> None:
    receiver = RECEIVERS["otlp traces"]
    limits = LimitsConfig(defaults=LIMITS.defaults, max_tenant_series=3)
    with running(tmp_path, limits) as app:
        for index in range(6):
            receiver.post(app, 1, **{"X-Scope-OrgID": f"t{index}"})
        text = TestClient(app.ui).get("/metrics").text
    assert 'tenant="t2"' in text and 'tenant="t3"' not in text
    assert 'meshscope_tenant_items_total{signal="spans",tenant="other"} 3.0' in text


@contextmanager
def running_grpc(app: App) -> Iterator[grpc.Channel]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-limits", daemon=True)
    thread.start()
    serving = serve_grpc(
        app.sink, "127.0.0.1", 0, app.limits, app.decoders, interceptors=app.grpc_interceptors
    )
    server, port = asyncio.run_coroutine_threadsafe(serving, loop).result(10)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_grpc_resource_exhausted_with_retry_info(tmp_path: Path) -> None:
    with running(tmp_path, auth=True) as app, running_grpc(app) as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        metadata = (("authorization", f"Bearer {WRITER}"),)
        export(requests.spans(10), metadata=metadata, timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            export(requests.spans(1), metadata=metadata, timeout=10)
        error = raised.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details().startswith("tenant 'team-a' is over its limit of 0.001 spans/s")
        trailers = dict(error.trailing_metadata())
        retry = error_details_pb2.RetryInfo.FromString(trailers[RETRY_INFO_KEY])
        assert retry.retry_delay.seconds >= 1
        status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
        detail = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(detail)  # where OTel Go reads it
        with pytest.raises(grpc.RpcError) as raised:
            export(requests.spans(1), metadata=(*metadata, ("x-scope-orgid", "team-b")))
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as raised:
            export(requests.spans(11), metadata=metadata)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # over the burst
        assert sum(app.storage.traces.span_counts().values()) == 10


def test_limits_off_wires_nothing(tmp_path: Path) -> None:
    with running(tmp_path, LimitsConfig()) as app:
        assert app.limiter is None and app.grpc_interceptors == ()
        for receiver in RECEIVERS.values():
            assert receiver.post(app, 50, **{"X-Scope-OrgID": "a|b"})[0] in (200, 202, 204)
        assert "meshscope_tenant_" not in TestClient(app.ui).get("/metrics").text


def _delta_totals(app: App) -> list[float]:
    """The stored values of `limited_delta_total{i="0"}`, oldest first."""
    found = app.storage.metrics.select(
        "limited_delta_total",
        [LabelMatcher("i", MatchOp.EQ, "0")],
        requests.T0 - 10**12,
        requests.T0 + 10**12,
    )
    return [point.value for series in found for point in series.samples]


def _post_metrics(app: App, body: bytes, **headers: str) -> int:
    response = TestClient(app.otlp_http).post(
        "/v1/metrics", content=body, headers={**OTLP, **headers}
    )
    status: int = response.status_code
    return status


def test_a_refused_requests_deltas_do_not_count(tmp_path: Path) -> None:
    """A delta request refused after decoding (429 here; 503 alike) leaves the running totals
    as they were, so its retry is not counted twice, over HTTP and gRPC."""
    limits = LimitsConfig(
        defaults=TenantLimits(metric_samples_per_second=SLOW, metric_samples_burst=12)
    )
    t0 = requests.T0
    with running(tmp_path, limits) as app, running_grpc(app) as channel:
        export = channel.unary_unary(METRICS_EXPORT)
        assert _post_metrics(app, requests.delta_counter(10, 5.0, t0)) == 200
        assert _post_metrics(app, requests.delta_counter(10, 5.0, t0 + 1)) == 429
        with pytest.raises(grpc.RpcError) as raised:
            export(requests.delta_counter(10, 5.0, t0 + 2), timeout=10)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _post_metrics(app, requests.delta_counter(1, 1.0, t0 + 3)) == 200
        export(requests.delta_counter(1, 1.0, t0 + 4), timeout=10)
        assert _delta_totals(app) == [5.0, 6.0, 7.0]


def test_each_tenant_has_its_own_delta_totals(tmp_path: Path) -> None:
    config = Config(
        storage=StorageConfig(kind="memory", path=str(tmp_path / "x")),
        tenancy=TenancyConfig(enabled=True),
    )
    app = build(config)
    app.start()
    try:
        t0 = requests.T0
        for at, tenant in ((t0, "team-a"), (t0 + 1, "team-b"), (t0 + 2, "team-a")):
            body = requests.delta_counter(1, 2.0, at)
            assert _post_metrics(app, body, **{"X-Scope-OrgID": tenant}) == 200
        with as_tenants("team-a"):
            assert _delta_totals(app) == [2.0, 4.0]
        with as_tenants("team-b"):
            assert _delta_totals(app) == [2.0]
    finally:
        app.stop()
