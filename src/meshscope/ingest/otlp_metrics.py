"""OTLP metrics: `ExportMetricsServiceRequest` (protobuf or OTLP/JSON) -> Prometheus points.

Mapping (as Prometheus' OTLP receiver and the Collector's prometheus exporter do; names per
`prom_names`):
- gauge -> GAUGE points; monotonic sum -> COUNTER named `..._total`; non-monotonic sum ->
  GAUGE;
- explicit-bucket histogram -> one HISTOGRAM point (per-bucket counts as sent);
- exponential histogram -> one HISTOGRAM point with explicit bounds at the bucket edges
  (`base ** index`), the zero bucket ending at `zero_threshold`;
- summary -> `name_sum` and `name_count` COUNTERs and one `name{quantile="q"}` SUMMARY point
  each (so `/api/v1/metadata` says summary, as for a scraped one);
- labels are the point attributes, plus `job` (`service.namespace/service.name`, or
  `service.name`) and `instance` (`service.instance.id`) from the resource, and
  `otel_scope_name` / `otel_scope_version` from the instrumentation scope (when set), as the
  OTel spec's Prometheus compatibility asks of exporters: two scopes' series of one name and
  attributes stay apart (they overwrote each other);
- the resource's other attributes -> one `target_info{job, instance, ...} 1` GAUGE per
  resource, at the newest time of its points (the spec's target info; what Grafana's
  `* on (job, instance) group_left target_info` joins read). Resources with no other
  attributes get none, as in Prometheus' OTLP translator.

Delta sums and histograms are made cumulative by the caller's `DeltaToCumulative`; without
one they are rejected (partial success). Points flagged "no recorded value" (Prometheus
staleness) are skipped. Exemplars, min/max, scope attributes and schema URLs are not kept. A
data point the store cannot hold (a time past 2^63 ns, histogram counts past 2^64) is
rejected (`checks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
)

from meshscope.ingest.checks import BAD_COUNT, BAD_POINT_TIME, MAX_TIME_NS, histogram_fits
from meshscope.ingest.delta import DeltaToCumulative
from meshscope.ingest.otlp_common import (
    Decoded,
    Rejections,
    attributes,
    parse_json,
    parse_protobuf,
    resource_info,
)
from meshscope.ingest.prom_names import label_name, label_value, metric_name
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType

_WHAT = "ExportMetricsServiceRequest"
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_NO_RECORDED_VALUE = 1
_MAX_EXP_BUCKETS = 4096
_NO_NAME = "metric without a name"
_NO_DELTA = "delta temporality needs a DeltaToCumulative (none configured)"
_BAD_TEMPORALITY = "aggregation temporality must be CUMULATIVE or DELTA"


def decode_metrics_protobuf(body: bytes, delta: DeltaToCumulative | None = None) -> Decoded:
    """Decode a protobuf `ExportMetricsServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_protobuf(ExportMetricsServiceRequest(), body, _WHAT)
    return points_from_request(request.resource_metrics, delta)


def decode_metrics_json(body: bytes, delta: DeltaToCumulative | None = None) -> Decoded:
    """Decode an OTLP/JSON `ExportMetricsServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_json(ExportMetricsServiceRequest(), body, _WHAT)
    return points_from_request(request.resource_metrics, delta)


def points_from_request(
    resource_metrics: Sequence[ResourceMetrics], delta: DeltaToCumulative | None = None
) -> Decoded:
    """Walk parsed `ResourceMetrics` into metric points, counting rejected data points."""
    walker = _Walker(delta)
    for rm in resource_metrics:
        service, resource = resource_info(rm.resource)
        target: dict[str, str] = {}
        if "service.name" in resource:
            namespace = label_value(resource.get("service.namespace"))
            target["job"] = f"{namespace}/{service}" if namespace else service
        instance = label_value(resource.get("service.instance.id"))
        if instance:
            target["instance"] = instance
        first = len(walker.points)
        for sm in rm.scope_metrics:
            labels = dict(target)
            if sm.scope.name:
                labels[SCOPE_NAME] = sm.scope.name
            if sm.scope.version:
                labels[SCOPE_VERSION] = sm.scope.version
            for metric in sm.metrics:
                walker.metric(metric, labels)
        if len(walker.points) > first:
            info = _target_info(resource, target, walker.points[first:])
            if info is not None:
                walker.points.append(info)
    return walker.rejections.result(Batch(metrics=walker.points), "data points")


SCOPE_NAME, SCOPE_VERSION = "otel_scope_name", "otel_scope_version"
TARGET_INFO = "target_info"
_IDENTIFYING = frozenset({"service.name", "service.namespace", "service.instance.id"})
"""Resource attributes that make `job` and `instance`, not `target_info` labels."""


