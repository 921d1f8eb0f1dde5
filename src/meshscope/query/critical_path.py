"""The critical path of a trace: the chain of span sections that determines its end-to-end
latency, computed like Jaeger UI's (`components/TracePage/CriticalPath`).

Walk back from the root's end: inside a span, the child that finished last (before the point
reached so far) is on the path; the span's own time after that child's end is a section of
the span, then the walk continues inside the child. When a span has no such child left, its
remaining time back to its start is a section and the walk returns to its parent at the
span's start. Before walking, children are clipped to their parent (a child ending after its
parent is cut at the parent's end; one starting after it is dropped) and FOLLOWS_FROM links
are ignored, as in Jaeger UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshscope.model.spans import Span


@dataclass(frozen=True, slots=True)
class Section:
    span_id: str
    start_ns: int
    end_ns: int


@dataclass(slots=True)
class _Node:
    span: Span
    start: int
    end: int
    parent: str
    children: list[str]


def critical_path(spans: Sequence[Span]) -> list[Section]:
    """Sections from the trace's end back to its start (Jaeger UI's order); [] if no root."""
    nodes = _clipped_tree(spans)
    roots = [n for n in nodes.values() if not n.parent]
    if not roots:
        return []
    root = min(roots, key=lambda n: (n.start, -n.end))
    path: list[Section] = []
    span_id = root.span.span_id
    returning: int | None = None
    while True:
        node = nodes[span_id]
        bound = node.end if returning is None else returning
        child = _last_finishing_child(nodes, node, returning)
        if child is not None:
            if child.end != bound:
                path.append(Section(span_id, child.end, bound))
            span_id, returning = child.span.span_id, None
            continue
        if node.start != bound:
            path.append(Section(span_id, node.start, bound))
        if not node.parent:
            return path
        span_id, returning = node.parent, node.start


def _last_finishing_child(nodes: dict[str, _Node], node: _Node, before: int | None) -> _Node | None:
    best: _Node | None = None
    for child_id in node.children:
        child = nodes[child_id]
        if before is not None and child.end >= before:
            continue
        if best is None or child.end > best.end:
            best = child
    return best


def _clipped_tree(spans: Sequence[Span]) -> dict[str, _Node]:
    nodes: dict[str, _Node] = {}
    for span in spans:
        if span.span_id not in nodes:
            nodes[span.span_id] = _Node(span, span.start_ns, span.end_ns, span.parent_span_id, [])
    for node in nodes.values():
        if node.parent and node.parent not in nodes:
            node.parent = ""  # an orphan (its parent was never received) roots its own tree
    # Clip top-down so each child is measured against its already-clipped parent.
    order = [n for n in nodes.values() if not n.parent]
    for span_id, node in nodes.items():
        if node.parent:
            nodes[node.parent].children.append(span_id)
    index = 0
    while index < len(order):
        parent = order[index]
        index += 1
        kept: list[str] = []
        for child_id in parent.children:
            child = nodes[child_id]
            if child.start > parent.end or child.end < parent.start:
                continue  # entirely outside its parent: dropped, as in Jaeger UI
            child.start = max(child.start, parent.start)
            child.end = min(child.end, parent.end)
            kept.append(child_id)
            order.append(child)
        parent.children = kept
    return {node.span.span_id: node for node in order}
