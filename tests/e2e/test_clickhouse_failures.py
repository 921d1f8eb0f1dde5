"""The ClickHouse backend when a process dies, on a real `meshscope serve` and a real
clickhouse-server of this module's own (the run's shared one is never killed):

- meshscope killed with SIGKILL while clients send spans, logs and metric points: restarted
  on the same database, it holds every acknowledged item exactly once and an unacknowledged
  request at most once, read through its APIs and straight from ClickHouse (as
  test_durability.py checks DuckDB);
- ClickHouse killed (SIGKILL) or hung (SIGSTOP) while clients send over OTLP/HTTP and
  OTLP/gRPC: every request is answered within a bound, 2xx or 503 / UNAVAILABLE with a
  message naming the server, never 500 and never a hang; reads are answered 503 the same
  way, /metrics and /health at once; meshscope keeps running, and once ClickHouse is back
  (same data directory, same port) new writes succeed without restarting meshscope; every
  item acknowledged before, during and after the outage is stored once;
- ClickHouse killed between the two sides of calls (server spans stored, client spans
  refused and sent again by the SDK): the service graph counts each call once.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from meshscope.store.base import LogQuery
from meshscope.store.clickhouse import ClickHouseStorage
from tests.conformance import clickhouse_server
from tests.conformance.clickhouse_server import ClickHouseServer
from tests.e2e.sdk_calls import call_traces, service_of
from tests.e2e.test_durability import (
    BUILDERS,
    LOGS_PER_REQUEST,
    SPANS_PER_REQUEST,
    Client,
    Ports,
    _check_logs,
    _check_metrics,
    _check_traces,
    kill_mid_traffic,
    serve,
    trace_id_of,
)

pytestmark = pytest.mark.slow

HUNG_TIMEOUT_S = 2.0
"""The DSN's send_receive_timeout in the hung-server test (the product default is 30 s)."""
ANSWER_BOUND_S = {"killed": 5.0, "hung": 5 * HUNG_TIMEOUT_S}
"""How long any request may take while ClickHouse is down: a hung server costs the group in
flight one timeout and the next group's connection another, plus a derived-metrics flush the
writer thread may be waiting on; a killed one refuses connections at once."""


@pytest.fixture(scope="module")
def clickhouse() -> Iterator[ClickHouseServer]:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    server = ClickHouseServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def running(clickhouse: ClickHouseServer) -> ClickHouseServer:
    """The module's server, up again if an earlier test failed while it was down."""
    if clickhouse.process.poll() is not None:
        clickhouse.restart()
    else:
        os.kill(clickhouse.process.pid, signal.SIGCONT)
    return clickhouse


def _settings(server: ClickHouseServer, directory: Path, query: str = "") -> dict[str, str]:
    return {
        "MESHSCOPE_STORAGE__KIND": "clickhouse",
        "MESHSCOPE_STORAGE__CLICKHOUSE__DSN": server.dsn + query,
        "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": clickhouse_server.database_for(directory),
    }


def _get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes, float]:
    """Status, body and seconds taken of a GET."""
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - began
    finally:
        conn.close()


def _loki_lines(port: int, query: str) -> list[str]:
    path = "/loki/api/v1/query_range?" + urllib.parse.urlencode({"query": query, "limit": 5000})
    status, body, _ = _get(port, path)
    assert status == 200, body
    streams = json.loads(body)["data"]["result"]
    return [line for stream in streams for _, line in stream["values"]]


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        time.sleep(0.05)


def _stored(server: ClickHouseServer, directory: Path) -> ClickHouseStorage:
    return ClickHouseStorage(server.dsn, clickhouse_server.database_for(directory))


