from __future__ import annotations

import json
import math

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from meshscope.ingest.delta import DeltaToCumulative
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_metrics import decode_metrics_json, decode_metrics_protobuf
from meshscope.model.metrics import MetricPoint, MetricType
from tests.ingest.otel_sdk import make_metrics

TARGET = (
    ("instance", "checkout-7f9c-1"),
    ("job", "shop/checkout"),
    ("otel_scope_name", "meshscope.tests.metrics"),
    ("otel_scope_version", "0.2"),
)
"""The labels every point of `make_metrics` gets: its resource's job and instance, its scope."""


def _named(points: list[MetricPoint], name: str) -> list[MetricPoint]:
    return [p for p in points if p.name == name]


def test_sdk_metrics_map_to_prometheus_names_and_types() -> None:
    decoded = decode_metrics_protobuf(make_metrics())
    assert decoded.rejected == 0
    points = decoded.batch.metrics
    requests = {
        p.label("http_response_status_code"): p
        for p in _named(points, "http_server_requests_total")
    }
    assert {k: (p.type, p.value) for k, p in requests.items()} == {
        "200": (MetricType.COUNTER, 3.0),
        "500": (MetricType.COUNTER, 1.0),
    }
    assert requests["200"].labels == (
        ("http_response_status_code", "200"),
        ("http_route", "/cart"),
        *TARGET,
    )
    assert requests["200"].help == "reqs"
    assert requests["200"].unit == "{request}"
    (active,) = _named(points, "http_server_active_requests")
    assert (active.type, active.value, active.labels) == (MetricType.GAUGE, 3.0, TARGET)
    (cpu,) = _named(points, "system_cpu_utilization_ratio")
    assert (cpu.type, cpu.value, cpu.label("cpu")) == (MetricType.GAUGE, 0.75, "0")
    (duration,) = _named(points, "http_server_duration_milliseconds")
    assert duration.type is MetricType.HISTOGRAM
    hist = duration.histogram
    assert hist is not None
    # The SDK's default explicit bounds; values 3, 7, 7, 120, 20000.
    assert hist.bounds == (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
    assert hist.counts == (0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1)
    assert (hist.sum, hist.count) == (20137.0, 5)
    assert all(p.time_ns > 1_600_000_000 * 10**9 for p in points)


def test_exponential_histogram_becomes_explicit_buckets() -> None:
    decoded = decode_metrics_protobuf(make_metrics(exponential=True))
    (rpc,) = _named(decoded.batch.metrics, "rpc_server_duration_seconds")
    assert rpc.histogram is not None
    values = (0.001, 0.002, 0.5, 1.5)
    assert rpc.histogram.count == 4
    assert rpc.histogram.sum == pytest.approx(sum(values))
    for le, cumulative in rpc.histogram.cumulative():
        assert cumulative == sum(v <= le for v in values), le


def _one_exponential(zero_threshold: float, *counts: int) -> ExportMetricsServiceRequest:
    """A request of one exponential point at scale 0 (base 2), positive buckets from (1, 2]."""
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    exp = metrics.add(name="odd_seconds").exponential_histogram
    exp.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    point = exp.data_points.add(time_unix_nano=10**18, count=sum(counts) + 1, zero_count=1)
    point.zero_threshold = zero_threshold
    point.positive.bucket_counts.extend(counts)
    return request


def test_exponential_top_bucket_keeps_its_upper_edge() -> None:
    """The last bucket with counts was read as +Inf, so a quantile in it was answered with its
    lower edge; its edge is kept and the +Inf bucket after it is empty."""
    decoded = decode_metrics_protobuf(_one_exponential(0.0, 1, 2).SerializeToString())
    (point,) = decoded.batch.metrics
    assert point.histogram is not None
    assert point.histogram.bounds == (0.0, 2.0, 4.0)
    assert point.histogram.counts == (1, 1, 2, 0)


def test_exponential_zero_threshold_above_the_first_bucket_is_refused() -> None:
    decoded = decode_metrics_protobuf(_one_exponential(5.0, 1).SerializeToString())
    assert decoded.rejected == 1 and "invalid buckets" in decoded.error_message


@pytest.mark.parametrize(
    ("scale", "zero_threshold"),
    [(-1024, 0.0), (-11, 0.0), (21, 0.0), (2**31 - 1, 0.0), (0, math.nan), (0, -1.0),
     (0, math.inf)],
)  # fmt: skip
def test_exponential_histograms_out_of_otlps_range_are_refused_alone(
    scale: int, zero_threshold: float
) -> None:
    """Scales OTLP does not define (-1024 raised OverflowError: the request was a 500) and
    zero thresholds that are no bucket edge are refused as a partial success; the rest of
    the request is kept."""
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    exp = metrics.add(name="odd_seconds").exponential_histogram
    exp.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    point = exp.data_points.add(time_unix_nano=10**18, count=2, scale=scale, zero_count=1)
    point.zero_threshold = zero_threshold
    point.positive.bucket_counts.append(1)
    metrics.add(name="kept").gauge.data_points.add(time_unix_nano=10**18, as_double=1.0)
    decoded = decode_metrics_protobuf(request.SerializeToString())
    assert decoded.rejected == 1 and "invalid buckets" in decoded.error_message
    assert [p.name for p in decoded.batch.metrics] == ["kept"]


def test_delta_is_rejected_without_accumulator() -> None:
    decoded = decode_metrics_protobuf(make_metrics(delta=True))
    # 2 counter points, 2 histogram points; the cumulative up-down counter and gauge stay.
    assert decoded.rejected == 4
    assert "DeltaToCumulative" in decoded.error_message
    assert {p.name for p in decoded.batch.metrics} == {
        "http_server_active_requests",
        "system_cpu_utilization_ratio",
        "target_info",
    }


def test_delta_accumulates_with_accumulator() -> None:
    body = make_metrics(delta=True)
    delta = DeltaToCumulative()
    decode_metrics_protobuf(body, delta)
    second = decode_metrics_protobuf(body, delta)
    assert second.rejected == 0
    counters = {
        p.label("http_response_status_code"): p.value
        for p in _named(second.batch.metrics, "http_server_requests_total")
    }
    assert counters == {"200": 6.0, "500": 2.0}
    (duration,) = _named(second.batch.metrics, "http_server_duration_milliseconds")
    assert duration.histogram is not None
    assert (duration.histogram.count, duration.histogram.sum) == (10, 40274.0)
    assert duration.histogram.counts[2] == 4


def test_json_with_base64_ids_equals_protobuf() -> None:
    body = make_metrics()
    as_json = MessageToJson(ExportMetricsServiceRequest.FromString(body)).encode()
    assert decode_metrics_json(as_json) == decode_metrics_protobuf(body)


def test_json_spec_shaped_sum_and_summary() -> None:
    doc = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "my.counter",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asInt": "5",
                                            "timeUnixNano": "1544712660300000000",
                                            "attributes": [
                                                {"key": "my.attr", "value": {"stringValue": "v"}},
                                                {"key": "2nd", "value": {"boolValue": True}},
                                            ],
                                            "exemplars": [
                                                {
                                                    "traceId": "5b8efff798038103d269b633813fc60c",
                                                    "spanId": "eee19b7ec3c1b174",
                                                    "asDouble": 1.0,
                                                }
                                            ],
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "rpc.latency",
                                "unit": "ms",
                                "summary": {
                                    "dataPoints": [
                                        {
                                            "timeUnixNano": 7,
                                            "count": "10",
                                            "sum": 55.5,
                                            "quantileValues": [
                                                {"quantile": 0.5, "value": 4},
                                                {"quantile": 1, "value": 9},
                                            ],
                                        }
                                    ]
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    points = decode_metrics_json(json.dumps(doc).encode()).batch.metrics
    job = ("job", "my.service")
    assert points == [
        MetricPoint(
            "my_counter_total",
            (job, ("key_2nd", "true"), ("my_attr", "v")),
            1544712660300000000,
            MetricType.COUNTER,
            5.0,
            unit="1",
        ),
        MetricPoint("rpc_latency_milliseconds_sum", (job,), 7, MetricType.COUNTER, 55.5, unit="ms"),
        MetricPoint(
            "rpc_latency_milliseconds_count", (job,), 7, MetricType.COUNTER, 10.0, unit="ms"
        ),
        MetricPoint(
            "rpc_latency_milliseconds",
            (job, ("quantile", "0.5")),
            7,
            MetricType.SUMMARY,
            4.0,
            unit="ms",
        ),
        MetricPoint(
            "rpc_latency_milliseconds",
            (job, ("quantile", "1")),
            7,
            MetricType.SUMMARY,
            9.0,
            unit="ms",
        ),
    ]


def test_inconsistent_points_are_rejected() -> None:
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    hist = Metric(name="h")
    hist.histogram.aggregation_temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    )
    hist.histogram.data_points.add(bucket_counts=[1, 2], explicit_bounds=[1.0, 2.0], count=3)
    hist.histogram.data_points.add(bucket_counts=[1, 2], explicit_bounds=[1.0], count=3)
    unspecified = Metric(name="s")
    unspecified.sum.data_points.add(as_int=1)
    no_value = Metric(name="g")
    no_value.gauge.data_points.add(time_unix_nano=1)
    stale = Metric(name="stale")
    stale.gauge.data_points.add(flags=1, as_double=1.0)
    metrics.extend([hist, unspecified, no_value, stale])
    decoded = decode_metrics_protobuf(request.SerializeToString())
    assert [p.name for p in decoded.batch.metrics] == ["h"]
    assert decoded.rejected == 3
    assert "invalid buckets" in decoded.error_message
    assert "temporality" in decoded.error_message
    assert "without a value" in decoded.error_message


def test_bad_bodies() -> None:
    with pytest.raises(DecodeError, match="ExportMetricsServiceRequest"):
        decode_metrics_protobuf(b"\x0a\xff\xff\xff\xff\x0f")
    with pytest.raises(DecodeError, match="ExportMetricsServiceRequest"):
        decode_metrics_json(b'{"resourceMetrics": [{"scopeMetrics": "x"}]}')


def test_points_of_a_nameless_metric_or_unsorted_bounds_are_refused_alone() -> None:
    """OTLP requires a metric's name and strictly increasing explicit bounds (unsorted ones
    were stored with wrong cumulative counts; a nameless series had no __name__)."""
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    metrics.add(name="").gauge.data_points.add(time_unix_nano=10**18, as_double=1.0)
    for bounds in ([2.0, 1.0], [1.0, 1.0]):
        hist = metrics.add(name="unsorted_seconds").histogram
        hist.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        hist.data_points.add(
            time_unix_nano=10**18, count=3, explicit_bounds=bounds, bucket_counts=[1, 1, 1]
        )
    metrics.add(name="kept").gauge.data_points.add(time_unix_nano=10**18, as_double=1.0)
    decoded = decode_metrics_protobuf(request.SerializeToString())
    assert decoded.rejected == 3
    assert "metric without a name" in decoded.error_message
    assert "invalid buckets" in decoded.error_message
    assert [p.name for p in decoded.batch.metrics] == ["kept"]


def _gauge_labels(*pairs: tuple[str, str]) -> tuple[str, dict[str, str]]:
    """The name and labels a gauge point `g` with these attributes decodes to."""
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="g")
    point = metric.gauge.data_points.add(time_unix_nano=10**18, as_double=1.0)
    for key, value in pairs:
        point.attributes.add(key=key, value=AnyValue(string_value=value))
    (found,) = decode_metrics_protobuf(request.SerializeToString()).batch.metrics
    return found.name, dict(found.labels)


