"""TraceQL pipeline stages: what follows a query's span-set expression after `|`, applied
to each trace's span sets in turn, as Tempo's engine applies them (pkg/traceql `Pipeline`,
`Aggregate`, `ScalarFilter`, `GroupOperation`, `CoalesceOperation`):

    { status = error } | count() > 2                 traces with more than 2 failed spans
    { kind = server } | avg(duration) > 200ms         min, max, sum alike
    { status = error } | by(resource.service.name)    a span set per service
    { } | by(.region) | count() > 3 | coalesce()      groups, filtered, merged again
    { } | select(span.http.url, .customer.tier)       those fields shown with each span
    { kind = server } | { status = error }            a span-set expression on the sets

An aggregate over a span set with no value for its field (`avg(.x)` where no span has a
numeric `x`) drops the set, as in Tempo; one that passes is named on the set
(`count()` = 3), as is each group's value (`by(.region)` = "eu").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshscope.model.spans import Span

AGGREGATES = ("count", "avg", "min", "max", "sum")
COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")


@dataclass(frozen=True, slots=True)
class Spanset:
    """A trace's spans a query answers with, and what the pipeline says of them."""

    spans: list[Span]
    attributes: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ScalarFilter:
    """`name(field) op value`: keeps the span sets whose aggregate compares true."""

    name: str  # one of AGGREGATES
    field: str  # "" for count()
    op: str  # one of COMPARISONS
    value: float

    @property
    def label(self) -> str:
        return f"{self.name}({self.field})"


@dataclass(frozen=True, slots=True)
class GroupBy:
    field: str


@dataclass(frozen=True, slots=True)
class Coalesce:
    pass


@dataclass(frozen=True, slots=True)
class Select:
    fields: tuple[str, ...]


ValueOf = Callable[[Span, str], Any]
"""A span's value of a TraceQL field (`traceql.field_value`)."""


def aggregate(stage: ScalarFilter, spans: list[Span], value_of: ValueOf) -> float | None:
    """The stage's aggregate over `spans`: None when no span has a number for its field."""
    if stage.name == "count":
        return len(spans)
    values = [
        value
        for span in spans
        if isinstance(value := value_of(span, stage.field), int | float)
        and not isinstance(value, bool)
    ]
    if not values:
        return None
    if stage.name == "avg":
        return sum(values) / len(values)
    if stage.name == "sum":
        return sum(values)
    return min(values) if stage.name == "min" else max(values)


def compare(actual: Any, op: str, wanted: Any) -> bool:
    """`actual op wanted` for one of COMPARISONS (two numbers, or two strings)."""
    outcome: bool = {
        "=": actual == wanted,
        "!=": actual != wanted,
        ">": actual > wanted,
        ">=": actual >= wanted,
        "<": actual < wanted,
        "<=": actual <= wanted,
    }[op]
    return outcome


def filtered(stage: ScalarFilter, sets: list[Spanset], value_of: ValueOf) -> list[Spanset]:
    out: list[Spanset] = []
    for spanset in sets:
        found = aggregate(stage, spanset.spans, value_of)
        if found is not None and compare(found, stage.op, stage.value):
            out.append(Spanset(spanset.spans, (*spanset.attributes, (stage.label, found))))
    return out


def grouped(stage: GroupBy, sets: list[Spanset], value_of: ValueOf) -> list[Spanset]:
    """Each span set split by the field's value (spans without one go together), in the
    order each value first comes."""
    out: list[Spanset] = []
    for spanset in sets:
        groups: dict[tuple[str, Any], tuple[Any, list[Span]]] = {}
        for span in spanset.spans:
            value = value_of(span, stage.field)
            # By type and value (1 and 1.0 are two groups, as in Tempo); lists and maps
            # (array attributes) by their text.
            same = value if isinstance(value, str | int | float | bytes | None) else repr(value)
            groups.setdefault((type(value).__name__, same), (value, []))[1].append(span)
        label = f"by({stage.field})"
        out += [
            Spanset(spans, (*spanset.attributes, (label, value)))
            for value, spans in groups.values()
        ]
    return out


def coalesced(sets: list[Spanset]) -> list[Spanset]:
    """One span set of every set's spans, each once (what the groups said is dropped)."""
    if not sets:
        return []
    spans = list({id(span): span for spanset in sets for span in spanset.spans}.values())
    return [Spanset(spans)]
