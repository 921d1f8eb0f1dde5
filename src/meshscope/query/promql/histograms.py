"""`histogram_quantile` over classic `le` buckets (Prometheus's bucketQuantile)."""

from __future__ import annotations

import math
from bisect import bisect_left

from meshscope.model.metrics import Labels
from meshscope.query.promql.values import NAME, get_label, without_labels

Element = tuple[Labels, float]


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The q-quantile from (upper bound, cumulative count) pairs."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if not math.isinf(buckets[-1][0]) or buckets[-1][0] < 0:
        return math.nan
    coalesced: list[list[float]] = []
    for bound, count in buckets:
        if coalesced and coalesced[-1][0] == bound:
            coalesced[-1][1] += count
        else:
            coalesced.append([bound, count])
    highest = -math.inf
    for bucket in coalesced:  # ensure monotonic counts
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(coalesced) < 2:
        return math.nan
    observations = coalesced[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    counts = [c for _, c in coalesced[:-1]]
    b = bisect_left(counts, rank)
    if b == len(coalesced) - 1:
        return coalesced[-2][0]
    if b == 0 and coalesced[0][0] <= 0:
        return coalesced[0][0]
    start = 0.0
    end, count = coalesced[b]
    if b > 0:
        start = coalesced[b - 1][0]
        count -= coalesced[b - 1][1]
        rank -= coalesced[b - 1][1]
    return start + (end - start) * (rank / count)


def histogram_quantile(q: float, vector: list[Element]) -> list[Element]:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, value in vector:
        try:
            bound = float(get_label(labels, "le"))
        except ValueError:
            continue
        key = without_labels(labels, ["le", NAME])
        groups.setdefault(key, []).append((bound, value))
    return [(key, bucket_quantile(q, buckets)) for key, buckets in groups.items()]
