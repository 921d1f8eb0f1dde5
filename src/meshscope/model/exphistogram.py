"""Base-2 exponential histograms (OpenTelemetry's ExponentialHistogram, positive values only):
the accurate, mergeable duration distribution kept next to the explicit buckets (ADR 0010).

At scale s the buckets grow by base = 2**(2**-s); bucket i holds the values in
(base**i, base**(i+1)]. Reporting a quantile as its bucket's geometric midpoint, clamped to the
observed min and max, is off by at most sqrt(base) - 1 relative to the exact value (2.19 % at
scale 4, 4.4 % at scale 3). Histograms of different scales merge at the coarser one: a bucket
at scale s is the union of buckets 2i and 2i+1 at scale s+1 (`downscale`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from operator import sub

MAX_SCALE = 4
"""Buckets 4.4 % wide: every quantile within 2.19 %."""
MAX_BUCKETS = 320
"""Populated index span kept per series before downscaling: 2**20 (about 1e6) between the
smallest and the largest value at scale 4, e.g. 10 µs to 10 s."""


def index_factor(scale: int) -> float:
    """Multiply ln(value) by this and take ceil(...) - 1 for the bucket index at `scale`."""
    return 2.0**scale / math.log(2.0)


def relative_error(scale: int) -> float:
    """The bound on a quantile's relative error at `scale` (geometric midpoint of a bucket)."""
    return float(2.0 ** (2.0 ** -(scale + 1)) - 1.0)


@dataclass(frozen=True, slots=True)
class ExpHistogram:
    """Cumulative counts per bucket: `counts[k]` is bucket `offset + k` at `scale`; values <= 0
    are in `zero_count`. `min`/`max` are of every value ever recorded (for a difference of two
    snapshots they still bound the values, and make a constant distribution exact)."""

    scale: int
    offset: int
    counts: tuple[int, ...]
    zero_count: int
    min: float
    max: float

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.counts)

    def buckets(self) -> dict[int, int]:
        return {self.offset + k: c for k, c in enumerate(self.counts) if c}


def make(
    scale: int, buckets: dict[int, int], zero_count: int, low: float, high: float
) -> ExpHistogram:
    """An ExpHistogram from sparse `buckets` (index -> count)."""
    used = [i for i, c in buckets.items() if c]
    if not used:
        return ExpHistogram(scale, 0, (), zero_count, low, high)
    first, last = min(used), max(used)
    dense = [0] * (last - first + 1)
    for index in used:
        dense[index - first] = buckets[index]
    return ExpHistogram(scale, first, tuple(dense), zero_count, low, high)


def downscale(buckets: dict[int, int], by: int) -> dict[int, int]:
    """The same counts `by` scales coarser (index >> by merges 2**by neighbours)."""
    if by <= 0:
        return buckets
    out: dict[int, int] = {}
    for index, count in buckets.items():
        key = index >> by
        out[key] = out.get(key, 0) + count
    return out


def fit(scale: int, buckets: dict[int, int]) -> tuple[int, dict[int, int]]:
    """Downscale until the populated index span fits MAX_BUCKETS."""
    while buckets and max(buckets) - min(buckets) + 1 > MAX_BUCKETS:
        scale -= 1
        buckets = downscale(buckets, 1)
    return scale, buckets


def merge(histograms: Iterable[ExpHistogram]) -> ExpHistogram | None:
    """The sum of `histograms` at the coarsest scale among them; None when there are none."""
    hists = list(histograms)
    if not hists:
        return None
    if len(hists) == 1 and _canonical(hists[0]):
        return hists[0]  # what the general path makes of it (one series per edge or service)
    scale = min(h.scale for h in hists)
    total: dict[int, int] = {}
    for hist in hists:
        for index, count in downscale(hist.buckets(), hist.scale - scale).items():
            total[index] = total.get(index, 0) + count
    scale, total = fit(scale, total)
    return make(
        scale,
        total,
        sum(h.zero_count for h in hists),
        min(h.min for h in hists),
        max(h.max for h in hists),
    )


def difference(base: ExpHistogram, last: ExpHistogram) -> ExpHistogram | None:
    """`last - base` of one cumulative series (at the coarser scale); None when some bucket
    went down, i.e. the series was reset in between."""
    if base.scale == last.scale:
        return _same_scale_difference(base, last)
    scale = min(base.scale, last.scale)
    now = downscale(last.buckets(), last.scale - scale)
    before = downscale(base.buckets(), base.scale - scale)
    grown = {i: now.get(i, 0) - before.get(i, 0) for i in now.keys() | before.keys()}
    zero = last.zero_count - base.zero_count
    if zero < 0 or any(c < 0 for c in grown.values()):
        return None
    return make(scale, grown, zero, last.min, last.max)


def _same_scale_difference(base: ExpHistogram, last: ExpHistogram) -> ExpHistogram | None:
    """`difference` of two snapshots at one scale (a series' usual case) on the dense counts,
    without going through sparse dicts; the same result."""
    zero = last.zero_count - base.zero_count
    if zero < 0:
        return None
    if not base.counts:
        first, grown = last.offset, list(last.counts)
    else:
        spans = [(h.offset, h.offset + len(h.counts)) for h in (base, last) if h.counts]
        first, end = min(lo for lo, _ in spans), max(hi for _, hi in spans)
        now, before = _padded(last, first, end), _padded(base, first, end)
        grown = list(map(sub, now, before))
        if min(grown) < 0:
            return None
    low, high = 0, len(grown)
    while low < high and not grown[low]:
        low += 1
    while high > low and not grown[high - 1]:
        high -= 1
    if low == high:
        return ExpHistogram(last.scale, 0, (), zero, last.min, last.max)
    return ExpHistogram(last.scale, first + low, tuple(grown[low:high]), zero, last.min, last.max)


def _padded(hist: ExpHistogram, first: int, end: int) -> list[int]:
    """`hist`'s counts for the bucket indexes first..end-1 (zeros outside its own)."""
    if not hist.counts:
        return [0] * (end - first)
    after = end - hist.offset - len(hist.counts)
    return [*[0] * (hist.offset - first), *hist.counts, *[0] * after]


def _canonical(hist: ExpHistogram) -> bool:
    """Whether `hist` is as `make` would build it: no zero counts at either end, an empty one
    at offset 0, and within MAX_BUCKETS."""
    if not hist.counts:
        return hist.offset == 0
    return bool(hist.counts[0] and hist.counts[-1]) and len(hist.counts) <= MAX_BUCKETS


def quantile(q: float, hist: ExpHistogram | None) -> float | None:
    """The q-quantile (the value of rank ceil(q * count)): its bucket's geometric midpoint,
    clamped to [min, max]; None when empty."""
    if hist is None:
        return None
    total = hist.count
    if total == 0:
        return None
    rank = max(1.0, q * total)
    if hist.zero_count >= rank:
        return 0.0
    # The first bucket whose cumulative count (the zeros first) reaches the rank.
    cumulative = list(accumulate(hist.counts, initial=hist.zero_count))
    k = bisect_left(cumulative, rank, lo=1) - 1
    if k < len(hist.counts):
        base: float = 2.0 ** (2.0**-hist.scale)
        middle: float = base ** (hist.offset + k + 0.5)
        return min(max(middle, hist.min), hist.max)
    return hist.max