def _target_info(
    resource: dict[str, AttrValue], target: dict[str, str], points: Sequence[MetricPoint]
) -> MetricPoint | None:
    """The resource's `target_info` point, or None when it has no other attributes."""
    others = [kv for kv in resource.items() if kv[0] not in _IDENTIFYING]
    if not others:
        return None
    labels = _labels_of(others, target)
    time_ns = max(point.time_ns for point in points)
    return MetricPoint(TARGET_INFO, labels, time_ns, MetricType.GAUGE, 1.0,
                       help="Target metadata")  # fmt: skip


def _labels(kvs: Sequence[KeyValue], target: dict[str, str]) -> Labels:
    return _labels_of(attributes(kvs).items(), target)


def _labels_of(pairs: Iterable[tuple[str, AttrValue]], target: dict[str, str]) -> Labels:
    out: dict[str, str] = {}
    for key, value in sorted(pairs):
        if not key:  # OTel: attribute keys are non-empty; a label needs a name
            continue
        name = label_name(key)
        if name == "__name__":  # the metric's name is its `__name__`, as in Prometheus
            continue
        text = label_value(value)
        out[name] = f"{out[name]};{text}" if name in out else text
    out.update(target)
    return tuple(sorted(out.items()))


_MIN_SCALE, _MAX_SCALE = -10, 20
"""The scales OTLP defines (data model: exponential histogram)."""


def _exponential(dp: ExponentialHistogramDataPoint) -> Histogram | None:
    """Explicit buckets at the edges of an exponential histogram's, every edge kept (the
    last bucket's upper edge too, then an empty +Inf bucket, so a quantile in the top bucket
    is interpolated within it); None if out of range: buckets at a scale outside OTLP's
    [-10, 20] (without buckets the scale means nothing), a zero threshold that is negative
    or not finite or above the first positive bucket, or edges past a double."""
    negative, positive = dp.negative, dp.positive
    buckets = len(negative.bucket_counts) + len(positive.bucket_counts)
    if buckets > _MAX_EXP_BUCKETS or not 0 <= dp.zero_threshold < math.inf:
        return None
    if buckets and not _MIN_SCALE <= dp.scale <= _MAX_SCALE:
        return None
    factor = 2.0**-dp.scale
    try:
        uppers = [
            -(2.0 ** ((negative.offset + i) * factor)) for i in range(len(negative.bucket_counts))
        ]
        counts = list(negative.bucket_counts)
        uppers.reverse()
        counts.reverse()
        uppers.append(dp.zero_threshold)
        counts.append(dp.zero_count)
        for i, count in enumerate(positive.bucket_counts):
            uppers.append(2.0 ** ((positive.offset + i + 1) * factor))
            counts.append(count)
    except OverflowError:
        return None
    if any(low >= high for low, high in pairwise(uppers)):
        return None
    counts.append(0)
    return Histogram(tuple(uppers), tuple(counts), dp.sum, dp.count)


