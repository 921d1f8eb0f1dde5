"""Write requests of a known number of items, for every receiver."""

from __future__ import annotations

import time

import cramjam
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from meshscope.ingest.prompb.remote_pb2 import WriteRequest

T0 = time.time_ns() - 60 * 10**9
_SEQ = [0]


def _service(name: str) -> KeyValue:
    return KeyValue(key="service.name", value=AnyValue(string_value=name))


def spans(count: int, service: str = "limited") -> bytes:
    """An OTLP traces request of `count` spans, each in a trace of its own."""
    _SEQ[0] += 1
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_service(service))
    added = rs.scope_spans.add().spans
    for i in range(count):
        added.add(
            trace_id=_SEQ[0].to_bytes(8, "big") + i.to_bytes(8, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            name="op",
            kind=2,
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 + 1000,
        )
    return request.SerializeToString()


def logs(count: int) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(_service("limited"))
    records = rl.scope_logs.add().log_records
    for i in range(count):
        records.add(time_unix_nano=T0 + i, body=AnyValue(string_value=f"line {i}"))
    return request.SerializeToString()


def metrics(count: int) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_service("limited"))
    metric = rm.scope_metrics.add().metrics.add(name="limited_gauge")
    for i in range(count):
        metric.gauge.data_points.add(
            time_unix_nano=T0 + i,
            as_double=1.0,
            attributes=[KeyValue(key="i", value=AnyValue(string_value=str(i)))],
        )
    return request.SerializeToString()


def zipkin(count: int) -> bytes:
    _SEQ[0] += 1
    return orjson.dumps(
        [
            {
                "traceId": f"{_SEQ[0]:016x}{i:016x}",
                "id": f"{i + 1:016x}",
                "name": "op",
                "timestamp": T0 // 1000,
                "duration": 5,
                "localEndpoint": {"serviceName": "limited"},
            }
            for i in range(count)
        ]
    )


def loki(count: int) -> bytes:
    values = [[str(T0 + i), f"line {i}"] for i in range(count)]
    return orjson.dumps({"streams": [{"stream": {"job": "limited"}, "values": values}]})


def remote_write(count: int) -> bytes:
    request = WriteRequest()
    for i in range(count):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value="limited_total")
        series.labels.add(name="i", value=str(i))
        series.samples.add(value=1.0, timestamp=T0 // 10**6)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def delta_counter(count: int, value: float, at_ns: int) -> bytes:
    """A delta counter `limited_delta_total` of `count` series (label `i`), each adding
    `value` at `at_ns`."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_service("limited"))
    metric = rm.scope_metrics.add().metrics.add(name="limited_delta_total")
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.is_monotonic = True
    for i in range(count):
        metric.sum.data_points.add(
            start_time_unix_nano=at_ns - 10**9,
            time_unix_nano=at_ns,
            as_double=value,
            attributes=[KeyValue(key="i", value=AnyValue(string_value=str(i)))],
        )
    return request.SerializeToString()
