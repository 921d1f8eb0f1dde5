"""Two-phase writes: encode spans for the store anywhere, commit them in the store's owner.

A DuckDB file has one owner process, but turning spans into the store's rows is Python work
that can run in ingest worker processes. A backend that supports this exposes
`column_encoder` (a pure, picklable module-level function: the backend-neutral
`SpanColumns` that workers build straight from OTLP -> its own encoded rows), `span_encoder`
(the same from model spans) and `write_encoded` (commit encoded rows plus logs, points and
operations in one transaction). Workers never know which backend they encode for.
Every other backend gets the fallback below: the "encoding" is the span list itself and the
commit is `write_batch`, so the pipeline has one path for all backends. An encoding must also
narrow to a subset of its rows (`Selectable`), for tail sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np
import numpy.typing as npt

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import Operation, Storage
from meshscope.store.span_columns import ColumnEncoder

SpanEncoder = Callable[[Sequence[Span]], Any]
"""Pure and picklable by reference (a module-level function): runs in worker processes."""


@runtime_checkable
class TwoPhaseStorage(Protocol):
    @property
    def span_encoder(self) -> SpanEncoder: ...

    @property
    def column_encoder(self) -> ColumnEncoder: ...

    def write_encoded(
        self,
        encoded_spans: Sequence[Any],
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
        calls: Sequence[Call] = (),
    ) -> None:
        """Like `Storage.write_batch`, with spans given as outputs of `span_encoder`, and
        `calls` between services stored as their access logs (as `access_log` renders them)."""
        ...


def keep_spans(spans: Sequence[Span]) -> list[Span]:
    """The fallback encoder: spans stay model objects."""
    return list(spans)


class Selectable(Protocol):
    """An encoding of spans that can be narrowed to some of its rows (tail sampling keeps
    whole traces out of a batch): `mask[i]` keeps row i, rows in encoding order."""

    def select(self, mask: npt.NDArray[np.bool_]) -> Any: ...


def select_rows(encoded: Any, mask: npt.NDArray[np.bool_]) -> Any:
    """The rows of `encoded` (made by a span encoder) where `mask` is true."""
    if isinstance(encoded, list):  # the fallback encoding: model spans
        return [span for span, keep in zip(encoded, mask.tolist(), strict=True) if keep]
    selectable: Selectable = encoded
    return selectable.select(mask)


_TWO_PHASE: dict[type, bool] = {}


def is_two_phase(storage: Storage) -> TypeGuard[TwoPhaseStorage]:
    """Whether `storage` takes encoded spans; remembered per type (a runtime Protocol check
    costs ~25 µs, once per commit is measurable on the node's hot path)."""
    known = _TWO_PHASE.get(type(storage))
    if known is None:
        known = _TWO_PHASE[type(storage)] = isinstance(storage, TwoPhaseStorage)
    return known


def span_encoder(storage: Storage) -> SpanEncoder:
    if is_two_phase(storage):
        return storage.span_encoder
    return keep_spans


def column_encoder(storage: Storage) -> ColumnEncoder | None:
    """The backend's encoder of `SpanColumns`; None when it takes model spans only (then
    workers decode into model spans: `prepare` with `span_encoder`)."""
    return storage.column_encoder if is_two_phase(storage) else None


def write_encoded(
    storage: Storage,
    encoded_spans: Sequence[Any],
    logs: Sequence[LogRecord] = (),
    points: Sequence[MetricPoint] = (),
    operations: Sequence[Operation] = (),
    calls: Sequence[Call] = (),
) -> None:
    """Commit encoded spans (made by `span_encoder(storage)`) with the rest, in one go.
    A backend without two-phase writes gets `calls` as the log records `access_log` renders."""
    if is_two_phase(storage):
        storage.write_encoded(encoded_spans, logs, points, operations, calls)
        return
    spans: list[Span] = list(chain.from_iterable(encoded_spans))
    if calls:
        logs = [*logs, *map(access_log, calls)]
    storage.write_batch(spans=spans, logs=logs, points=points, operations=operations)
