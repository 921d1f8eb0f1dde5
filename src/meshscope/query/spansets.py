"""TraceQL's structural operators over one trace's spans: which spans of the right-hand span
set stand in a relation to some span of the left-hand one (child, parent, descendant,
ancestor, sibling), its negation, or the union of the spans on both sides that do, as
Tempo's engine decides them (pkg/traceql `SpansetOperation`, vParquet's `ChildOf`,
`DescendantOf`, `SiblingOf`).

A span's parent is the span of the trace whose id is its `parent_span_id` (every such span,
where ids repeat, as Zipkin's shared client/server spans do); a span whose parent is not in
the trace has no ancestors here. Siblings share a `parent_span_id`, roots included (Tempo's
nested sets give every root the same parent), and a span is not its own sibling. Each
operator is linear in the trace's spans (one walk up or down the tree from a side, each
span visited once: a cycle of parent ids ends the walk), whatever the tree's depth.

    A > B   B spans whose parent is an A span       A !> B   B spans that are not
    A < B   B spans that are the parent of an A     A !< B   ...
    A >> B  B spans with an A ancestor              A !>> B  ...
    A << B  B spans that are an ancestor of an A    A !<< B  ...
    A ~ B   B spans with an A sibling               A !~ B   ...
    A &> B, A &< B, A &>> B, A &<< B, A &~ B: the spans of both sides in such a relation
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

from meshscope.model.spans import Span

RELATIONS = {">": "child", "<": "parent", ">>": "descendant", "<<": "ancestor", "~": "sibling"}
"""Each structural operator (without its `!` or `&` prefix) and the relation it asks for."""
OPERATORS = tuple(f"{prefix}{op}" for prefix in ("", "!", "&") for op in RELATIONS)

SpanIds = set[int]
"""Spans of one trace by `id()`: a span set while a query is evaluated."""


class SpanTree:
    """One trace's parent and child links, by span id."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.by_id: dict[str, list[Span]] = defaultdict(list)
        self.children: dict[str, list[Span]] = defaultdict(list)
        for span in spans:
            self.by_id[span.span_id].append(span)
            if span.parent_span_id:
                self.children[span.parent_span_id].append(span)

    def parents(self, span: Span) -> list[Span]:
        return self.by_id.get(span.parent_span_id, []) if span.parent_span_id else []

    def below(self, spans: Iterable[Span]) -> SpanIds:
        """The spans under any of `spans` (their descendants, not themselves unless one is
        under another)."""
        return self._walk(spans, lambda span: self.children.get(span.span_id, []))

    def above(self, spans: Iterable[Span]) -> SpanIds:
        """The spans over any of `spans` (their ancestors)."""
        return self._walk(spans, self.parents)

    @staticmethod
    def _walk(start: Iterable[Span], step: Callable[[Span], list[Span]]) -> SpanIds:
        found: SpanIds = set()
        todo = [next_span for span in start for next_span in step(span)]
        while todo:
            span = todo.pop()
            if id(span) not in found:
                found.add(id(span))
                todo.extend(step(span))
        return found


def relate(op: str, left: Sequence[Span], right: Sequence[Span], tree: SpanTree) -> SpanIds:
    """The spans `left op right` gives (`op` one of OPERATORS)."""
    prefix, relation = (op[0], op[1:]) if op[0] in "!&" else ("", op)
    matched_right, matched_left = _related(RELATIONS[relation], left, right, tree)
    if prefix == "!":
        return {id(span) for span in right} - matched_right
    if prefix == "&":
        return matched_right | matched_left
    return matched_right


def _related(
    relation: str, left: Sequence[Span], right: Sequence[Span], tree: SpanTree
) -> tuple[SpanIds, SpanIds]:
    """The right spans in `relation` to some left span, and the left spans some right span
    is in that relation to."""
    if relation in ("parent", "ancestor"):  # A < B is B > A, seen from the other side
        inverse = "child" if relation == "parent" else "descendant"
        as_left, as_right = _related(inverse, right, left, tree)
        return as_right, as_left
    ids_left, ids_right = {id(span) for span in left}, {id(span) for span in right}
    if relation == "child":
        children = {
            id(span) for span in right if any(id(p) in ids_left for p in tree.parents(span))
        }
        parents = {id(p) for span in right if id(span) in children for p in tree.parents(span)}
        return children, parents & ids_left
    if relation == "descendant":
        below = tree.below(left) & ids_right
        return below, tree.above(span for span in right if id(span) in below) & ids_left
    return _siblings(left, right, ids_left, ids_right)


def _siblings(
    left: Sequence[Span], right: Sequence[Span], ids_left: SpanIds, ids_right: SpanIds
) -> tuple[SpanIds, SpanIds]:
    def with_sibling_in(spans: Sequence[Span], ids: SpanIds, others: Sequence[Span]) -> SpanIds:
        per_parent = Counter(span.parent_span_id for span in spans)
        return {
            id(span) for span in others if per_parent[span.parent_span_id] - (id(span) in ids) > 0
        }

    return with_sibling_in(left, ids_left, right), with_sibling_in(right, ids_right, left)
