"""`histogram_quantile` over a Block: each group's buckets as a (buckets, steps) array, the
quantile found for all steps at once with the float operations of `histograms.py`. Steps
where a group's buckets are not all present, or hold NaN, take `histograms.py` one by one."""

from __future__ import annotations

import math

import numpy as np

from meshscope.model.metrics import Labels
from meshscope.query.promql.block import Block, Floats, Mask
from meshscope.query.promql.histograms import bucket_quantile
from meshscope.query.promql.values import NAME, get_label, without_labels


def histogram_quantile(qs: Floats, block: Block) -> Block:
    groups: dict[Labels, list[tuple[float, int]]] = {}
    for row, labels in enumerate(block.labels):
        try:
            bound = float(get_label(labels, "le"))
        except ValueError:
            continue
        groups.setdefault(without_labels(labels, ["le", NAME]), []).append((bound, row))
    steps = block.values.shape[1]
    values = np.zeros((len(groups), steps))
    present = np.zeros((len(groups), steps), np.bool_)
    for out, members in enumerate(groups.values()):
        members.sort(key=lambda m: m[0])
        rows = [row for _, row in members]
        here = block.present[rows]
        present[out] = here.any(axis=0)
        counts = block.values[rows]
        regular: Mask = np.asarray(here.all(axis=0) & ~np.isnan(counts).any(axis=0))
        values[out] = _quantiles(qs, [b for b, _ in members], counts, regular)
        for step in np.flatnonzero(present[out] & ~regular).tolist():
            buckets = [
                (bound, float(counts[i, step]))
                for i, (bound, _) in enumerate(members)
                if here[i, step]
            ]
            values[out, step] = bucket_quantile(float(qs[step]), buckets)
    return Block(list(groups), values, present)


def _quantiles(qs: Floats, bounds: list[float], counts: Floats, regular: Mask) -> Floats:
    """bucket_quantile for the steps where every bucket is present and no count is NaN."""
    steps = counts.shape[1]
    out = np.full(steps, math.nan)
    usable = math.isinf(bounds[-1]) and bounds[-1] > 0
    if regular.any() and usable:
        out = np.where(regular, _interpolate(qs, bounds, counts), out)
    out = np.where(qs > 1, math.inf, out)
    out = np.where(qs < 0, -math.inf, out)
    return np.where(np.isnan(qs), math.nan, out)


def _interpolate(qs: Floats, bounds: list[float], counts: Floats) -> Floats:
    steps = counts.shape[1]
    # Coalesce equal bounds (adding their counts in order), then make counts monotonic.
    merged_bounds: list[float] = []
    merged: list[Floats] = []
    for le, row in zip(bounds, counts, strict=True):
        if merged_bounds and merged_bounds[-1] == le:
            merged[-1] = merged[-1] + row
        else:
            merged_bounds.append(le)
            merged.append(row)
    cum = np.maximum.accumulate(np.stack(merged), axis=0)
    k = len(merged_bounds)
    bound = np.array(merged_bounds)
    if k < 2:
        return np.full(steps, math.nan)
    with np.errstate(all="ignore"):
        observations = cum[-1]
        rank = qs * observations
        b = (cum[:-1] < rank[None, :]).sum(axis=0)
        columns = np.arange(steps)
        end = bound[np.minimum(b, k - 1)]
        count = cum[np.minimum(b, k - 1), columns]
        below = np.maximum(b - 1, 0)
        start = np.where(b > 0, bound[below], 0.0)
        count = np.where(b > 0, count - cum[below, columns], count)
        rank = np.where(b > 0, rank - cum[below, columns], rank)
        result = start + (end - start) * (rank / count)
        result = np.where(b == k - 1, bound[k - 2], result)
        result = np.where((b == 0) & (bound[0] <= 0), bound[0], result)
        result = np.where(observations == 0, math.nan, result)
    return np.asarray(result, np.float64)
