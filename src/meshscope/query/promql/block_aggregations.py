"""Aggregation operators over Blocks: sum, avg, min, max, count, group, stddev, stdvar for
every step at once (members added in row order, as `aggregations.py` adds them per step);
topk, bottomk, quantile and count_values step by step with `aggregations.py`."""

from __future__ import annotations

import numpy as np

from meshscope.model.metrics import Labels
from meshscope.query.promql import aggregations
from meshscope.query.promql.block import Block, from_vectors, to_vectors

AGGREGATIONS = aggregations.AGGREGATIONS
VECTORISED = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"}


def aggregate(
    op: str, block: Block, grouping: list[str], without: bool, params: list[float | str | None]
) -> Block:
    if op not in VECTORISED:
        vectors = to_vectors(block)
        return from_vectors(
            [
                aggregations.aggregate(op, vector, grouping, without, param)
                for vector, param in zip(vectors, params, strict=True)
            ]
        )
    keys: dict[Labels, int] = {}
    cache: dict[Labels, int] = {}
    members: list[int] = []
    for labels in block.labels:
        group = cache.get(labels)
        if group is None:
            key = aggregations.group_key(labels, grouping, without)
            group = cache[labels] = keys.setdefault(key, len(keys))
        members.append(group)
    shape = (len(keys), block.values.shape[1])
    count = np.zeros(shape, np.int64)
    # value: the sum / min / max, or the running sum of squares (stddev, stdvar)
    value = np.full(shape, -0.0)
    mean = np.zeros(shape)
    with np.errstate(all="ignore"):
        for row, group in enumerate(members):
            here = block.present[row]
            v = block.values[row]
            seen = count[group]
            first = here & (seen == 0)
            later = here & (seen > 0)
            n = seen + here
            if op == "sum":
                value[group] += np.where(here, v, -0.0)
            elif op in ("max", "min"):
                acc = value[group]
                better = (acc < v) if op == "max" else (acc > v)
                take = first | (later & (better | np.isnan(acc)))
                value[group] = np.where(take, v, acc)
            elif op == "avg":
                m = mean[group]
                infinite = np.isinf(m)
                skip = infinite & (
                    (np.isinf(v) & ((m > 0) == (v > 0))) | (~np.isinf(v) & ~np.isnan(v))
                )
                updated = m + (v / n - m / n)
                mean[group] = np.where(first, v, np.where(later & ~skip, updated, m))
            elif op in ("stddev", "stdvar"):
                m = mean[group]
                delta = v - m
                new_mean = m + delta / n
                mean[group] = np.where(first, v, np.where(later, new_mean, m))
                aux = value[group] + delta * (v - new_mean)
                value[group] = np.where(first, 0.0, np.where(later, aux, value[group]))
            count[group] = n
        present = count > 0
        if op == "avg":
            out = mean
        elif op == "count":
            out = count.astype(np.float64)
        elif op == "group":
            out = np.ones(shape)
        elif op == "stdvar":
            out = value / count
        elif op == "stddev":
            out = np.sqrt(value / count)
        else:
            out = value
    return Block(list(keys), out, present)
