"""Values of the vectorised range evaluator: an instant vector at every step as arrays.

A `Block` has one row per series: `values[i, k]` is series i's value at step k when
`present[i, k]` (absent otherwise; NaN is a value like any other). Rows may repeat a label
set as long as they are never present at the same step (a series that changes name-dropped
identity over time); `unique` checks that and merges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meshscope.model.metrics import Labels
from meshscope.query.promql.queryable import ArraySeries
from meshscope.query.promql.steps import Element, Ranges, Scalars, Steps, Text, Vectors
from meshscope.query.promql.values import PromQLError, drop_name

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Times = npt.NDArray[np.int64]


@dataclass(slots=True)
class Block:
    labels: list[Labels]
    values: Floats  # (rows, steps)
    present: Mask  # (rows, steps)

    @staticmethod
    def empty(steps: int) -> Block:
        return Block([], np.empty((0, steps)), np.zeros((0, steps), np.bool_))


@dataclass(slots=True)
class ScalarRow:
    values: Floats  # (steps,)


@dataclass(slots=True)
class ArrayRanges:
    """A range vector at every step: each series' samples and each step's window end; a
    window is [end - range_ms, end]."""

    series: list[ArraySeries]
    range_ms: int
    ends: Times
    selector: object = None  # the VectorSelector node (for absent_over_time), if any


Value = Block | ScalarRow | Text | ArrayRanges


def unique(block: Block, message: str = "") -> Block:
    """Merge rows with the same labels; an error when two are present at the same step."""
    rows: dict[Labels, list[int]] = {}
    for index, labels in enumerate(block.labels):
        rows.setdefault(labels, []).append(index)
    if len(rows) == len(block.labels):
        return block
    values = np.empty((len(rows), block.values.shape[1]))
    present = np.zeros((len(rows), block.values.shape[1]), np.bool_)
    for out, members in enumerate(rows.values()):
        if len(members) > 1 and (block.present[members].sum(axis=0) > 1).any():
            raise PromQLError(message or "vector cannot contain metrics with the same labelset")
        for member in members:
            mask = block.present[member]
            values[out] = np.where(mask, block.values[member], values[out])
            present[out] |= mask
    return Block(list(rows), values, present)


def drop_names(block: Block) -> Block:
    return Block([drop_name(labels) for labels in block.labels], block.values, block.present)


def to_vectors(block: Block) -> list[list[Element]]:
    """The per-step form (one list of (labels, value) per step, rows in order)."""
    steps = block.values.shape[1]
    out: list[list[Element]] = [[] for _ in range(steps)]
    for labels, values, present in zip(block.labels, block.values, block.present, strict=True):
        for step in np.flatnonzero(present).tolist():
            out[step].append((labels, float(values[step])))
    return out


def from_vectors(vectors: list[list[Element]]) -> Block:
    index: dict[Labels, int] = {}
    for vector in vectors:
        for labels, _ in vector:
            index.setdefault(labels, len(index))
    values = np.zeros((len(index), len(vectors)))
    present = np.zeros((len(index), len(vectors)), np.bool_)
    for step, vector in enumerate(vectors):
        for labels, value in vector:
            row = index[labels]
            if present[row, step]:
                raise PromQLError("vector cannot contain metrics with the same labelset")
            values[row, step] = value
            present[row, step] = True
    return Block(list(index), values, present)


def from_steps(value: Steps) -> Value:
    """A value of the per-step evaluator in this evaluator's form."""
    if isinstance(value, Scalars):
        return ScalarRow(np.array(value.values, np.float64))
    if isinstance(value, Vectors):
        return from_vectors(value.steps)
    if isinstance(value, Ranges):
        series = [
            ArraySeries(s.labels, np.array(s.ts, np.int64), np.array(s.vs, np.float64))
            for s in value.series
        ]
        return ArrayRanges(series, value.range_ms, np.array(value.ends, np.int64), value.selector)
    return value


def block_series(block: Block, steps: Times) -> list[ArraySeries]:
    """Each row's present steps as a series (what a subquery's range functions read)."""
    return [
        ArraySeries(labels, steps[present], values[present])
        for labels, values, present in zip(block.labels, block.values, block.present, strict=True)
        if present.any()
    ]
