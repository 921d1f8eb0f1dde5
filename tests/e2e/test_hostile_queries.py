"""One bad client must not hurt anyone else (issue 17, query side): a real `meshscope serve`
on a DuckDB file gets each pathological read request of the issue while a second client keeps
ingesting OTLP spans and a third polls `/health`. Each request gets its API's 4xx (or a
timeout's 503), never a 500 or a hang; `/health` answers within 1 s throughout and every
OTLP request is acknowledged. This asserts availability, not speed."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.e2e.test_durability import Ports, _kv, serve, trace_request

# Python's backtracking `re` takes ~2^28 steps for `(a+)+$` against this; RE2 is linear.
EVIL = "a" * 28 + "!"
NOW_S = int(time.time())


def _seed_metric() -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "hostile"))
    metric = rm.scope_metrics.add().metrics.add(name="hostile_gauge")
    metric.gauge.data_points.add(
        time_unix_nano=time.time_ns() - 10**9, as_double=1.0, attributes=[_kv("x", EVIL)]
    )
    return request.SerializeToString()


def _seed_log() -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", "hostile"))
    rl.scope_logs.add().log_records.add(
        time_unix_nano=time.time_ns() - 10**9,
        severity_number=9,
        body=AnyValue(string_value=EVIL),
        attributes=[_kv("x", EVIL)],
    )
    return request.SerializeToString()


def _post(port: int, path: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body, {"Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    response.read()
    return response.status


def _get(port: int, path: str, timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def _q(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


REGEX = "(a+)+$"
LOKI_RANGE = {"start": str((NOW_S - 600) * 10**9), "end": str((NOW_S + 60) * 10**9)}
# (name, path, expected status)
HOSTILE: list[tuple[str, str, int]] = [
    ("promql series regex", _q("/api/v1/series", **{"match[]": f'{{x=~"{REGEX}"}}'}), 200),
    ("promql query regex", _q("/api/v1/query", query=f'count({{x=~"{REGEX}"}})'), 200),
    ("promql labels regex", _q("/api/v1/labels", **{"match[]": f'{{x=~"{REGEX}"}}'}), 200),
    ("logql selector regex",
     _q("/loki/api/v1/query_range", query=f'{{x=~"{REGEX}"}}', **LOKI_RANGE), 200),
    ("logql line filter regex",
     _q("/loki/api/v1/query_range", query=f'{{service_name="hostile"}} |~ "{REGEX}"',
        **LOKI_RANGE), 200),
    ("traceql regex", _q("/tempo/api/search", q=f'{{ .x =~ "{REGEX}" }}'), 200),
    ("loki index volume regex",
     _q("/loki/api/v1/index/volume", query=f'{{x=~"{REGEX}"}}', **LOKI_RANGE), 200),
    ("loki index volume_range regex",
     _q("/loki/api/v1/index/volume_range", query=f'{{x=~"{REGEX}"}}', step="10s",
        **LOKI_RANGE), 200),
    ("loki detected labels regex",
     _q("/loki/api/v1/detected_labels", query=f'{{x=~"{REGEX}"}}', **LOKI_RANGE), 200),
    ("loki detected fields line filter regex",
     _q("/loki/api/v1/detected_fields", query=f'{{service_name="hostile"}} |~ "{REGEX}"',
        **LOKI_RANGE), 200),
    ("loki detected field values regex",
     _q("/loki/api/v1/detected_field/x/values", query=f'{{x=~"{REGEX}"}}', **LOKI_RANGE),
     200),
    ("logql regexp stage with a hostile pattern",
     _q("/loki/api/v1/query_range", query=f'{{service_name="hostile"}} | regexp "(?P<a>{REGEX})"',
        **LOKI_RANGE), 200),
    ("logql unwrapped quantile over 30 days at 1 s steps",
     _q("/loki/api/v1/query_range",
        query='quantile_over_time(0.99, {service_name="hostile"} | logfmt | unwrap n [30d])',
        start=str((NOW_S - 10_000) * 10**9), end=LOKI_RANGE["end"], step="1"), 200),
    ("logql 3000 comparisons",
     _q("/loki/api/v1/query", query='count_over_time({a="b"}[1m])' + " > 1" * 3000), 400),
    ("jaeger minDuration 2000 digits",
     _q("/api/traces", service="hostile", minDuration="1" * 2000 + "ms"), 400),
    ("unbounded subquery", _q("/api/v1/query", query="count_over_time(vector(1)[30d:1ms])"), 422),
    ("3000 terms", _q("/api/v1/query", query="1" + "+1" * 3000), 400),
    ("deep promql parentheses", _q("/api/v1/query", query="(" * 3000 + "1" + ")" * 3000), 400),
    ("deep logql parentheses",
     _q("/loki/api/v1/query", query="sum(" * 3000 + 'count_over_time({a="b"}[1m])' + ")" * 3000),
     400),
    ("deep traceql parentheses", _q("/tempo/api/search", q="(" * 3000 + "{}" + ")" * 3000), 400),
    ("long traceql sibling chain", _q("/tempo/api/search", q="{}" + "~{}" * 3000), 400),
    ("long traceql descendant chain", _q("/tempo/api/search", q="{}" + ">>{}" * 2000), 400),
    ("deep jaeger tags", _q("/api/traces", service="hostile", tags="[" * 3000 + "]" * 3000), 400),
    ("round to 0", _q("/api/v1/query", query="round(vector(1), 0)"), 200),
    ("@ 1e20", _q("/api/v1/query", query="up @ 1e20"), 400),
    ("start 1e300", _q("/api/v1/query_range", query="up", start="1e300", end="1e300", step="1"),
     400),
    ("perl-only regex", _q("/api/v1/query", query='up{x=~"(a)\\\\1"}'), 400),
    ("all-zero trace id logs", "/api/meshscope/traces/0000000000000000/logs", 400),
    ("red over a huge range",
     _q("/api/meshscope/red/range", start="0", end=str(NOW_S * 1000), steps="1000"), 200),
]  # fmt: skip


@dataclass
class Bystanders:
    """Polls /health and posts OTLP spans until stopped, recording what they saw."""

    ports: Ports
    health_s: list[float] = field(default_factory=list)
    health_failures: list[str] = field(default_factory=list)
    otlp_statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def poll_health(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                status, _ = _get(self.ports.ui, "/health", timeout=5)
                if status != 200:
                    self.health_failures.append(f"status {status}")
            except OSError as error:
                self.health_failures.append(repr(error))
            self.health_s.append(time.monotonic() - began)
            time.sleep(0.05)

    def ingest(self) -> None:
        seq = 0
        while not self.stop.is_set():
            self.otlp_statuses.append(_post(self.ports.otlp_http, "/v1/traces",
                                            trace_request(7, seq)))  # fmt: skip
            seq += 1
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    ports = Ports()
    db = tmp_path_factory.mktemp("hostile") / "meshscope.duckdb"
    with serve(db, ports, {"MESHSCOPE_QUERY__TIMEOUT_SECONDS": "10"}):
        assert _post(ports.otlp_http, "/v1/metrics", _seed_metric()) == 200
        assert _post(ports.otlp_http, "/v1/logs", _seed_log()) == 200
        yield ports


@pytest.mark.parametrize(("name", "path", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_request_hurts_no_one_else(
    server: Ports, name: str, path: str, expected: int
) -> None:
    bystanders = Bystanders(server)
    threads = [threading.Thread(target=bystanders.poll_health),
               threading.Thread(target=bystanders.ingest)]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        status, body = _get(server.ui, path, timeout=60)
        time.sleep(0.2)
    finally:
        bystanders.stop.set()
        for thread in threads:
            thread.join(30)
    assert status == expected, body[:300]
    assert not bystanders.health_failures
    assert bystanders.health_s and max(bystanders.health_s) < 1.0, max(bystanders.health_s)
    assert bystanders.otlp_statuses
    assert all(200 <= s < 300 for s in bystanders.otlp_statuses), bystanders.otlp_statuses
    if status >= 400 and path.startswith("/api/v1/"):
        assert json.loads(body)["status"] == "error"


def test_prometheus_timeout_parameter_is_a_503_timeout(server: Ports) -> None:
    # The second subquery starts after the first took well over 1 ms: the deadline is
    # checked there.
    heavy = "count_over_time(vector(1)[1d:1s]) + count_over_time(vector(1)[1d:1s])"
    status, body = _get(server.ui, _q("/api/v1/query", query=heavy, timeout="1ms"))
    assert status == 503, body
    assert json.loads(body)["errorType"] == "timeout"
    status, body = _get(server.ui, _q("/api/v1/query", query=heavy))
    assert status == 200, body


def test_re2_syntax_prometheus_users_copy(server: Ports) -> None:
    # In Python's `re` these raise (`\pL`, `(?<n>`) or mean something else (`[[:alpha:]]`
    # is a class of `[:alph` followed by `]`).
    for regex, hit in (("\\\\pL+!", True), ("[[:alpha:]]+!", True), ("[[:digit:]]+!", False),
                       ("(?U)a+!", True), ("(?P<n>a+)!", True), ("(?<n>a+)!", True)):  # fmt: skip
        query = f'count(hostile_gauge{{x=~"{regex}"}})'
        status, body = _get(server.ui, _q("/api/v1/query", query=query))
        assert status == 200, (regex, body)
        result = json.loads(body)["data"]["result"]
        assert bool(result) == hit, (regex, result)


def test_invalid_regex_is_a_400_naming_it(server: Ports) -> None:
    status, body = _get(server.ui, _q("/api/v1/query", query='up{x=~"(unclosed"}'))
    assert status == 400
    answer = json.loads(body)
    assert answer["errorType"] == "bad_data"
    assert "(unclosed" in answer["error"]
    assert "missing )" in answer["error"]  # RE2's reason, as Prometheus gives Go's
    query = quote('{service_name=~"(unclosed"}')
    status, body = _get(server.ui, f"/loki/api/v1/query_range?query={query}")
    assert status == 400
    assert b"(unclosed" in body
