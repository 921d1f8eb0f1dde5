"""Metrics: series (name, labels) keyed by a fingerprint, samples read by fingerprint.

A read first finds the matching series of a name in `series` (matchers applied here, in
Python, with the same regex semantics as every other backend), then reads their samples with
`fingerprint IN (...)` (or all of the name's samples when nothing narrows them): SigNoz's
two-step read (scaleout.md, section 1).
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType
from meshscope.store.base import (
    HistogramColumns,
    LabelMatcher,
    MetricFamily,
    SampleColumns,
    Series,
)
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import RANK_MAX
from meshscope.store.metric_columns import PointColumns

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SAMPLE = (
    "time_ns, type, value, has_hist, bounds, counts, hist_sum, hist_count, help, unit,"
    " start_ns, has_exp, exp_scale, exp_offset, exp_counts, exp_zero, exp_min, exp_max"
)


def fingerprint(name: str, labels: Labels) -> int:
    """A stable 64-bit id of a series (the same in every process and across restarts)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8)
    for key, value in labels:
        digest.update(b"\xff" + key.encode() + b"\xfe" + value.encode())
    return int.from_bytes(digest.digest(), "little")


def _clamp(ns: int) -> int:
    return min(max(ns, _INT64_MIN), _INT64_MAX)


def _point(name: str, labels: Labels, row: tuple[Any, ...]) -> MetricPoint:
    (time_ns, kind, value, has_hist, bounds, counts, hist_sum, hist_count, help_, unit,
     start_ns, has_exp, scale, offset, exp_counts, zero, low, high) = row  # fmt: skip
    histogram = Histogram(tuple(bounds), tuple(counts), hist_sum, hist_count) if has_hist else None
    exp = ExpHistogram(scale, offset, tuple(exp_counts), zero, low, high) if has_exp else None
    return MetricPoint(
        name, labels, time_ns, MetricType(kind), value, histogram, help_, unit, start_ns, exp
    )


class ClickHouseMetricStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.database
        self._lock = threading.Lock()
        # Series and families this process has written: not written again.
        self._known: set[int] = set()
        self._families: set[str] = set()

    def write_points(
        self, points: Sequence[MetricPoint], seqs: Sequence[int] | None = None
    ) -> None:
        """`seqs`: the points' write sequence numbers when the caller took them (a sharded
        store, for one order over its shards); else taken here."""
        if not points:
            return
        value: Any  # one column's value; the columns have many types
        if seqs is None:
            first = self._conn.seq(len(points))
            seqs = range(first, first + len(points))
        samples: dict[str, list[Any]] = defaultdict(list)
        series: dict[str, list[Any]] = defaultdict(list)
        families: dict[str, list[Any]] = defaultdict(list)
        with self._lock:
            for p, seq in zip(points, seqs, strict=True):
                fp = fingerprint(p.name, p.labels)
                if fp not in self._known:
                    self._known.add(fp)
                    for column, value in (
                        ("name", p.name), ("fingerprint", fp),
                        ("label_keys", [k for k, _ in p.labels]),
                        ("label_values", [v for _, v in p.labels]),
                        ("seq", seq), ("rank", RANK_MAX - seq),
                    ):  # fmt: skip
                        series[column].append(value)
                if p.name not in self._families:
                    self._families.add(p.name)
                    for column, value in (
                        ("name", p.name), ("type", p.type.value), ("help", p.help),
                        ("unit", p.unit), ("seq", seq), ("rank", RANK_MAX - seq),
                    ):  # fmt: skip
                        families[column].append(value)
                h, e = p.histogram, p.exp_histogram
                for column, value in (
                    ("name", p.name), ("fingerprint", fp), ("time_ns", p.time_ns), ("seq", seq),
                    ("type", p.type.value), ("value", p.value), ("has_hist", int(h is not None)),
                    ("bounds", list(h.bounds) if h else []),
                    ("counts", list(h.counts) if h else []),
                    ("hist_sum", h.sum if h else 0.0), ("hist_count", h.count if h else 0),
                    ("help", p.help), ("unit", p.unit), ("start_ns", p.start_ns),
                    ("has_exp", int(e is not None)), ("exp_scale", e.scale if e else 0),
                    ("exp_offset", e.offset if e else 0),
                    ("exp_counts", list(e.counts) if e else []),
                    ("exp_zero", e.zero_count if e else 0), ("exp_min", e.min if e else 0.0),
                    ("exp_max", e.max if e else 0.0),
                ):  # fmt: skip
                    samples[column].append(value)
        # Series before samples: a sample is never readable without its series.
        self._conn.insert("families", families)
        self._conn.insert("series", series)
        self._conn.insert("samples", samples)

    def _matching(self, name: str, matchers: Sequence[LabelMatcher]) -> dict[int, Labels]:
        """Fingerprint -> labels of the matching series, in order of first write."""
        rows = self._conn.rows(
            f"SELECT fingerprint, any(label_keys), any(label_values), min(seq) AS first"
            f" FROM {self._db}.series WHERE name = %(name)s GROUP BY fingerprint"
            " ORDER BY first",
            {"name": name},
        )
        out: dict[int, Labels] = {}
        for fp, keys, values, _ in rows:
            labels: Labels = tuple(zip(keys, values, strict=True))
            found = dict(labels)
            if all(m.matches(found.get(m.name, "")) for m in matchers):
                out[fp] = labels
        return out

    def _where(self, series: dict[int, Labels], narrowed: bool) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        where = "name = %(name)s"
        if narrowed:
            where += " AND fingerprint IN %(fps)s"
            params["fps"] = tuple(series)
        return where, params

    def _samples(
        self, name: str, matchers: Sequence[LabelMatcher], window: str, extra: str, tail: str,
        times: dict[str, int],
    ) -> tuple[dict[int, Labels], dict[int, list[MetricPoint]]]:  # fmt: skip
        series = self._matching(name, matchers)
        found: dict[int, list[MetricPoint]] = defaultdict(list)
        if not series:
            return series, found
        where, params = self._where(series, bool(matchers))
        params.update(times, name=name)
        extra = extra.format(db=self._db, where=where, window=window)
        rows = self._conn.rows(
            f"SELECT fingerprint, {_SAMPLE} FROM {self._db}.samples"
            f" WHERE {where} AND {window}{extra} {tail}",
            params,
        )
        for row in rows:
            labels = series.get(row[0])
            if labels is not None:
                found[row[0]].append(_point(name, labels, row[1:]))
        return series, found

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        series, found = self._samples(
            name, matchers, "time_ns >= %(start)s AND time_ns <= %(end)s", "",
            "ORDER BY fingerprint, time_ns, seq",
            {"start": _clamp(start_ns), "end": _clamp(end_ns)},
        )  # fmt: skip
        return [Series(name, labels, found[fp]) for fp, labels in series.items() if fp in found]

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        # The newest time per series first (a small GROUP BY), then only the rows at it: sorting
        # every row of a long lookback (histogram arrays included) ran out of query memory.
        series, found = self._samples(
            name, matchers, "time_ns >= %(start)s AND time_ns <= %(end)s",
            " AND (fingerprint, time_ns) IN (SELECT fingerprint, max(time_ns) FROM {db}.samples"
            " WHERE {where} AND {window} GROUP BY fingerprint)",
            "ORDER BY fingerprint, seq DESC LIMIT 1 BY fingerprint",
            {"start": _clamp(at_ns - lookback_ns), "end": _clamp(at_ns)},
        )  # fmt: skip
        return [Series(name, labels, found[fp]) for fp, labels in series.items() if fp in found]

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        series = self._matching(name, matchers)
        if not series:
            return []
        where, params = self._where(series, bool(matchers))
        params.update(name=name, start=_clamp(start_ns), end=_clamp(end_ns))
        columns = self._conn.execute(
            f"SELECT fingerprint, time_ns, value FROM {self._db}.samples WHERE {where}"
            " AND has_hist = 0 AND time_ns >= %(start)s AND time_ns <= %(end)s"
            " ORDER BY fingerprint, time_ns, seq",
            params,
            columnar=True,
        )
        if not columns:
            return []
        fps = np.array(columns[0], np.uint64)
        times = np.array(columns[1], np.int64)
        values = np.array(columns[2], np.float64)
        times.flags.writeable = False
        values.flags.writeable = False
        cuts = np.flatnonzero(fps[1:] != fps[:-1]) + 1
        ranges = dict(
            zip(
                (int(fps[c]) for c in [0, *cuts]),
                zip([0, *cuts.tolist()], [*cuts.tolist(), len(fps)], strict=True),
                strict=True,
            )
        )
        out: list[SampleColumns] = []
        for fp, labels in series.items():
            if fp in ranges:
                low, high = ranges[fp]
                out.append(SampleColumns(labels, times[low:high], values[low:high]))
        return out

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        series, found = self._samples(
            name, matchers, "time_ns >= %(start)s AND time_ns <= %(end)s", " AND has_hist = 1",
            "ORDER BY fingerprint, time_ns, seq",
            {"start": _clamp(start_ns), "end": _clamp(end_ns)},
        )  # fmt: skip
        out: list[HistogramColumns] = []
        for fp, labels in series.items():
            if fp in found:
                columns = PointColumns()
                columns.extend(found[fp])
                out += columns.histograms_in(labels, start_ns, end_ns)
        return out

    def families(self) -> list[MetricFamily]:
        rows = self._conn.rows(
            f"SELECT name, argMin(type, seq), argMin(help, seq), argMin(unit, seq),"
            f" min(seq) AS first FROM {self._db}.families GROUP BY name ORDER BY first"
        )
        return [MetricFamily(name, MetricType(kind), h, u) for name, kind, h, u, _ in rows]