def test_every_acknowledged_item_survives_kill_9_of_meshscope(
    running: ClickHouseServer, tmp_path: Path
) -> None:
    settings = _settings(running, tmp_path)
    ports = Ports()
    unused = tmp_path / "unused.duckdb"  # serve's log goes beside it
    clients = [Client("traces", n) for n in range(3)] + [Client("logs", 0), Client("metrics", 0)]
    stop = threading.Event()

    def first_answers_then_a_while() -> None:
        _wait_until(lambda: all(client.acked for client in clients), 30, "first answers")
        time.sleep(random.uniform(0.5, 2.0))

    with serve(unused, ports, settings) as proc:
        kill_mid_traffic(proc, clients, ports.otlp_http, stop, first_answers_then_a_while)
    assert not unused.exists()  # nothing went to DuckDB

    with serve(unused, ports, settings):  # restarted on the same database: the public APIs
        for client in clients[:3]:
            trace_id = trace_id_of(client.number, client.acked[-1]).hex()
            status, body, _ = _get(ports.ui, f"/api/traces/{trace_id}")
            assert status == 200, body
            [trace] = json.loads(body)["data"]
            assert len(trace["spans"]) == SPANS_PER_REQUEST
        last = clients[3].acked[-1]
        lines = _loki_lines(ports.ui, f'{{service_name="durable-logs"}} |= "log 0-{last}-"')
        assert sorted(lines) == sorted(f"log 0-{last}-{i}" for i in range(LOGS_PER_REQUEST))
    storage = _stored(running, tmp_path)  # every item, straight from ClickHouse
    try:
        for client in clients[:3]:
            _check_traces(storage, client)
        _check_logs(storage, clients[3])
        _check_metrics(storage, clients[4])
    finally:
        storage.drop()


@dataclass(frozen=True, slots=True)
class Answer:
    seq: int
    ok: bool
    status: str  # the HTTP status or gRPC code; "error" when the request failed unanswered
    message: str
    sent_at: float
    seconds: float


@dataclass
class Sender:
    """Sends one request after another until stopped, whatever the answers (backing off a
    little after a refusal, as an exporter does), and records every answer."""

    signal: str  # traces or logs
    number: int
    over_grpc: bool = False
    answers: list[Answer] = field(default_factory=list)

    def run(self, ports: Ports, stop: threading.Event) -> None:
        port = ports.otlp_grpc if self.over_grpc else ports.otlp_http
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seq = 0
        try:
            while not stop.is_set():
                body = BUILDERS[self.signal](self.number, seq)
                began = time.monotonic()
                try:
                    if self.over_grpc:
                        ok, status, message = self._export(channel, body)
                    else:
                        ok, status, message = self._post(conn, body)
                except (OSError, http.client.HTTPException) as error:
                    ok, status, message = False, "error", repr(error)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                self.answers.append(
                    Answer(seq, ok, status, message, began, time.monotonic() - began)
                )
                seq += 1
                if not ok:
                    time.sleep(0.05)
        finally:
            channel.close()
            conn.close()

    def _post(self, conn: http.client.HTTPConnection, body: bytes) -> tuple[bool, str, str]:
        headers = {"Content-Type": "application/x-protobuf"}
        conn.request("POST", f"/v1/{self.signal}", body, headers)
        response = conn.getresponse()
        data = response.read()
        if 200 <= response.status < 300:
            return True, str(response.status), ""
        return False, str(response.status), str(status_pb2.Status.FromString(data).message)

    def _export(self, channel: grpc.Channel, body: bytes) -> tuple[bool, str, str]:
        stub: Any
        request: Message
        if self.signal == "traces":
            stub = TraceServiceStub(channel)  # type: ignore[no-untyped-call]
            request = ExportTraceServiceRequest.FromString(body)
        else:
            stub = LogsServiceStub(channel)  # type: ignore[no-untyped-call]
            request = ExportLogsServiceRequest.FromString(body)
        try:
            stub.Export(request, timeout=60)
        except grpc.RpcError as error:
            return False, error.code().name, str(error.details())
        return True, "OK", ""

    def acked_after(self, moment: float) -> bool:
        return any(a.ok and a.sent_at > moment for a in self.answers)

    def refused_after(self, moment: float) -> bool:
        return any(not a.ok and a.sent_at > moment for a in self.answers)

    def as_client(self) -> Client:
        return Client(
            self.signal,
            self.number,
            acked=[a.seq for a in self.answers if a.ok],
            unacked=[a.seq for a in self.answers if not a.ok],
        )


def _fail(server: ClickHouseServer, failure: str) -> None:
    if failure == "killed":
        server.kill()
    else:
        os.kill(server.process.pid, signal.SIGSTOP)


def _recover(server: ClickHouseServer, failure: str) -> None:
    if failure == "killed":
        server.restart()  # the same data directory and port
    else:
        os.kill(server.process.pid, signal.SIGCONT)


