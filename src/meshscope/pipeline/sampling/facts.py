"""What tail-sampling policies need of a trace, reduced span by span wherever spans are walked.

Every tail policy asks one of a few things of a whole trace: its earliest start and latest end
(latency), its span count (rate limits), its id (probabilistic), or whether ANY span matches a
per-span predicate (status codes, string and numeric attributes). The first three merge by
min/max/sum and the last by OR, so a trace reduces to four integers, `[start_ns, end_ns,
spans, mask]`, whatever order its spans arrive in and in whichever process they are read.

`SpanMatcher` holds the per-span predicates of the configured policies, one bit each; it is
plain and picklable, so ingest worker processes summarise the spans they decode
(`Summarizer`) and the store owner decides from the summaries alone (ADR 0006, revision 3):
the spans themselves travel only as the store's encoded rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span

Attributes = Mapping[str, AttrValue]


class SpanPredicate(Protocol):
    def __call__(self, status_code: int, attributes: Attributes, resource: Attributes) -> bool: ...


@dataclass(frozen=True, slots=True)
class StatusIn:
    codes: frozenset[int]

    def __call__(self, status_code: int, attributes: Attributes, resource: Attributes) -> bool:
        return status_code in self.codes


@dataclass(frozen=True, slots=True)
class StringMatch:
    """A span or resource attribute `key` equals one of `values` (or, with `patterns`,
    contains a match of one)."""

    key: str
    values: frozenset[str]
    patterns: tuple[re.Pattern[str], ...] = ()

    def _match(self, value: AttrValue) -> bool:
        if not isinstance(value, str):
            return False
        if self.patterns:
            return any(p.search(value) for p in self.patterns)
        return value in self.values

    def __call__(self, status_code: int, attributes: Attributes, resource: Attributes) -> bool:
        key = self.key
        return (key in attributes and self._match(attributes[key])) or (
            key in resource and self._match(resource[key])
        )


@dataclass(frozen=True, slots=True)
class NumberIn:
    """A numeric (not boolean) span or resource attribute `key` within [low, high]."""

    key: str
    low: float
    high: float

    def _match(self, value: AttrValue) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
        )

    def __call__(self, status_code: int, attributes: Attributes, resource: Attributes) -> bool:
        key = self.key
        return (key in attributes and self._match(attributes[key])) or (
            key in resource and self._match(resource[key])
        )


@dataclass(slots=True)
class SpanMatcher:
    """The per-span predicates of a set of policies; predicate i sets bit i of a mask."""

    predicates: list[SpanPredicate] = field(default_factory=list)

    def register(self, predicate: SpanPredicate) -> int:
        """Add a predicate; returns its bit."""
        self.predicates.append(predicate)
        return 1 << (len(self.predicates) - 1)


FACTS = 4
"""Facts per trace in `TraceSummary.facts`: start_ns, end_ns, spans, mask."""


class TraceSummary(NamedTuple):
    """The traces of one batch of encoded spans: `trace_ids` (hex, in order of first
    appearance), `facts[4 * i : 4 * i + 4]` = [start_ns, end_ns, spans, mask] of trace i's
    spans in this batch, and `row_trace[r]` = the index of row r's trace (rows in encoding
    order). The facts are one flat list, not a list per trace: the store owner unpickles a
    summary per request, and ~110 four-int lists took 13x as long to load (0.24 against
    0.02 us per span in the ingest benchmark's requests)."""

    trace_ids: list[str]
    facts: list[int]
    row_trace: list[int]


class Summarizer:
    """Builds a TraceSummary span by span (in the order the spans are encoded)."""

    __slots__ = ("_bits", "_index", "facts", "matcher", "row_trace", "trace_ids")

    def __init__(self, matcher: SpanMatcher) -> None:
        self.matcher = matcher
        # (bit, predicate) of each of the matcher's predicates: `add` ORs the bits that match
        self._bits = [(1 << i, p) for i, p in enumerate(matcher.predicates)]
        self._index: dict[str, int] = {}
        self.trace_ids: list[str] = []
        self.facts: list[int] = []
        self.row_trace: list[int] = []

    def add(
        self,
        trace_id: str,
        start_ns: int,
        end_ns: int,
        status_code: int,
        attributes: Attributes,
        resource: Attributes,
    ) -> None:
        mask = 0
        for bit, predicate in self._bits:
            if predicate(status_code, attributes, resource):
                mask |= bit
        index = self._index.get(trace_id)
        if index is None:
            index = self._index[trace_id] = len(self.trace_ids)
            self.trace_ids.append(trace_id)
            self.facts += (start_ns, end_ns, 1, mask)
        else:
            facts, at = self.facts, FACTS * index
            if start_ns < facts[at]:
                facts[at] = start_ns
            if end_ns > facts[at + 1]:
                facts[at + 1] = end_ns
            facts[at + 2] += 1
            facts[at + 3] |= mask
        self.row_trace.append(index)

    def summary(self) -> TraceSummary:
        return TraceSummary(self.trace_ids, self.facts, self.row_trace)


def summarize(spans: Sequence[Span], matcher: SpanMatcher) -> TraceSummary:
    """The summary of model spans, in their order."""
    out = Summarizer(matcher)
    for span in spans:
        out.add(
            span.trace_id,
            span.start_ns,
            span.end_ns,
            int(span.status_code),
            span.attributes,
            span.resource,
        )
    return out.summary()
