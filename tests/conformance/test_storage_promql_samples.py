"""What PromQL reads from every store: at most one sample per series and millisecond (a
remote write or OTLP request stored and then retried must not count twice), and one series
per label set even when a histogram's classic series and a plain series share a name."""

from __future__ import annotations

from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import Vector
from meshscope.store.base import Storage

T0_MS = 1_700_000_000_000
LABELS = (("job", "retry"),)


def _values(engine: Engine, query: str, at_ms: int) -> list[float]:
    found = engine.instant(query, at_ms)
    assert isinstance(found, Vector)
    return [sample.v for sample in found.samples]


def _at(seconds: int) -> int:
    return (T0_MS + seconds * 1000) * 1_000_000


def test_a_sample_written_twice_counts_once(storage: Storage) -> None:
    first = [MetricPoint("retried_total", LABELS, _at(s), MetricType.COUNTER, float(s))
             for s in range(0, 60, 10)]  # fmt: skip
    storage.metrics.write_points(first)
    storage.metrics.write_points(first[2:4])  # a request retried after it was stored
    # a different value at a time already taken: the last written is the sample
    storage.metrics.write_points(
        [MetricPoint("retried_total", LABELS, _at(50), MetricType.COUNTER, 99.0)]
    )
    engine = Engine(MetricStoreQueryable(storage.metrics))
    end = T0_MS + 60_000
    assert _values(engine, "count_over_time(retried_total[2m])", end) == [6.0]
    assert _values(engine, "changes(retried_total[2m])", end) == [5.0]
    assert _values(engine, "retried_total", end) == [99.0]
    (series,) = engine.range("retried_total", T0_MS, end, 10_000).series
    assert [v for _, v in series.points] == [0.0, 10.0, 20.0, 30.0, 40.0, 99.0, 99.0]


def test_a_classic_series_and_a_histograms_part_with_the_same_labels_are_one(
    storage: Storage,
) -> None:
    histogram = Histogram((1.0,), (1, 1), 4.0, 2)
    storage.metrics.write_points(
        [MetricPoint("lat", LABELS, _at(0), MetricType.HISTOGRAM, 2.0, histogram),
         MetricPoint("lat_sum", LABELS, _at(30), MetricType.GAUGE, 100.0)]
    )  # fmt: skip
    engine = Engine(MetricStoreQueryable(storage.metrics))
    found = engine.range("lat_sum", T0_MS, T0_MS + 60_000, 30_000).series
    assert [(s.labels, [v for _, v in s.points]) for s in found] == [
        ((("__name__", "lat_sum"), ("job", "retry")), [4.0, 100.0, 100.0])
    ]
    assert _values(engine, "sum(lat_sum)", T0_MS + 40_000) == [100.0]