def test_an_attribute_without_a_key_is_no_label() -> None:
    assert _gauge_labels(("", "x"), ("k", "v")) == ("g", {"k": "v"})


def test_an_attribute_named_like_the_metric_name_label_is_no_label() -> None:
    """`__name__` is the metric's own name; the attribute is dropped, as Prometheus' OTLP
    receiver sets the name after the attributes (it became a label `__name_`)."""
    found = _gauge_labels(("__name__", "other"), ("__tier__", "gold"))
    assert found == ("g", {"__tier__": "gold"})


CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def _scoped(scopes: list[tuple[str, str]], resource: dict[str, str]) -> bytes:
    """One request: for each (scope name, version), a monotonic sum `shared.requests` of 10
    per scope index + 10 with the same attributes, under one resource."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    for key, value in resource.items():
        attr = rm.resource.attributes.add(key=key)
        attr.value.string_value = str(value)
    for index, (name, version) in enumerate(scopes):
        sm = rm.scope_metrics.add()
        sm.scope.name, sm.scope.version = name, version
        metric = sm.metrics.add(name="shared.requests")
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = (
            AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        )
        point = metric.sum.data_points.add(as_int=10 * (index + 1), time_unix_nano=100 + index)
        point.attributes.add(key="route").value.string_value = "/cart"
    return request.SerializeToString()


def test_two_scopes_exporting_one_metric_stay_two_series() -> None:
    """The spec's `otel_scope_name` / `otel_scope_version` labels: the same metric name and
    attributes from two instrumentation libraries are two series (they were one, the second
    point overwriting the first: sum 20 for 30)."""
    body = _scoped([("libA", "1.0"), ("libB", "")], {"service.name": "cart"})
    points = _named(decode_metrics_protobuf(body).batch.metrics, "shared_requests_total")
    assert [(p.labels, p.value) for p in points] == [
        ((("job", "cart"), ("otel_scope_name", "libA"), ("otel_scope_version", "1.0"),
          ("route", "/cart")), 10.0),
        ((("job", "cart"), ("otel_scope_name", "libB"), ("route", "/cart")), 20.0),
    ]  # fmt: skip


def test_target_info_holds_the_other_resource_attributes() -> None:
    resource = {"service.name": "cart", "service.namespace": "shop", "service.instance.id": "c-1",
                "host.name": "node-7", "k8s.pod.name": "cart-5d8"}  # fmt: skip
    body = _scoped([("libA", "1.0"), ("libB", "2")], resource)
    (info,) = _named(decode_metrics_protobuf(body).batch.metrics, "target_info")
    assert (info.type, info.value, info.time_ns) == (MetricType.GAUGE, 1.0, 101)
    assert info.labels == (("host_name", "node-7"), ("instance", "c-1"), ("job", "shop/cart"),
                           ("k8s_pod_name", "cart-5d8"))  # fmt: skip
    # Only the attributes job and instance are made of: no target_info, as Prometheus'.
    bare = _scoped([("libA", "1.0")], {"service.name": "cart", "service.instance.id": "c-1"})
    assert _named(decode_metrics_protobuf(bare).batch.metrics, "target_info") == []
