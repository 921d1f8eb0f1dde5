"""One bad client must not hurt anyone else: a real `meshscope serve` on a DuckDB file (its
ingest workers included) takes hostile requests (values the store cannot hold, wrong types)
interleaved with valid ones from other clients, concurrently, over OTLP/HTTP, OTLP/gRPC,
Zipkin, Loki and remote write. Every valid request succeeds and is readable afterwards; each
hostile one gets its own 4xx or partial success."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import snappy
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE as CUMULATIVE,
)

from meshscope.ingest.lokipb.push_pb2 import PushRequest
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage
from tests.e2e.test_durability import T0, Ports, serve

ROUNDS = 12
Send = Callable[[int], tuple[int, bytes]]


def _post(
    port: int, path: str, body: bytes, content_type: str, **headers: str
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type, **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _trace(client: int, seq: int, hostile: bool) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = f"iso-{client}"
    span = rs.scope_spans.add().spans.add(
        trace_id=bytes([0xC0, client]) + seq.to_bytes(14, "big"),
        span_id=(seq + 1).to_bytes(8, "big"),
        name="op",
        start_time_unix_nano=T0 + seq,
        end_time_unix_nano=T0 + seq + 1000,
    )
    if hostile:  # each a value that used to fail the whole group commit
        bad = rs.scope_spans[0].spans.add()
        bad.CopyFrom(span)
        bad.span_id = (seq + 10_000).to_bytes(8, "big")
        if seq % 3 == 0:
            bad.start_time_unix_nano = 2**64 - 1
        elif seq % 3 == 1:
            bad.links.add(trace_id=b"\x01" * 17, span_id=b"\x02" * 8)
        else:
            bad.events.add(time_unix_nano=2**63, name="late")
    return request


def _senders(ports: Ports) -> dict[str, tuple[Send, Send]]:
    """Per protocol: (valid sender, hostile sender), each taking a sequence number."""

    def otlp_traces(client: int, hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            body = _trace(client, seq, hostile).SerializeToString()
            return _post(ports.otlp_http, "/v1/traces", body, "application/x-protobuf")

        return send

    def grpc_traces(client: int, hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            with grpc.insecure_channel(f"127.0.0.1:{ports.otlp_grpc}") as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
                try:
                    reply = stub.Export(_trace(client, seq, hostile), timeout=30)
                except grpc.RpcError as error:
                    return 500 + error.code().value[0], b""
                return 200, reply.SerializeToString()

        return send

    def otlp_logs(hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            request = ExportLogsServiceRequest()
            rl = request.resource_logs.add()
            rl.resource.attributes.add(key="service.name").value.string_value = "iso-logs"
            records = rl.scope_logs.add().log_records
            records.add(time_unix_nano=T0 + seq).body.string_value = f"valid-{hostile}-{seq}"
            if hostile:
                records.add(time_unix_nano=2**64 - 1).body.string_value = "late"
            body = request.SerializeToString()
            return _post(ports.otlp_http, "/v1/logs", body, "application/x-protobuf")

        return send

    def otlp_metrics(hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            request = ExportMetricsServiceRequest()
            metrics = request.resource_metrics.add().scope_metrics.add().metrics
            gauge = metrics.add(name=f"iso_gauge_{int(hostile)}").gauge
            gauge.data_points.add(time_unix_nano=T0 + seq * 10**6, as_double=seq)
            if hostile:
                gauge.data_points.add(time_unix_nano=2**64 - 1, as_double=1.0)
            body = request.SerializeToString()
            return _post(ports.otlp_http, "/v1/metrics", body, "application/x-protobuf")

        return send

    def zipkin(hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            span = {
                "traceId": f"{0xD0 + hostile:02x}{seq:030x}",
                "id": f"{seq + 1:016x}",
                "name": "z",
                "timestamp": T0 // 1000 + seq,
                "duration": 5,
                "localEndpoint": {"serviceName": "iso-zipkin"},
            }
            if hostile:
                span["kind"] = []
            body = json.dumps([span]).encode()
            return _post(ports.zipkin, "/api/v2/spans", body, "application/json")

        return send

    def loki(hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            request = PushRequest()
            labels = '{app="iso-loki"}' if not hostile else '{app="\\ud800"}'
            entry = request.streams.add(labels=labels).entries.add(
                line=f"loki-{hostile}-{seq}".encode()
            )
            entry.timestamp.seconds = T0 // 10**9 + seq
            body = snappy.compress(request.SerializeToString())
            return _post(ports.ui, "/loki/api/v1/push", body, "application/x-protobuf")

        return send

    def remote_write(hostile: bool) -> Send:
        def send(seq: int) -> tuple[int, bytes]:
            request = WriteRequest()
            series = request.timeseries.add()
            series.labels.add(name="__name__", value=f"iso_rw_{int(hostile)}")
            series.samples.add(timestamp=T0 // 10**6 + seq, value=seq)
            if hostile:
                series.samples.add(timestamp=10**16, value=1.0)
            body = snappy.compress(request.SerializeToString())
            return _post(
                ports.ui,
                "/api/v1/write",
                body,
                "application/x-protobuf",
                **{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"},
            )

        return send

    return {
        "otlp-http traces": (otlp_traces(1, False), otlp_traces(2, True)),
        "otlp-grpc traces": (grpc_traces(3, False), grpc_traces(4, True)),
        "otlp-http logs": (otlp_logs(False), otlp_logs(True)),
        "otlp-http metrics": (otlp_metrics(False), otlp_metrics(True)),
        "zipkin": (zipkin(False), zipkin(True)),
        "loki": (loki(False), loki(True)),
        "remote write": (remote_write(False), remote_write(True)),
    }


def test_hostile_clients_do_not_fail_valid_ones(tmp_path: Path) -> None:
    db = tmp_path / "iso.duckdb"
    ports = Ports()
    valid_failures: list[str] = []
    hostile_answers: dict[str, set[int]] = {}
    lock = threading.Lock()

    def run(name: str, send: Send, hostile: bool) -> None:
        for seq in range(ROUNDS):
            status, _ = send(seq)
            with lock:
                if hostile:
                    hostile_answers.setdefault(name, set()).add(status)
                elif status // 100 != 2:
                    valid_failures.append(f"{name} #{seq}: {status}")

    with serve(db, ports):
        threads = [
            threading.Thread(target=run, args=(name, send, hostile))
            for name, pair in _senders(ports).items()
            for send, hostile in zip(pair, (False, True), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert valid_failures == []
    # Each hostile request got its own answer: a partial success (200) or a 400, never 5xx.
    assert hostile_answers == {
        "otlp-http traces": {200},
        "otlp-grpc traces": {200},
        "otlp-http logs": {200},
        "otlp-http metrics": {200},
        "zipkin": {400},
        "loki": {400},
        "remote write": {400},
    }
    storage = DuckDBStorage(db)
    try:
        spans = storage.traces.span_counts()
        # Valid spans of valid and hostile clients alike; no hostile span.
        assert spans == {
            "iso-1": ROUNDS,
            "iso-2": ROUNDS,
            "iso-3": ROUNDS,
            "iso-4": ROUNDS,
            "iso-zipkin": ROUNDS,
        }
        bodies = {r.body for r in storage.logs.find_logs(LogQuery(access=False))}
        for seq in range(ROUNDS):
            assert {f"valid-False-{seq}", f"valid-True-{seq}", f"loki-False-{seq}"} <= bodies
        for name in ("iso_gauge_0", "iso_gauge_1", "iso_rw_0", "iso_rw_1"):
            (series,) = storage.metrics.select(name, [], 0, 2**63 - 1)
            assert len(series.samples) == ROUNDS, name
    finally:
        storage.close()


def _hostile_bodies() -> list[tuple[str, bytes]]:
    """Trace requests whose verdict once differed between OTLP/HTTP and OTLP/gRPC."""
    out: list[tuple[str, bytes]] = []
    for seq in range(6):
        out.append((f"hostile {seq}", _trace(7, seq, hostile=True).SerializeToString()))
    bad_ids = _trace(7, 99, hostile=False)
    bad_ids.resource_spans[0].scope_spans[0].spans[0].parent_span_id = b"\x01\x02\x03"
    out.append(("short parent", bad_ids.SerializeToString()))
    for depth in (46, 47):  # around the nesting the generated classes accept, in an event
        nested = _trace(7, depth, hostile=False)
        event = nested.resource_spans[0].scope_spans[0].spans[0].events.add(name="e")
        value = event.attributes.add(key="deep").value
        for _ in range(depth):
            value = value.array_value.values.add()
        value.array_value.SetInParent()
        out.append((f"nested {depth}", nested.SerializeToString()))
    out.append(("garbage", b"\x0a\x05\x01"))
    return out


def _hostile_logs() -> list[tuple[str, bytes]]:
    """Log requests with values a log record cannot be stored with, and garbage."""
    out: list[tuple[str, bytes]] = []
    for name, field, value in (
        ("late log", "time_unix_nano", 2**64 - 1),
        ("late observed, no time", "observed_time_unix_nano", 2**63),
        ("late observed beside a time", "observed_time_unix_nano", 2**63),
        ("short trace id", "trace_id", b"\x01" * 5),
        ("long span id", "span_id", b"\x01" * 9),
        ("severity past the enum", "severity_number", 99),
    ):
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        rl.resource.attributes.add(key="service.name").value.string_value = "same-logs"
        records = rl.scope_logs.add().log_records
        records.add(time_unix_nano=T0).body.string_value = "valid"
        bad = records.add(time_unix_nano=0 if "no time" in name else T0 + 1)
        bad.body.string_value = name
        setattr(bad, field, value)
        out.append((name, request.SerializeToString()))
    out.append(("garbage", b"\x0a\x05\x01"))
    return out


def _hostile_metrics() -> list[tuple[str, bytes]]:
    """Metric requests with points that cannot be stored, and garbage."""
    out: list[tuple[str, bytes]] = []
    for name in ("late point", "buckets and bounds differ", "scale below -10"):
        request = ExportMetricsServiceRequest()
        metrics = request.resource_metrics.add().scope_metrics.add().metrics
        metrics.add(name="same_ok").gauge.data_points.add(time_unix_nano=T0, as_double=1.0)
        if name == "late point":
            metrics.add(name="same_late").gauge.data_points.add(
                time_unix_nano=2**64 - 1, as_double=1.0
            )
        elif name == "buckets and bounds differ":
            hist = metrics.add(name="same_hist").histogram
            hist.aggregation_temporality = CUMULATIVE
            hist.data_points.add(
                time_unix_nano=T0, count=3, explicit_bounds=[1.0, 2.0], bucket_counts=[1, 2]
            )
        else:
            exp = metrics.add(name="same_exp").exponential_histogram
            exp.aggregation_temporality = CUMULATIVE
            exp.data_points.add(time_unix_nano=T0, count=1, scale=-99, zero_count=1)
        out.append((name, request.SerializeToString()))
    out.append(("garbage", b"\x0a\x05\x01"))
    return out


SIGNALS = {
    "traces": ("/v1/traces", "trace.v1.TraceService", ExportTraceServiceResponse, "rejected_spans"),
    "logs": ("/v1/logs", "logs.v1.LogsService", ExportLogsServiceResponse, "rejected_log_records"),
    "metrics": (
        "/v1/metrics",
        "metrics.v1.MetricsService",
        ExportMetricsServiceResponse,
        "rejected_data_points",
    ),
}
BODIES = {"traces": _hostile_bodies, "logs": _hostile_logs, "metrics": _hostile_metrics}


def _verdict(response: Any, answer: bytes, field: str) -> tuple[object, ...]:
    partial = response.FromString(answer).partial_success
    return ("ok", getattr(partial, field), partial.error_message)


@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_grpc_and_http_give_the_same_verdict_for_the_same_bytes(
    tmp_path: Path, signal: str
) -> None:
    path, service, response, field = SIGNALS[signal]
    ports = Ports()
    verdicts: dict[str, tuple[tuple[object, ...], tuple[object, ...]]] = {}
    with (
        serve(tmp_path / "same.duckdb", ports),
        grpc.insecure_channel(f"127.0.0.1:{ports.otlp_grpc}") as channel,
    ):
        export = channel.unary_unary(f"/opentelemetry.proto.collector.{service}/Export")
        for name, body in BODIES[signal]():
            status, answer = _post(ports.otlp_http, path, body, "application/x-protobuf")
            via_http = _verdict(response, answer, field) if status == 200 else ("refused", status)
            try:
                reply = export(body, timeout=30)
            except grpc.RpcError as error:
                code = error.code()
                via_grpc: tuple[object, ...] = (
                    "refused",
                    400 if code == grpc.StatusCode.INVALID_ARGUMENT else code,
                )
            else:
                via_grpc = _verdict(response, reply, field)
            verdicts[name] = (via_http, via_grpc)
    assert {name: http for name, (http, grpc_) in verdicts.items() if http != grpc_} == {}
    assert verdicts["garbage"][0] == ("refused", 400)
    if signal == "traces":
        assert verdicts["hostile 0"][0] == (
            "ok",
            1,
            "rejected 1 spans: start and end times must be below 2^63 ns (year 2262)",
        )
        assert verdicts["nested 46"][0][0] == "ok"
        assert verdicts["nested 47"][0] == ("refused", 400)
    else:  # an item that cannot be stored is rejected alone, the valid one beside it taken
        rejected = {name: v[0][1] for name, v in verdicts.items() if v[0][0] == "ok"}
        assert rejected == EXPECTED_REJECTED[signal]


EXPECTED_REJECTED = {
    "logs": {
        "late log": 1,
        "late observed, no time": 1,
        "late observed beside a time": 0,  # the record's time is time_unix_nano
        "short trace id": 1,
        "long span id": 1,
        "severity past the enum": 0,  # an open enum: accepted
    },
    "metrics": {
        "late point": 1,
        "buckets and bounds differ": 1,
        "scale below -10": 0,  # OTLP allows -10..20, but every count is in the zero bucket
    },
}
