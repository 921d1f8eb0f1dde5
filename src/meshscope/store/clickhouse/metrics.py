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
import numpy.typing as npt

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
from meshscope.store.clickhouse.schema import (
    DAY_NS,
    LATEST,
    RANK_MAX,
    SAMPLE_COLUMNS,
    day_of,
    day_range,
)
from meshscope.store.metric_columns import frozen

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SAMPLE = ", ".join(c for c in SAMPLE_COLUMNS if c not in ("name", "fingerprint", "seq", "day"))
"""A sample row's columns as `_point` takes them (time first)."""


def fingerprint(name: str, labels: Labels) -> int:
    """A stable 64-bit id of a series (the same in every process and across restarts)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8)
    for key, value in labels:
        digest.update(b"\xff" + key.encode() + b"\xfe" + value.encode())
    return int.from_bytes(digest.digest(), "little")


def _clamp(ns: int) -> int:
    return min(max(ns, _INT64_MIN), _INT64_MAX)


def _window(start_ns: int, end_ns: int) -> str:
    """Samples in [%(start)s, %(end)s], and only the partitions of those days."""
    return "time_ns >= %(start)s AND time_ns <= %(end)s" + day_range(start_ns, end_ns)


def version(time_ns: int) -> int:
    """`samples_latest.version` of a sample (schema.VERSION_SQL): its time as unsigned."""
    return time_ns + 2**63


def _newest_per_day(
    fps: Sequence[int], points: Sequence[MetricPoint], seqs: Sequence[int]
) -> list[int]:
    """The indexes of each series' newest point (time, then write) of each UTC day: the rows
    `samples_latest` gets (its merges keep the newest per day; this only sends fewer)."""
    newest: dict[tuple[int, str | int], int] = {}
    for i, (fp, p, seq) in enumerate(zip(fps, points, seqs, strict=True)):
        key = (fp, day_of(p.time_ns) or p.time_ns)  # outside 1970-2106: one row per time
        kept = newest.get(key)
        if kept is None or (p.time_ns, seq) >= (points[kept].time_ns, seqs[kept]):
            newest[key] = i
    return sorted(newest.values())


def _grouped(
    known: npt.NDArray[np.uint64],
    fps: npt.NDArray[np.uint64],
    times: npt.NDArray[np.int64],
    seqs: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The rows of the series `known` (fingerprints, in their order) grouped by series in
    that order, each in time order, equal times in write order: (the row indices in that
    order, the number of rows per series). Rows of other series (written since `known` was
    read) are left out. The rows arrive as a few runs already sorted (one per part and
    block), so one stable sort (timsort) of series index * time span + time merges them."""
    by_fp = np.argsort(known)
    at = np.minimum(np.searchsorted(known[by_fp], fps), len(known) - 1)
    rows = np.flatnonzero(known[by_fp][at] == fps)
    index = by_fp[at[rows]].astype(np.int64)
    times = times[rows]
    low = int(times.min()) if len(times) else 0
    span = (int(times.max()) - low + 1) if len(times) else 1
    order = None
    if len(known) * span < 2**63:
        key = index * span + (times - low)
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        if bool((ordered[1:] == ordered[:-1]).any()):
            order = None  # equal times: in write order, below
    if order is None:  # equal times, or a key past int64
        order = np.lexsort((seqs[rows], times, index))
    return rows[order], np.bincount(index[order], minlength=len(known))


