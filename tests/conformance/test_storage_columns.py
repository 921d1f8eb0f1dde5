"""Conformance of the array reads (`select_values`, `select_histograms`): every backend returns
the same samples as `select`, as arrays, for the same writes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType, labels_of
from meshscope.store.base import LabelMatcher, MatchOp, Storage
from tests.conformance.backends import REOPEN, Backend, need

S = 1_000_000_000
T0 = 1_700_000_000 * S
Row = tuple[Labels, list[int], list[float]]


def point(t: int, value: float, **labels: str) -> MetricPoint:
    return MetricPoint("m", labels_of(labels), T0 + t * S, MetricType.COUNTER, value)


def hist(t: int, bounds: tuple[float, ...], counts: tuple[int, ...], **labels: str) -> MetricPoint:
    h = Histogram(bounds, counts, float(sum(counts)) / 2, sum(counts))
    return MetricPoint("h", labels_of(labels), T0 + t * S, MetricType.HISTOGRAM, histogram=h)


def _as_lists(storage: Storage, start: int, end: int, *matchers: LabelMatcher) -> list[Row]:
    return [
        (c.labels, c.time_ns.tolist(), c.value.tolist())
        for c in storage.metrics.select_values("m", list(matchers), T0 + start * S, T0 + end * S)
    ]


def _via_select(storage: Storage, start: int, end: int, *matchers: LabelMatcher) -> list[Row]:
    out: list[Row] = []
    for s in storage.metrics.select("m", list(matchers), T0 + start * S, T0 + end * S):
        plain = [p for p in s.samples if p.histogram is None]
        if plain:
            out.append((s.labels, [p.time_ns for p in plain], [p.value for p in plain]))
    return out


def test_select_values_matches_select(storage: Storage) -> None:
    storage.metrics.write_points([point(1, 1, a="x"), point(1, 10, a="y"), point(3, 3, a="x")])
    storage.metrics.write_points([point(2, 2, a="x"), point(3, 4, a="x"), point(5, 30, a="y")])
    storage.metrics.write_points([hist(4, (1.0,), (1, 2), a="x")])  # not a float sample
    want = [
        (labels_of({"a": "x"}), [T0 + t * S for t in (1, 2, 3, 3)], [1.0, 2.0, 3.0, 4.0]),
        (labels_of({"a": "y"}), [T0 + S, T0 + 5 * S], [10.0, 30.0]),
    ]
    assert _as_lists(storage, 0, 9) == want == _via_select(storage, 0, 9)
    inside = (want[0][0], [T0 + 2 * S, T0 + 3 * S, T0 + 3 * S], [2.0, 3.0, 4.0])
    assert _as_lists(storage, 2, 3) == _via_select(storage, 2, 3) == [inside]
    matcher = LabelMatcher("a", MatchOp.RE, "y|z")
    assert _as_lists(storage, 0, 9, matcher) == [want[1]]
    assert _as_lists(storage, 6, 9) == []
    assert storage.metrics.select_values("nothing", [], 0, 2**63 - 1) == []


def test_select_values_sees_later_writes_and_expiry(storage: Storage) -> None:
    storage.metrics.write_points([point(1, 1, a="x"), point(2, 2, a="x")])
    assert _as_lists(storage, 0, 9) == _via_select(storage, 0, 9)
    storage.metrics.write_points([point(4, 4, a="x")])  # appended
    storage.metrics.write_points([point(3, 3, a="x")])  # late, inserted in the middle
    got = _as_lists(storage, 0, 9)
    assert got == _via_select(storage, 0, 9)
    assert got[0][2] == [1.0, 2.0, 3.0, 4.0]
    storage.expire(T0 + 3 * S)
    assert _as_lists(storage, 0, 9) == _via_select(storage, 0, 9)
    assert _as_lists(storage, 0, 9)[0][2] == [3.0, 4.0]


def test_select_values_arrays_are_typed_and_read_only(storage: Storage) -> None:
    storage.metrics.write_points([point(1, 1.5, a="x")])
    [columns] = storage.metrics.select_values("m", [], 0, 2**63 - 1)
    assert columns.time_ns.dtype == np.int64
    assert columns.value.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        columns.value[0] = 2.0


def test_select_histograms_groups_points_by_bounds(storage: Storage) -> None:
    storage.metrics.write_points(
        [
            hist(1, (0.1, 1.0), (1, 2, 3), a="x"),
            hist(1, (0.5,), (4, 5), a="y"),
            hist(2, (0.1, 1.0), (2, 2, 3), a="x"),
            MetricPoint("h", labels_of({"a": "x"}), T0 + 2 * S, MetricType.GAUGE, 7.0),
        ]
    )
    storage.metrics.write_points([hist(3, (0.1, 0.5, 1.0), (1, 1, 1, 1), a="x")])
    groups = storage.metrics.select_histograms("h", [], 0, 2**63 - 1)
    got = [
        (
            g.labels,
            g.bounds,
            g.time_ns.tolist(),
            g.counts.tolist(),
            g.sum.tolist(),
            g.count.tolist(),
        )
        for g in groups
    ]
    x, y = labels_of({"a": "x"}), labels_of({"a": "y"})
    assert got == [
        (x, (0.1, 1.0), [T0 + S, T0 + 2 * S], [[1, 2, 3], [2, 2, 3]], [3.0, 3.5], [6, 7]),
        (x, (0.1, 0.5, 1.0), [T0 + 3 * S], [[1, 1, 1, 1]], [2.0], [4]),
        (y, (0.5,), [T0 + S], [[4, 5]], [4.5], [9]),
    ]
    assert groups[0].counts.dtype == np.uint64 and groups[0].count.dtype == np.uint64
    window = storage.metrics.select_histograms("h", [], T0 + 2 * S, T0 + 3 * S)
    assert [(g.labels, g.time_ns.tolist()) for g in window] == [
        (x, [T0 + 2 * S]),
        (x, [T0 + 3 * S]),
    ]
    matcher = LabelMatcher("a", MatchOp.EQ, "y")
    assert [g.labels for g in storage.metrics.select_histograms("h", [matcher], 0, T0 * 2)] == [y]
    assert storage.metrics.select_values("h", [], 0, 2**63 - 1)[0].value.tolist() == [7.0]


def _hists(storage: Storage, start: int = 0, end: int = 2**63 - 1) -> list[tuple[object, ...]]:
    return [
        (g.labels, g.bounds, g.time_ns.tolist(), g.counts.tolist(), g.sum.tolist(),
         g.count.tolist())
        for g in storage.metrics.select_histograms("h", [], start, end)
    ]  # fmt: skip


def test_late_and_equal_time_samples_come_in_time_then_write_order(storage: Storage) -> None:
    storage.metrics.write_points([point(5, 5, a="x"), point(2, 2, a="x"), point(5, 6, a="x")])
    storage.metrics.write_points([point(1, 1, a="x"), point(5, 7, a="x"), point(9, 9, a="x")])
    storage.metrics.write_points([point(2, 3, a="x"), point(0, 0, a="y")])
    times = [T0 + t * S for t in (1, 2, 2, 5, 5, 5, 9)]
    want = [
        (labels_of({"a": "x"}), times, [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0]),
        (labels_of({"a": "y"}), [T0], [0.0]),
    ]
    assert _as_lists(storage, 0, 9) == want == _via_select(storage, 0, 9)
    assert _as_lists(storage, 2, 5)[0][2] == [2.0, 3.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize("wide", [False, True])
def test_select_values_agrees_with_a_model_over_random_writes(storage: Storage, wide: bool) -> None:
    """Many series, late and equal times, several writes (parts): each series' samples in
    time then write order, the series in order of first write. `wide` spreads the times over
    most of the int64 range (series x time span past 2^63)."""
    rng = random.Random(11 + wide)
    unit = 2**60 if wide else S
    model: dict[Labels, list[tuple[int, int, float]]] = {}
    order = 0
    for _ in range(6):
        batch = []
        for _ in range(rng.randint(1, 40)):
            labels = labels_of({"a": f"s{rng.randint(0, 11)}"})
            t = rng.randint(-3, 5) * unit if wide else T0 + rng.randint(0, 30) * unit
            value = float(rng.randint(0, 10**6))
            batch.append(MetricPoint("m", labels, t, MetricType.COUNTER, value))
            model.setdefault(labels, []).append((t, order, value))
            order += 1
        storage.metrics.write_points(batch)
    low, high = -(2**63), 2**63 - 1
    want = [
        (labels, [t for t, _, _ in sorted(rows)], [v for _, _, v in sorted(rows)])
        for labels, rows in model.items()
    ]
    got = [
        (c.labels, c.time_ns.tolist(), c.value.tolist())
        for c in storage.metrics.select_values("m", [], low, high)
    ]
    assert got == want


AWKWARD_BOUNDS = [
    (0.1 + 0.2, 1 / 3, 2.0 / 3.0),
    (5e-324, 1e-300, 1.7976931348623157e308),
    (-float("inf"), -0.0, 123456789.123456789, float("inf")),
    (),
]


def test_select_histograms_agrees_with_a_model_over_random_writes(storage: Storage) -> None:
    """Bounds that are hard to write as text, changing within a series, late and equal
    times over several writes: per series, one group per bounds in order of its first
    point, each in time then write order."""
    rng = random.Random(5)
    model: dict[Labels, dict[tuple[float, ...], list[tuple[int, int, list[int], float]]]] = {}
    order = 0
    for _ in range(5):
        batch = []
        for _ in range(rng.randint(1, 30)):
            labels = labels_of({"a": f"s{rng.randint(0, 5)}"})
            bounds = rng.choice(AWKWARD_BOUNDS)
            counts = tuple(rng.randint(0, 2**40) for _ in range(len(bounds) + 1))
            t = T0 + rng.randint(0, 20) * S
            h = Histogram(bounds, counts, float(rng.randint(0, 99)), sum(counts))
            batch.append(MetricPoint("h", labels, t, MetricType.HISTOGRAM, histogram=h))
            model.setdefault(labels, {}).setdefault(bounds, []).append(
                (t, order, list(counts), h.sum)
            )
            order += 1
        storage.metrics.write_points(batch)
    want = []
    for labels, groups in model.items():
        rows = [(labels, bounds, sorted(points)) for bounds, points in groups.items()]
        rows.sort(key=lambda row: row[2][0][:2])
        for _, bounds, points in rows:
            want.append(
                (labels, bounds, [p[0] for p in points], [p[2] for p in points],
                 [p[3] for p in points], [sum(p[2]) for p in points])
            )  # fmt: skip
    assert _hists(storage) == want


def test_histograms_late_appended_and_expired(storage: Storage) -> None:
    bounds = (0.1, 1.0)
    storage.metrics.write_points(
        [hist(2, bounds, (1, 1, 1), a="x"), hist(4, bounds, (3, 3, 3), a="x")]
    )
    storage.metrics.write_points(
        [hist(3, bounds, (2, 2, 2), a="x"), hist(5, (0.5,), (1, 1), a="x")]
    )
    storage.metrics.write_points([hist(1, bounds, (0, 0, 1), a="x")])
    x = labels_of({"a": "x"})
    times = [T0 + t * S for t in (1, 2, 3, 4)]
    counts = [[0, 0, 1], [1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert _hists(storage) == [
        (x, bounds, times, counts, [0.5, 1.5, 3.0, 4.5], [1, 3, 6, 9]),
        (x, (0.5,), [T0 + 5 * S], [[1, 1]], [1.0], [2]),
    ]
    storage.expire(T0 + 3 * S)
    assert _hists(storage) == [
        (x, bounds, times[2:], counts[2:], [3.0, 4.5], [6, 9]),
        (x, (0.5,), [T0 + 5 * S], [[1, 1]], [1.0], [2]),
    ]
    assert _hists(storage, T0 + 5 * S, T0 + 9 * S) == [
        (x, (0.5,), [T0 + 5 * S], [[1, 1]], [1.0], [2])
    ]


def test_array_reads_after_reopen_see_old_and_new_samples(backend: Backend, tmp_path: Path) -> None:
    need(backend, REOPEN)
    first = backend.open(tmp_path)
    first.metrics.write_points([point(1, 1, a="x"), point(2, 2, a="y"), point(3, 3, a="x")])
    first.metrics.write_points([hist(1, (1.0,), (1, 2), a="x")])
    first.close()
    second = backend.open(tmp_path)
    try:
        assert _as_lists(second, 0, 9) == _via_select(second, 0, 9)
        second.metrics.write_points([point(4, 4, a="x"), point(0, 0, a="y"), point(5, 5, a="z")])
        second.metrics.write_points([hist(2, (1.0,), (2, 2), a="x")])
        got = _as_lists(second, 0, 9)
        assert got == _via_select(second, 0, 9)
        assert [values for _, _, values in got] == [[1.0, 3.0, 4.0], [0.0, 2.0], [5.0]]
        assert [g[2] for g in _hists(second)] == [[T0 + S, T0 + 2 * S]]
    finally:
        second.close()


def test_histograms_read_from_disk_keep_bounds_changes_and_large_counts(
    backend: Backend, tmp_path: Path
) -> None:
    """After a reopen the rows come from the store's files, not from memory written earlier:
    bounds that change within a series and counts of any size read back exactly."""
    need(backend, REOPEN)
    first = backend.open(tmp_path)
    first.metrics.write_points([hist(1, (1.0,), (1, 2**40), a="x"), hist(1, (1.0,), (0, 0), a="y")])
    first.metrics.write_points([hist(2, (0.5, 2.0), (2**62, 0, 3), a="x")])
    first.metrics.write_points([hist(3, (1.0,), (7, 2**40), a="x")])
    first.close()
    second = backend.open(tmp_path)
    try:
        x, y = labels_of({"a": "x"}), labels_of({"a": "y"})
        assert [(h[0], h[1], h[2], h[3]) for h in _hists(second)] == [
            (x, (1.0,), [T0 + S, T0 + 3 * S], [[1, 2**40], [7, 2**40]]),
            (x, (0.5, 2.0), [T0 + 2 * S], [[2**62, 0, 3]]),
            (y, (1.0,), [T0 + S], [[0, 0]]),
        ]
    finally:
        second.close()


def test_series_labels_without_samples_match_select(storage: Storage) -> None:
    """What /api/v1/series, labels and label values read (`Queryable.series`, from each
    series' last point) equals the label sets of a full `select`, histograms' classic series
    included, over ranges that cut series in and out."""
    from meshscope.query.promql.queryable import MetricStoreQueryable

    points = []
    for i in range(12):
        t = 1_700_000_000_000_000_000 + i * 15 * 10**9
        points.append(
            MetricPoint("calls", labels_of({"svc": f"s{i % 3}"}), t, MetricType.COUNTER, i)
        )
        if i < 6:  # a series that stops half way
            points.append(MetricPoint("old", labels_of({"svc": "gone"}), t, value=1.0))
        hist = Histogram((0.5, 2.0), (i, 1, 0), 1.0 * i, i + 1)
        points.append(MetricPoint("lat", labels_of({"svc": f"s{i % 2}"}), t, MetricType.HISTOGRAM,
                                  histogram=hist))  # fmt: skip
    storage.metrics.write_points(points)
    q = MetricStoreQueryable(storage.metrics)
    t0 = 1_700_000_000_000
    selectors = [
        [LabelMatcher("__name__", MatchOp.RE, ".+")],
        [LabelMatcher("__name__", MatchOp.EQ, "lat_bucket"), LabelMatcher("le", MatchOp.NE, "2")],
        [LabelMatcher("__name__", MatchOp.RE, "lat_.*"), LabelMatcher("svc", MatchOp.EQ, "s1")],
    ]
    for start, end in ((t0, t0 + 200_000), (t0 + 100_000, t0 + 200_000), (t0 - 10, t0 - 1)):
        for matchers in selectors:
            want = sorted({s.labels for s in q.select(matchers, start, end)})
            assert sorted(set(q.series(matchers, start, end))) == want, (matchers, start, end)