class _Walker:
    """Accumulates the points of one request and the reasons for rejecting some."""

    def __init__(self, delta: DeltaToCumulative | None) -> None:
        self.delta = delta
        self.points: list[MetricPoint] = []
        self.rejections = Rejections()

    def metric(self, metric: Metric, target: dict[str, str]) -> None:
        which = metric.WhichOneof("data")
        if not metric.name and which is not None:  # OTLP: the name is required
            points = getattr(metric, which).data_points
            if points:
                self.rejections.add(_NO_NAME, len(points))
            return
        if which == "gauge":
            name = metric_name(metric.name, metric.unit, gauge=True)
            self._numbers(metric, name, metric.gauge.data_points, target, MetricType.GAUGE)
        elif which == "sum":
            data = metric.sum
            if not self._temporality_ok(data.aggregation_temporality, len(data.data_points)):
                return
            kind = MetricType.COUNTER if data.is_monotonic else MetricType.GAUGE
            name = metric_name(metric.name, metric.unit, counter=data.is_monotonic)
            is_delta = data.aggregation_temporality == _DELTA
            self._numbers(metric, name, data.data_points, target, kind, is_delta)
        elif which == "histogram":
            hist = metric.histogram
            if not self._temporality_ok(hist.aggregation_temporality, len(hist.data_points)):
                return
            is_delta = hist.aggregation_temporality == _DELTA
            name = metric_name(metric.name, metric.unit)
            for dp in hist.data_points:
                self._histogram(metric, name, dp, _explicit(dp), target, is_delta)
        elif which == "exponential_histogram":
            exp = metric.exponential_histogram
            if not self._temporality_ok(exp.aggregation_temporality, len(exp.data_points)):
                return
            is_delta = exp.aggregation_temporality == _DELTA
            name = metric_name(metric.name, metric.unit)
            for edp in exp.data_points:
                self._histogram(metric, name, edp, _exponential(edp), target, is_delta)
        elif which == "summary":
            self._summary(metric, target)

    def _temporality_ok(self, temporality: int, points: int) -> bool:
        if temporality == _CUMULATIVE or (temporality == _DELTA and self.delta is not None):
            return True
        if points:
            self.rejections.add(_NO_DELTA if temporality == _DELTA else _BAD_TEMPORALITY, points)
        return False

    def _numbers(
        self,
        metric: Metric,
        name: str,
        data_points: Sequence[NumberDataPoint],
        target: dict[str, str],
        kind: MetricType,
        is_delta: bool = False,
    ) -> None:
        for dp in data_points:
            if dp.flags & _NO_RECORDED_VALUE:
                continue
            which = dp.WhichOneof("value")
            if which is None:
                self.rejections.add("number data point without a value")
                continue
            if dp.time_unix_nano > MAX_TIME_NS:
                self.rejections.add(BAD_POINT_TIME)
                continue
            value = float(getattr(dp, which))
            labels = _labels(dp.attributes, target)
            if is_delta and self.delta is not None:
                value = self.delta.add_sum((name, labels), value)
            self.points.append(
                MetricPoint(
                    name,
                    labels,
                    dp.time_unix_nano,
                    kind,
                    value,
                    help=metric.description,
                    unit=metric.unit,
                )
            )

    def _histogram(
        self,
        metric: Metric,
        name: str,
        dp: HistogramDataPoint | ExponentialHistogramDataPoint,
        histogram: Histogram | None,
        target: dict[str, str],
        is_delta: bool,
    ) -> None:
        if dp.flags & _NO_RECORDED_VALUE:
            return
        if histogram is None:
            self.rejections.add(f"{metric.WhichOneof('data')} data point with invalid buckets")
            return
        if dp.time_unix_nano > MAX_TIME_NS:
            self.rejections.add(BAD_POINT_TIME)
            return
        labels = _labels(dp.attributes, target)
        if is_delta and self.delta is not None:
            total = self.delta.add_histogram((name, labels), histogram, histogram_fits)
            if total is None:  # the totals stay as they were
                self.rejections.add(BAD_COUNT)
                return
            histogram = total
        if not histogram_fits(histogram):
            self.rejections.add(BAD_COUNT)
            return
        self.points.append(
            MetricPoint(
                name,
                labels,
                dp.time_unix_nano,
                MetricType.HISTOGRAM,
                float(histogram.count),
                histogram,
                metric.description,
                metric.unit,
            )
        )

    def _summary(self, metric: Metric, target: dict[str, str]) -> None:
        base = metric_name(metric.name, metric.unit)
        help_, unit = metric.description, metric.unit
        for dp in metric.summary.data_points:
            if dp.flags & _NO_RECORDED_VALUE:
                continue
            time_ns = dp.time_unix_nano
            if time_ns > MAX_TIME_NS:
                self.rejections.add(BAD_POINT_TIME)
                continue
            labels = _labels(dp.attributes, target)
            append = self.points.append
            append(
                MetricPoint(
                    f"{base}_sum", labels, time_ns, MetricType.COUNTER, dp.sum, None, help_, unit
                )
            )
            append(
                MetricPoint(
                    f"{base}_count",
                    labels,
                    time_ns,
                    MetricType.COUNTER,
                    float(dp.count),
                    None,
                    help_,
                    unit,
                )
            )
            for q in dp.quantile_values:
                q_labels = tuple(sorted((*labels, ("quantile", label_value(q.quantile)))))
                append(
                    MetricPoint(
                        base, q_labels, time_ns, MetricType.SUMMARY, q.value, None, help_, unit
                    )
                )


def _explicit(dp: HistogramDataPoint) -> Histogram | None:
    """The model histogram of an explicit-bucket point; None if its buckets are inconsistent."""
    bounds = tuple(dp.explicit_bounds)
    counts = tuple(dp.bucket_counts)
    if not counts:
        return Histogram((), (dp.count,), dp.sum, dp.count)
    if len(counts) != len(bounds) + 1 or any(math.isnan(b) for b in bounds):
        return None
    if any(low >= high for low, high in pairwise(bounds)):  # OTLP: strictly increasing
        return None
    return Histogram(bounds, counts, dp.sum, dp.count)
