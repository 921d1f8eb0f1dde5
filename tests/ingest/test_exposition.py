"""Exposition bodies -> points: summaries, histograms that cannot be folded, gauge histograms,
label clashes, timestamps and invalid bodies."""

from __future__ import annotations

import pytest

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.exposition import Exposition, parse_families, to_points
from meshscope.model.metrics import Histogram, MetricType

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TARGET = (("instance", "h:9"), ("job", "j"))
SCRAPE_NS = 1_700_000_000_456_789_000


def points(body: str, content_type: str = TEXT) -> Exposition:
    return to_points(parse_families(body, content_type), TARGET, SCRAPE_NS)


def by_name(exposition: Exposition) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for p in exposition.points:
        out.setdefault(p.name, []).append((p.labels, p.type, p.value, p.time_ns))
    return out


def test_summary_quantiles_are_summary_points_with_sum_and_count_counters() -> None:
    body = (
        "# HELP rpc RPC durations.\n# TYPE rpc summary\n"
        'rpc{quantile="0.5"} 0.25\nrpc{quantile="0.99"} 1.5\nrpc_sum 12.5\nrpc_count 40\n'
    )
    got = by_name(points(body))
    t = SCRAPE_NS - SCRAPE_NS % 1_000_000
    assert got["rpc"] == [
        ((("instance", "h:9"), ("job", "j"), ("quantile", "0.5")), MetricType.SUMMARY, 0.25, t),
        ((("instance", "h:9"), ("job", "j"), ("quantile", "0.99")), MetricType.SUMMARY, 1.5, t),
    ]
    assert got["rpc_sum"] == [(TARGET, MetricType.COUNTER, 12.5, t)]
    assert got["rpc_count"] == [(TARGET, MetricType.COUNTER, 40.0, t)]


def test_histogram_series_fold_per_label_set() -> None:
    body = (
        "# TYPE h histogram\n"
        'h_bucket{path="/a",le="1"} 2\nh_bucket{path="/a",le="+Inf"} 5\n'
        'h_sum{path="/a"} 9.5\nh_count{path="/a"} 5\n'
        'h_bucket{path="/b",le="1"} 0\nh_bucket{path="/b",le="+Inf"} 1\n'
        'h_sum{path="/b"} 3\nh_count{path="/b"} 1\n'
    )
    exposition = points(body)
    assert exposition.samples == 8
    folded = {dict(p.labels)["path"]: p.histogram for p in exposition.points}
    assert folded == {
        "/a": Histogram((1.0,), (2, 3), 9.5, 5),
        "/b": Histogram((1.0,), (0, 1), 3.0, 1),
    }


@pytest.mark.parametrize(
    "series",
    [
        'h_bucket{le="1"} 2\nh_sum 1\nh_count 2\n',  # no +Inf bucket
        'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 2\nh_count 2\n',  # no _sum
        'h_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n',  # decreasing
        'h_bucket{le="1"} 1.5\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n',  # fractional
    ],
)
def test_histograms_that_cannot_fold_stay_plain_series(series: str) -> None:
    exposition = points("# TYPE h histogram\n" + series)
    assert all(p.histogram is None for p in exposition.points)
    assert sorted({p.name for p in exposition.points}) == sorted(
        {line.split("{")[0].split(" ")[0] for line in series.splitlines()}
    )
    assert all(p.type is MetricType.COUNTER for p in exposition.points)
    assert len(exposition.points) == exposition.samples == len(series.splitlines())


def test_openmetrics_gauge_histogram_info_and_timestamps() -> None:
    body = (
        "# TYPE q gaugehistogram\n"
        'q_bucket{le="1.0"} 4 1700000000.5\nq_bucket{le="+Inf"} 6 1700000000.5\n'
        "q_gcount 6 1700000000.5\nq_gsum 3.5 1700000000.5\n"
        "# TYPE build info\n"
        'build_info{version="1.2"} 1\n'
        "# EOF\n"
    )
    got = by_name(points(body, OPENMETRICS))
    assert got["q_gsum"] == [(TARGET, MetricType.GAUGE, 3.5, 1_700_000_000_500_000_000)]
    assert len(got["q_bucket"]) == 2
    assert got["build_info"][0][1:3] == (MetricType.GAUGE, 1.0)


def test_clashing_labels_are_exported_and_empty_ones_dropped() -> None:
    body = 'm{job="theirs",instance="x",exported_job="y",empty=""} 1\n'
    (point,) = points(body).points
    assert point.labels == (
        ("exported_exported_job", "theirs"),
        ("exported_instance", "x"),
        ("exported_job", "y"),
        ("instance", "h:9"),
        ("job", "j"),
    )


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        ("m{a=1} 1\n", TEXT, "invalid Prometheus text format"),
        ("m 1\n", OPENMETRICS, "invalid OpenMetrics"),  # no # EOF
        ("m one\n", TEXT, "invalid Prometheus text format"),
        # prometheus_client compares an integer timestamp with a float one: AttributeError
        ("# TYPE a gauge\na 1 1\na 2 1e3\n# EOF\n", OPENMETRICS, "invalid OpenMetrics"),
    ],
)
def test_invalid_bodies_raise_decode_error(body: str, content_type: str, needle: str) -> None:
    with pytest.raises(DecodeError, match=needle):
        parse_families(body, content_type)
