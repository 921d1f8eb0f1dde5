"""Range-vector functions (`rate(x[5m])`, `*_over_time`, ...) for every step at once.

All series are concatenated; each (series, step) window is a [first, last] index pair found
by binary search, and the functions are array expressions over those pairs, doing the same
float operations in the same order as `functions.py` (Prometheus 2.x `functions.go`).
Functions without an array form here run `functions.py` on each window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from meshscope.model.metrics import Labels
from meshscope.query import budget
from meshscope.query.promql import functions as fn
from meshscope.query.promql.block import ArrayRanges, Block, Floats, Times
from meshscope.query.promql.values import STALE_NAN_BITS, drop_name

Ints = np.ndarray


@dataclass(slots=True)
class Windows:
    """Every window of every series: `first`/`last` index the concatenated samples, `count`
    is the number of samples in the window (0: empty, then first/last are meaningless)."""

    ts: Times
    vs: Floats
    starts: Ints  # where each series begins in ts/vs
    first: Ints  # (series, steps)
    last: Ints
    count: Ints


def windows(ranges: ArrayRanges) -> Windows:
    ends = ranges.ends
    parts_t: list[Times] = []
    parts_v: list[Floats] = []
    firsts: list[Ints] = []
    counts: list[Ints] = []
    offset = 0
    starts: list[int] = []
    for series in ranges.series:
        ts, vs = series.ts, series.vs
        stale = vs.view(np.uint64) == STALE_NAN_BITS
        if stale.any():
            ts, vs = ts[~stale], vs[~stale]
        low = np.searchsorted(ts, ends - ranges.range_ms, "left")
        high = np.searchsorted(ts, ends, "right")
        starts.append(offset)
        firsts.append(low + offset)
        counts.append(high - low)
        parts_t.append(ts)
        parts_v.append(vs)
        offset += len(ts)
    steps = len(ends)
    if not ranges.series:
        empty = np.zeros((0, steps), np.int64)
        return Windows(
            np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), empty, empty, empty
        )
    first = np.stack(firsts)
    count = np.stack(counts)
    return Windows(
        np.concatenate(parts_t),
        np.concatenate(parts_v),
        np.array(starts, np.int64),
        first,
        first + count - 1,
        count,
    )


def _safe(index: Ints, size: int) -> Ints:
    clipped: Ints = np.clip(index, 0, max(size - 1, 0))
    return clipped


def extrapolated(w: Windows, ranges: ArrayRanges, counter: bool, rate: bool) -> Block:
    """rate / increase / delta with Prometheus's extrapolation and counter resets."""
    ok = w.count >= 2
    size = len(w.ts)
    first, last = _safe(w.first, size), _safe(w.last, size)
    t0, t1 = w.ts[first], w.ts[last]
    v0, v1 = w.vs[first], w.vs[last]
    result = v1 - v0
    if counter:
        result = _add_resets(w, result, first, last)
    window_start = ranges.ends - ranges.range_ms
    with np.errstate(divide="ignore", invalid="ignore"):
        to_start = (t0 - window_start) / 1000
        to_end = (ranges.ends - t1) / 1000
        sampled = (t1 - t0) / 1000
        average = sampled / np.maximum(w.count - 1, 1)
        if counter:
            to_zero = sampled * (v0 / result)
            use_zero = (result > 0) & (v0 >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        threshold = average * 1.1
        interval = sampled + np.where(to_start < threshold, to_start, average / 2)
        interval = interval + np.where(to_end < threshold, to_end, average / 2)
        factor = interval / sampled
        if rate:
            factor = factor / (ranges.range_ms / 1000)
        out = result * factor
    return Block(_labels(ranges, False), out, ok)


def _add_resets(w: Windows, result: Floats, first: Ints, last: Ints) -> Floats:
    """result + the value before each counter reset in the window, added in time order."""
    drops = np.flatnonzero(w.vs[1:] < w.vs[:-1]) + 1
    drops = drops[~np.isin(drops, w.starts)]  # a series' first sample resets nothing
    if len(drops) == 0:
        return result
    before = w.vs[drops - 1]
    low = np.searchsorted(drops, first, "right")
    number = np.searchsorted(drops, last, "right") - low
    number = np.where(w.count >= 2, number, 0)
    for j in range(int(number.max(initial=0))):
        take = number > j
        added = before[np.minimum(low + j, len(drops) - 1)]
        result = np.where(take, result + added, result)
    return result


def instant(w: Windows, ranges: ArrayRanges, rate: bool) -> Block:
    """irate / idelta: from the last two samples of each window."""
    size = len(w.ts)
    last = _safe(w.last, size)
    previous = _safe(w.last - 1, size)
    v1, v0 = w.vs[last], w.vs[previous]
    interval = w.ts[last] - w.ts[previous]
    ok = (w.count >= 2) & (interval != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        divided = np.where(v1 < v0, v1, v1 - v0) / (interval / 1000)
        result = divided if rate else v1 - v0
    return Block(_labels(ranges, False), result, ok)


def over_time(w: Windows, ranges: ArrayRanges, name: str) -> Block | None:
    """The `*_over_time` functions, changes and resets; None for those without an array form."""
    ok = w.count > 0
    size = len(w.ts)
    if name == "count_over_time":
        return Block(_labels(ranges, False), w.count.astype(np.float64), ok)
    if name == "present_over_time":
        return Block(_labels(ranges, False), np.ones(w.count.shape), ok)
    if name == "last_over_time":
        return Block(_labels(ranges, True), w.vs[_safe(w.last, size)], ok)
    if name in ("changes", "resets"):
        a, b = w.vs[:-1], w.vs[1:]
        hit = (a != b) & ~(np.isnan(a) & np.isnan(b)) if name == "changes" else b < a
        running = np.concatenate(([0], np.cumsum(hit)))  # running[i]: hits in pairs before i
        counts = running[_safe(w.last, size)] - running[_safe(w.first, size)]
        return Block(_labels(ranges, False), counts.astype(np.float64), ok)
    reducers = {
        "sum_over_time": np.add,
        "avg_over_time": np.add,
        "min_over_time": np.fmin,
        "max_over_time": np.fmax,
    }
    reducer = reducers.get(name)
    if reducer is None:
        return None
    reduced = _reduce(reducer, w, ok)
    if name in ("sum_over_time", "avg_over_time"):
        reduced = _exact_where_needed(w, ok, reduced, name)
    return Block(_labels(ranges, False), reduced, ok)


def _reduce(reducer: np.ufunc, w: Windows, ok: Ints) -> Floats:
    out = np.full(w.count.shape, np.nan)
    if not ok.any():
        return out
    first = w.first[ok]
    pairs = np.empty(2 * len(first), np.int64)
    pairs[0::2] = first
    pairs[1::2] = w.last[ok] + 1
    padded = np.concatenate((w.vs, [0.0]))
    with np.errstate(all="ignore"):
        out[ok] = reducer.reduceat(padded, pairs)[0::2]
    return out


def _exact_where_needed(w: Windows, ok: Ints, sums: Floats, name: str) -> Floats:
    """Sums are added in order; windows where that can lose precision (overflow, heavy
    cancellation) are computed again with `functions.py`."""
    magnitude = _reduce(np.add, Windows(w.ts, np.abs(w.vs), w.starts, w.first, w.last, w.count), ok)
    with np.errstate(invalid="ignore", over="ignore"):
        risky = ok & (~np.isfinite(sums) | (magnitude > 1e6 * np.abs(sums)))
        out = sums / w.count if name == "avg_over_time" else sums.copy()
    func = fn.RANGE_FUNCTIONS[name]
    for row, step in zip(*np.nonzero(risky), strict=True):
        low, high = int(w.first[row, step]), int(w.last[row, step]) + 1
        value = func(w.ts[low:high].tolist(), w.vs[low:high].tolist(), _NO_WINDOW)
        out[row, step] = math.nan if value is None else value
    return out


_NO_WINDOW = fn.Window(0, 0, 1, 0)
_CHECK_EVERY = 1024
"""Windows `per_window` computes between two looks at the query's budget (~1-10 ms)."""


def per_window(
    w: Windows, ranges: ArrayRanges, name: str, steps: Times, params: list[Floats]
) -> Block:
    """Any range function, one window at a time (`functions.py`)."""
    func = fn.RANGE_FUNCTIONS[name]
    values = np.zeros(w.count.shape)
    present = np.zeros(w.count.shape, np.bool_)
    ends = ranges.ends.tolist()
    for done, (row, step) in enumerate(zip(*np.nonzero(w.count > 0), strict=True)):
        if not done % _CHECK_EVERY:  # a deadline or a client gone stops the loop
            budget.check()
        low, high = int(w.first[row, step]), int(w.last[row, step]) + 1
        end = ends[step]
        window = fn.Window(
            end - ranges.range_ms,
            end,
            ranges.range_ms,
            int(steps[step]),
            tuple(float(p[step]) for p in params),
        )
        value = func(w.ts[low:high].tolist(), w.vs[low:high].tolist(), window)
        if value is not None:
            values[row, step] = value
            present[row, step] = True
    return Block(_labels(ranges, name in fn.KEEPS_NAME), values, present)


def _labels(ranges: ArrayRanges, keep_name: bool) -> list[Labels]:
    if keep_name:
        return [s.labels for s in ranges.series]
    return [drop_name(s.labels) for s in ranges.series]
