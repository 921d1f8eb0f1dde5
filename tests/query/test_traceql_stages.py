"""TraceQL pipeline stages (query/traceql_stages.py through traceql.spansets) on the known
trace of test_spansets: aggregates, by(), coalesce(), select() and span-set stages."""

from __future__ import annotations

import dataclasses

import pytest

from meshscope.model.attributes import AttrValue
from meshscope.query.traceql import parse, spansets, trace_matches
from tests.query.test_spansets import MS, TRACE


def _sets(query: str) -> list[tuple[str, tuple[tuple[str, object], ...]]]:
    """Each span set's span names (in its order) and what the pipeline said of it."""
    return [
        ("".join(span.name for span in found.spans), found.attributes)
        for found in spansets(parse(query), TRACE)
    ]


SERVICE = "by(resource.service.name)"


@pytest.mark.parametrize(
    ("query", "sets"),
    [
        ("{} | count() = 6", [("rabcde", (("count()", 6),))]),
        ("{} | count() > 6", []),
        ("{ kind = server } | avg(duration) = 1ms", [("rbe", (("avg(duration)", MS),))]),
        ("{} | sum(duration) >= 6ms", [("rabcde", (("sum(duration)", 6 * MS),))]),
        ("{} | min(duration) < 1ms", []),
        ("{} | max(duration) <= 1ms", [("rabcde", (("max(duration)", MS),))]),
        ("{} | avg(.nope) > 0", []),  # no span has a value: the set is dropped
        ("{} | avg(.nope) < 0", []),
        (
            "{} | by(resource.service.name)",
            [("rad", ((SERVICE, "frontend"),)), ("bc", ((SERVICE, "cart"),)),
             ("e", ((SERVICE, "pay"),))],
        ),
        (
            "{} | by(resource.service.name) | count() > 1",
            [("rad", ((SERVICE, "frontend"), ("count()", 3))),
             ("bc", ((SERVICE, "cart"), ("count()", 2)))],
        ),
        ("{} | by(resource.service.name) | count() > 1 | coalesce()", [("radbc", ())]),
        ("{} | { status = error }", [("ce", ())]),
        (
            "{} | by(resource.service.name) | { status = error }",
            [("c", ((SERVICE, "cart"),)), ("e", ((SERVICE, "pay"),))],
        ),
        # A span-set stage works on each set's spans: c's parent b is in cart's set only.
        (
            '{} | by(resource.service.name) | { kind = server } > { status = error }',
            [("c", ((SERVICE, "cart"),))],
        ),
        ("{ status = error } | select(.a, span.b)", [("ce", ())]),
        ('{ name = "none" } | count() = 0', []),  # no span set: nothing to count
    ],
)  # fmt: skip
def test_stages_on_a_known_trace(query: str, sets: list[tuple[str, tuple[object, ...]]]) -> None:
    assert _sets(query) == sets


def test_groups_by_values_of_any_type() -> None:
    """Groups go by type and value (1 and 1.0 are two, as in Tempo); array values, which
    cannot be dictionary keys, by their text; spans without a value together."""
    values: list[AttrValue] = [1, 1.0, ["a", "b"], ["a", "b"], None, "1"]
    trace = [
        dataclasses.replace(span, attributes={} if value is None else {"v": value})
        for span, value in zip(TRACE, values, strict=True)
    ]
    found = spansets(parse("{} | by(.v)"), trace)
    assert [(len(s.spans), s.attributes[0][1]) for s in found] == [
        (1, 1), (1, 1.0), (2, ["a", "b"]), (1, None), (1, "1"),
    ]  # fmt: skip
    assert parse("{} | select(.a, span.b)").selected() == [".a", "span.b"]
    assert [s.name for s in trace_matches(parse("{} | by(.v) | count() = 2"), trace)] == ["b", "c"]