def _bounds(text: str) -> tuple[float, ...]:
    """An Array(Float64)'s `toString` ("[0.1,1,inf]") as floats."""
    inner = text[1:-1]
    return tuple(float(x) for x in inner.split(",")) if inner else ()


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
        fps = [fingerprint(p.name, p.labels) for p in points]
        with self._lock:
            for p, seq, fp in zip(points, seqs, fps, strict=True):
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
        kept = _newest_per_day(fps, points, seqs)
        latest = {column: [values[i] for i in kept] for column, values in samples.items()}
        latest["version"] = [version(points[i].time_ns) for i in kept]
        # Series before samples: a sample is never readable without its series. Samples
        # before `samples_latest`: if that insert fails, the write fails (the client's retry
        # or the next flush writes it again) and `latest` answers the day's previous sample
        # until then; it never answers one that `samples` does not have.
        self._conn.insert("families", families)
        self._conn.insert("series", series)
        self._conn.insert("samples", samples)
        self._conn.insert(LATEST, latest)

    def _matching(self, name: str, matchers: Sequence[LabelMatcher]) -> dict[int, Labels]:
        """Fingerprint -> labels of the matching series, in order of first write."""
        return self._matching_of([name], matchers)[name]

    def _matching_of(
        self, names: Sequence[str], matchers: Sequence[LabelMatcher]
    ) -> dict[str, dict[int, Labels]]:
        """`_matching` of each name, in one query."""
        rows = self._conn.rows(
            f"SELECT name, fingerprint, any(label_keys), any(label_values), min(seq) AS first"
            f" FROM {self._db}.series WHERE name IN %(names)s GROUP BY name, fingerprint"
            " ORDER BY first",
            {"names": tuple(names)},
        )
        out: dict[str, dict[int, Labels]] = {name: {} for name in names}
        for name, fp, keys, values, _ in rows:
            labels: Labels = tuple(zip(keys, values, strict=True))
            found = dict(labels)
            if all(m.matches(found.get(m.name, "")) for m in matchers):
                out[name][fp] = labels
        return out

    @staticmethod
    def _where(
        names: Sequence[str], series: dict[int, Labels], narrowed: bool, start_ns: int, end_ns: int
    ) -> tuple[str, dict[str, Any]]:
        """The condition on the names (and the fingerprints, when `narrowed`) and the
        parameters of it and of a window [%(start)s, %(end)s]."""
        params: dict[str, Any] = {"start": _clamp(start_ns), "end": _clamp(end_ns)}
        if len(names) == 1:
            where, params["name"] = "name = %(name)s", names[0]
        else:
            where, params["names"] = "name IN %(names)s", tuple(names)
        if narrowed:
            where += " AND fingerprint IN %(fps)s"
            params["fps"] = tuple(series)
        return where, params

    def _samples(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> tuple[dict[int, Labels], dict[int, list[MetricPoint]]]:
        """The samples of the matching series in [start_ns, end_ns], in time order."""
        series = self._matching(name, matchers)
        found: dict[int, list[MetricPoint]] = defaultdict(list)
        if not series:
            return series, found
        where, params = self._where([name], series, bool(matchers), start_ns, end_ns)
        # Every condition in PREWHERE: they read only thin columns, and the histogram
        # arrays are then read for the rows that pass (not, as on a condition of `day`
        # alone, for every row of the day).
        rows = self._conn.rows(
            f"SELECT fingerprint, {_SAMPLE} FROM {self._db}.samples PREWHERE {where}"
            f" AND {_window(start_ns, end_ns)} ORDER BY fingerprint, time_ns, seq",
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
        series, found = self._samples(name, matchers, start_ns, end_ns)
        return [Series(name, labels, found[fp]) for fp, labels in series.items() if fp in found]

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        return self.latest_of([name], matchers, at_ns, lookback_ns)[name]

    def latest_of(
        self, names: Sequence[str], matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> dict[str, list[Series]]:
        """`latest` of every name in three queries (series, newest, later), not three per
        name. Each series' newest sample of each day is in `samples_latest`: the newest of
        them at or before `at_ns` answers, unless the series has samples later on `at_ns`'s
        own day; only those series' samples of that day are searched (as `_newest` does)."""
        names = list(dict.fromkeys(names))
        start, day = at_ns - lookback_ns, day_of(at_ns)
        narrowed = bool(matchers)
        series = self._matching_of(names, matchers) if names else {}
        every = {fp: labels for name in names for fp, labels in series[name].items()}
        if not every:
            return {name: [] for name in names}
        if day is None:  # `day` is not the time's own day out there: search every sample
            newest = self._newest(names, every, narrowed, start, at_ns)
            return {name: self._found(name, series[name], newest) for name in names}
        where, params = self._where(names, every, narrowed, start, at_ns)
        params["day"] = day
        rows = self._conn.rows(
            f"SELECT fingerprint, {_SAMPLE} FROM {self._db}.{LATEST} WHERE {where}"
            " AND time_ns >= %(start)s AND time_ns <= %(end)s"
            " ORDER BY fingerprint, time_ns DESC, seq DESC LIMIT 1 BY fingerprint",
            params,
        )
        later = self._conn.rows(
            f"SELECT DISTINCT fingerprint FROM {self._db}.{LATEST} WHERE {where}"
            " AND day = %(day)s AND time_ns > %(end)s",
            params,
        )
        newest = {row[0]: row[1:] for row in rows}
        within = {fp: every[fp] for (fp,) in later if fp in every}
        if within:
            day_start = at_ns - at_ns % DAY_NS
            found = self._newest(names, within, True, max(start, day_start), at_ns)
            for fp, row in found.items():  # row[0] is the time
                if fp not in newest or row[0] >= newest[fp][0]:
                    newest[fp] = row
        return {name: self._found(name, series[name], newest) for name in names}

    def _newest(
        self,
        names: Sequence[str],
        series: dict[int, Labels],
        narrowed: bool,
        start_ns: int,
        end_ns: int,
    ) -> dict[int, tuple[Any, ...]]:
        """Each series' newest row in `samples` in [start_ns, end_ns] (by fingerprint when
        `narrowed`). The newest time per series first (a small GROUP BY), then only the rows
        at it: sorting every row of a long lookback (histogram arrays included) ran out of
        query memory."""
        if not series:
            return {}
        where, params = self._where(names, series, narrowed, start_ns, end_ns)
        window = _window(start_ns, end_ns)
        # PREWHERE on the newest rows: on a condition of `day` (its smallest column) the
        # server would read every row's histogram arrays.
        rows = self._conn.rows(
            f"SELECT fingerprint, {_SAMPLE} FROM {self._db}.samples"
            f" PREWHERE (fingerprint, time_ns) IN (SELECT fingerprint, max(time_ns)"
            f" FROM {self._db}.samples WHERE {where} AND {window} GROUP BY fingerprint)"
            f" WHERE {where} AND {window} ORDER BY fingerprint, seq DESC LIMIT 1 BY fingerprint",
            params,
        )
        return {row[0]: row[1:] for row in rows if row[0] in series}

    @staticmethod
    def _found(
        name: str, series: dict[int, Labels], rows: dict[int, tuple[Any, ...]]
    ) -> list[Series]:
        return [
            Series(name, labels, [_point(name, labels, rows[fp])])
            for fp, labels in series.items()
            if fp in rows
        ]

    def _arrays(
        self,
        name: str,
        matchers: Sequence[LabelMatcher],
        start_ns: int,
        end_ns: int,
        columns: str,
        condition: str,
    ) -> tuple[dict[int, Labels], npt.NDArray[np.intp], list[int], list[Any]]:
        """The matching series, and the columns `time_ns, {columns}` of their samples in
        [start_ns, end_ns] where `condition` holds, as NumPy arrays, with the row order that
        groups them by series, each in time then write order, and the rows per series (as
        `_grouped`). Read unsorted: the server's sort of millions of rows (one thread on
        18.16) and Python tuples cost ~6x what the arrays and `_grouped` cost here. Every
        condition is in PREWHERE, as in `_samples`: the other columns are read only for the
        rows that pass. No columns when nothing matches."""
        series = self._matching(name, matchers)
        if not series:
            return series, np.zeros(0, np.intp), [], []
        where, params = self._where([name], series, bool(matchers), start_ns, end_ns)
        found = self._conn.arrays(
            f"SELECT fingerprint, seq, time_ns, {columns} FROM {self._db}.samples"
            f" PREWHERE {where} AND {_window(start_ns, end_ns)} AND {condition}",
            params,
        )
        if not found:
            return series, np.zeros(0, np.intp), [], []
        fps, seqs, times, *rest = found
        rows, counts = _grouped(np.fromiter(series, np.uint64, len(series)), fps, times, seqs)
        return series, rows, counts.tolist(), [times, *rest]

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        series, rows, counts, columns = self._arrays(
            name, matchers, start_ns, end_ns, "value", "has_hist = 0"
        )
        if not columns:
            return []
        times, values = (frozen(column[rows]) for column in columns)
        out: list[SampleColumns] = []
        low = 0
        for labels, count in zip(series.values(), counts, strict=True):
            if count:
                out.append(
                    SampleColumns(labels, times[low : low + count], values[low : low + count])
                )
                low += count
        return out

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        # The bounds as text (exact: the server writes the shortest round-trip form): one
        # string per row decodes ~6x faster than a Python list of floats.
        series, rows, per_series, columns = self._arrays(
            name,
            matchers,
            start_ns,
            end_ns,
            "toString(bounds), counts, hist_sum, hist_count",
            "has_hist = 1",
        )
        if not columns:
            return []
        times, bounds_text, counts, sums, totals = columns
        parsed: dict[str, tuple[float, ...]] = {}
        out: list[HistogramColumns] = []
        low = 0
        for labels, count in zip(series.values(), per_series, strict=True):
            mine, low = rows[low : low + count], low + count
            keys = bounds_text[mine]
            for key in dict.fromkeys(keys.tolist()):  # groups in order of their first point
                at = mine if (keys == key).all() else mine[keys == key]
                if key not in parsed:
                    parsed[key] = _bounds(key)
                out.append(
                    HistogramColumns(
                        labels,
                        parsed[key],
                        frozen(times[at]),
                        frozen(np.array([counts[i] for i in at.tolist()], np.uint64)),
                        frozen(sums[at]),
                        frozen(totals[at].astype(np.uint64)),
                    )
                )
        return out

    def families(self) -> list[MetricFamily]:
        rows = self._conn.rows(
            f"SELECT name, argMin(type, seq), argMin(help, seq), argMin(unit, seq),"
            f" min(seq) AS first FROM {self._db}.families GROUP BY name ORDER BY first"
        )
        return [MetricFamily(name, MetricType(kind), h, u) for name, kind, h, u, _ in rows]