def _unavailable(text: str, server: ClickHouseServer) -> bool:
    """Whether an answer says the store is unavailable and names the server."""
    return "clickhouse at" in text and f"127.0.0.1:{server.tcp_port}" in text


@pytest.mark.parametrize("failure", ["killed", "hung"])
def test_clickhouse_down_mid_ingest_is_503_and_meshscope_recovers_by_itself(
    running: ClickHouseServer, tmp_path: Path, failure: str
) -> None:
    query = f"?send_receive_timeout={HUNG_TIMEOUT_S}" if failure == "hung" else ""
    settings = _settings(running, tmp_path, query)
    ports = Ports()
    senders = [
        Sender("traces", 0),
        Sender("traces", 1),
        Sender("logs", 0),
        Sender("traces", 2, over_grpc=True),
        Sender("logs", 1, over_grpc=True),
    ]
    stop = threading.Event()
    bound = ANSWER_BOUND_S[failure]
    with serve(tmp_path / "unused.duckdb", ports, settings) as proc:
        threads = [
            threading.Thread(target=sender.run, args=(ports, stop), daemon=True)
            for sender in senders
        ]
        for thread in threads:
            thread.start()
        try:
            _wait_until(lambda: all(s.acked_after(0) for s in senders), 30, "first acks")
            time.sleep(random.uniform(0.2, 1.0))
            _fail(running, failure)
            down_at = time.monotonic()
            _wait_until(
                lambda: all(s.refused_after(down_at) for s in senders),
                2 * bound,
                "every sender refused while ClickHouse is down",
            )

            acked = senders[0].as_client().acked[-1]
            _check_reads_while_down(ports, running, trace_id_of(0, acked).hex(), bound)
            assert proc.poll() is None, "meshscope died with ClickHouse"

            _recover(running, failure)
            back_at = time.monotonic()
            _wait_until(
                lambda: all(s.acked_after(back_at) for s in senders),
                30,
                "every sender acknowledged again after ClickHouse came back",
            )
        finally:
            stop.set()
            if running.process.poll() is None:
                os.kill(running.process.pid, signal.SIGCONT)
            else:
                running.restart()
            for thread in threads:
                thread.join(90)
        status, body, _ = _get(ports.ui, "/api/services")
        assert status == 200, body
        assert proc.poll() is None

    answers = [answer for sender in senders for answer in sender.answers]
    refused = [answer for answer in answers if not answer.ok]
    assert refused and len(refused) < len(answers)
    for answer in refused:  # 503 / UNAVAILABLE naming the server, never 500 nor unanswered
        assert answer.status in ("503", "UNAVAILABLE"), answer
        assert answer.message.startswith("storage unavailable, data not stored:"), answer
        assert _unavailable(answer.message, running), answer
        assert failure == "killed" or "no answer in time" in answer.message, answer
    slowest = max(answers, key=lambda answer: answer.seconds)
    assert slowest.seconds < bound, slowest
    storage = _stored(running, tmp_path)
    try:
        for sender in senders:
            if sender.signal == "traces":
                _check_traces(storage, sender.as_client())
        _check_all_logs(storage, [s.as_client() for s in senders if s.signal == "logs"])
    finally:
        storage.drop()


def _check_reads_while_down(
    ports: Ports, server: ClickHouseServer, trace_id: str, bound: float
) -> None:
    """Reads are answered 503 naming the server within `bound` seconds, in each API's
    envelope; meanwhile /metrics and /health answer at once."""

    def jaeger(body: bytes) -> str:
        return str(json.loads(body)["errors"][0]["msg"])

    def prometheus(body: bytes) -> str:
        assert json.loads(body)["errorType"] == "unavailable"
        return str(json.loads(body)["error"])

    def text(body: bytes) -> str:
        return body.decode()

    reads: dict[str, Callable[[bytes], str]] = {
        "/api/services": jaeger,
        f"/api/traces/{trace_id}": jaeger,
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22durable-logs%22%7D": text,
        "/api/v1/query?query=durability_gauge": prometheus,
        "/api/meshscope/stats": text,  # read outside the APIs' handlers: the app's backstop
    }
    with ThreadPoolExecutor(len(reads)) as pool:
        answers = {path: pool.submit(_get, ports.ui, path) for path in reads}
        for port, path in ((ports.ui, "/metrics"), (ports.ui, "/health"),
                           (ports.otlp_http, "/health")):  # fmt: skip
            status, body, seconds = _get(port, path)
            assert status == 200 and seconds < 2.0, (path, status, seconds)
        for path, message_of in reads.items():
            status, body, seconds = answers[path].result()
            assert status == 503, (path, status, body)
            assert _unavailable(message_of(body), server), (path, body)
            assert seconds < bound, (path, seconds)


