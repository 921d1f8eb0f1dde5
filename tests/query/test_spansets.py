"""TraceQL's structural operators (query/spansets.py, through query/traceql.py): a known
trace answered as Tempo answers, and every operator on random trees (missing parents,
repeated ids, cycles) against its definition checked span by span."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query.spansets import OPERATORS, SpanTree, relate
from meshscope.query.tempo_search import _narrowing
from meshscope.query.traceql import parse, trace_matches

MS = 10**6


def _span(name: str, parent: str, service: str, kind: SpanKind, error: bool = False) -> Span:
    return Span(
        trace_id="ab" * 16, span_id=name * 16, parent_span_id=parent * 16 if parent else "",
        name=name, service=service, start_ns=0, end_ns=MS, kind=kind,
        status_code=StatusCode.ERROR if error else StatusCode.UNSET,
    )  # fmt: skip


# r frontend SERVER
# ├── a frontend CLIENT
# │   └── b cart SERVER
# │       └── c cart CLIENT (error)
# └── d frontend CLIENT
#     └── e pay SERVER (error)
TRACE = [
    _span("r", "", "frontend", SpanKind.SERVER),
    _span("a", "r", "frontend", SpanKind.CLIENT),
    _span("b", "a", "cart", SpanKind.SERVER),
    _span("c", "b", "cart", SpanKind.CLIENT, error=True),
    _span("d", "r", "frontend", SpanKind.CLIENT),
    _span("e", "d", "pay", SpanKind.SERVER, error=True),
]
FRONTEND = '{ resource.service.name = "frontend" }'
CART = '{ resource.service.name = "cart" }'
ERRORS = "{ status = error }"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (f"{FRONTEND} > {ERRORS}", "e"),  # c's parent is cart's
        (f"{FRONTEND} >> {ERRORS}", "ce"),
        (f"{CART} >> {ERRORS}", "c"),
        (f"{ERRORS} < {{}}", "bd"),  # the errors' parents
        (f"{ERRORS} << {{ kind = server }}", "rb"),  # e is no ancestor of itself
        ('{ name = "a" } ~ {}', "d"),
        ("{} ~ {}", "ad"),
        (f"{CART} !>> {ERRORS}", "e"),
        (f"{FRONTEND} !> {{}}", "rc"),  # the root has no parent; c's is cart's
        ("{} !~ {}", "rbce"),  # only children have siblings
        ('{ name = "x" } !< {}', "rabcde"),  # nothing on the left: every right span
        (f"{CART} &>> {ERRORS}", "bc"),
        (f"{FRONTEND} &> {ERRORS}", "de"),
        ('{ name = "a" } &~ { name = "d" }', "ad"),
        (f"{ERRORS} &<< {{ kind = server }}", "rbce"),
        (f'{FRONTEND} >> {{ name = "none" }}', ""),
        # Structural operators bind tighter than || and &&, left to right; parentheses.
        (f'{{ name = "x" }} || {FRONTEND} >> {ERRORS}', "ce"),
        (f"{FRONTEND} > {{}} > {ERRORS}", "ce"),  # (children of frontend spans) > errors
        (f"{FRONTEND} > ({{}} > {ERRORS})", "e"),
        ('({ name = "a" } || { name = "d" }) > {}', "be"),
        (f'{{ name = "r" }} && {FRONTEND} >> {ERRORS}', "rce"),
        (f'{{ name = "x" }} && {FRONTEND} >> {ERRORS}', ""),
    ],
)
def test_structural_operators_on_a_known_trace(query: str, names: str) -> None:
    assert "".join(span.name for span in trace_matches(parse(query), TRACE)) == names


def test_deep_and_cyclic_traces_are_walked_once() -> None:
    """A chain 20,000 spans deep (no recursion) and parent ids in a cycle (no endless walk)."""
    chain = [_span("x", "", "svc", SpanKind.INTERNAL)]
    chain += [
        Span(trace_id="ab" * 16, span_id=f"{n:016x}", parent_span_id=f"{n - 1:016x}" if n > 1
             else "x" * 16, name="leaf" if n == 20_000 else "mid", service="svc", start_ns=0,
             end_ns=MS)
        for n in range(1, 20_001)
    ]  # fmt: skip
    found = trace_matches(parse('{ name = "x" } >> { name = "leaf" }'), chain)
    assert [span.name for span in found] == ["leaf"]
    assert len(trace_matches(parse('{ name = "leaf" } << {}'), chain)) == 20_000
    cycle = [_span("p", "q", "svc", SpanKind.INTERNAL), _span("q", "p", "svc", SpanKind.INTERNAL)]
    assert [s.name for s in trace_matches(parse('{ name = "p" } >> {}'), cycle)] == ["p", "q"]


def test_the_store_narrows_on_a_side_every_match_needs() -> None:
    assert _narrowing(parse(f"{CART} !>> {ERRORS}")) == {"status": StatusCode.ERROR}
    assert _narrowing(parse(f"{{ .a = 1 }} >> {CART}")) == {"service": "cart"}
    assert _narrowing(parse(f"{CART} || {ERRORS}")) == {}
    assert _narrowing(parse(f"({CART} || {ERRORS}) > {{ kind = client }}")) == {
        "kind": SpanKind.CLIENT
    }


# Random traces: span ids from a small alphabet (so ids repeat, parents go missing and
# cycles form), each span a random parent id or none.
_IDS = "abcdef"
traces = st.lists(
    st.tuples(st.sampled_from(_IDS), st.one_of(st.just(""), st.sampled_from(_IDS))),
    min_size=0,
    max_size=12,
).map(
    lambda pairs: [
        Span(trace_id="ab" * 16, span_id=sid * 16, parent_span_id=parent * 16 if parent else "",
             name=str(n), service="svc", start_ns=0, end_ns=1)
        for n, (sid, parent) in enumerate(pairs)
    ]
)  # fmt: skip


def _parents(span: Span, spans: list[Span]) -> list[Span]:
    return [p for p in spans if span.parent_span_id and p.span_id == span.parent_span_id]


def _ancestors(span: Span, spans: list[Span]) -> list[Span]:
    """Every span reachable upward from `span` (by definition, one step at a time)."""
    found: list[Span] = []
    frontier = _parents(span, spans)
    while frontier:
        step = frontier.pop()
        if not any(step is seen for seen in found):
            found.append(step)
            frontier += _parents(step, spans)
    return found


def _holds(relation: str, a: Span, b: Span, spans: list[Span]) -> bool:
    """Whether b stands in `relation` to a (`a op b`)."""
    if relation == ">":
        return any(p is a for p in _parents(b, spans))
    if relation == "<":
        return any(p is b for p in _parents(a, spans))
    if relation == ">>":
        return any(p is a for p in _ancestors(b, spans))
    if relation == "<<":
        return any(p is b for p in _ancestors(a, spans))
    return a is not b and a.parent_span_id == b.parent_span_id  # ~


@settings(max_examples=400, deadline=None)
@given(traces, st.data())
def test_every_operator_agrees_with_its_definition(spans: list[Span], data: st.DataObject) -> None:
    left = [s for s in spans if data.draw(st.booleans())]
    right = [s for s in spans if data.draw(st.booleans())]
    for op in OPERATORS:
        prefix, relation = (op[0], op[1:]) if op[0] in "!&" else ("", op)
        related = [b for b in right if any(_holds(relation, a, b, spans) for a in left)]
        if prefix == "!":
            wanted = [b for b in right if not any(b is r for r in related)]
        elif prefix == "&":
            partners = [a for a in left if any(_holds(relation, a, b, spans) for b in right)]
            wanted = related + [a for a in partners if not any(a is r for r in related)]
        else:
            wanted = related
        got = relate(op, left, right, SpanTree(spans))
        assert got == {id(span) for span in wanted}, op