def _check_all_logs(storage: ClickHouseStorage, clients: list[Client]) -> None:
    """`_check_logs` for several clients sending to the same service."""
    records = storage.logs.find_logs(LogQuery(service="durable-logs"))
    counts = Counter(record.body for record in records)
    for client in clients:
        for seq in client.acked:
            for i in range(LOGS_PER_REQUEST):
                assert counts[f"log {client.number}-{seq}-{i}"] == 1, (client.number, seq, i)
        for seq in client.unacked:
            assert counts[f"log {client.number}-{seq}-0"] <= 1, (client.number, seq)
    sent = sum(len(client.acked) + len(client.unacked) for client in clients)
    assert sum(counts.values()) <= LOGS_PER_REQUEST * sent


def _refused_trace_requests(port: int) -> float:
    """OTLP/HTTP trace requests answered 503, from meshscope's own /metrics."""
    status, body, _ = _get(port, "/metrics")
    assert status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("meshscope_http_request_duration_seconds_count{")
        and 'handler="/v1/traces"' in line
        and 'code="503"' in line
    )


def test_calls_whose_client_spans_were_refused_are_counted_once_after_the_retry(
    running: ClickHouseServer, tmp_path: Path
) -> None:
    """Two services' spans, made and exported by the OpenTelemetry SDK: each call's server
    span (backend) is exported and stored first, as an SDK sends a server span that ended
    first; then ClickHouse is killed, and the client spans (frontend) are refused with 503 and
    sent again by the SDK's exporter once ClickHouse is back. The service graph counts each
    call once and writes one access log for it (it counted none: the refused client span
    took its server span off the waiting list, and the retry found nothing to pair)."""
    calls = 4
    spans = call_traces(calls)
    front = [span for span in spans if service_of(span) == "frontend"]
    back = [span for span in spans if service_of(span) == "backend"]
    ports = Ports()
    with serve(tmp_path / "unused.duckdb", ports, _settings(running, tmp_path)) as proc:
        endpoint = f"http://127.0.0.1:{ports.otlp_http}/v1/traces"
        assert OTLPSpanExporter(endpoint=endpoint).export(back) is SpanExportResult.SUCCESS
        _fail(running, "killed")
        by_trace: dict[int, list[ReadableSpan]] = {}
        for span in front:
            by_trace.setdefault(span.context.trace_id, []).append(span)
        with ThreadPoolExecutor(calls) as pool:  # one request per call, retried by the SDK
            results = [
                pool.submit(OTLPSpanExporter(endpoint=endpoint, timeout=90).export, spans)
                for spans in by_trace.values()
            ]
            _wait_until(
                lambda: _refused_trace_requests(ports.ui) >= calls,
                30,
                "every call's client span refused while ClickHouse is down",
            )
            _recover(running, "killed")
            assert [result.result(120) for result in results] == [SpanExportResult.SUCCESS] * calls
        assert proc.poll() is None
    # Stopped: the derived metrics and the paired calls are written.
    storage = _stored(running, tmp_path)
    try:
        edges: Counter[tuple[str, str]] = Counter()
        forever = 2**63 - 1
        for series in storage.metrics.latest("traces_service_graph_request_total", [], forever,
                                             forever):  # fmt: skip
            labels = dict(series.labels)
            edges[labels["client"], labels["server"]] += int(series.samples[-1].value)
        assert edges == Counter({("frontend", "backend"): calls})
        logs = storage.logs.find_logs(LogQuery(access=True))
        assert (
            sorted(
                (log.attributes["source.service"], log.attributes["destination.service"])
                for log in logs
            )
            == [("frontend", "backend")] * calls
        )
    finally:
        storage.drop()
