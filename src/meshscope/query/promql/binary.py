"""PromQL binary operators: arithmetic, comparison and set operators with vector matching."""

from __future__ import annotations

import math
from dataclasses import dataclass

from meshscope.model.metrics import Labels
from meshscope.query.promql.values import (
    NAME,
    PromQLError,
    drop_name,
    get_label,
    keep_labels,
    labels_text,
    set_label,
    without_labels,
)

Element = tuple[Labels, float]

COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
SET_OPERATORS = {"and", "or", "unless"}


@dataclass(frozen=True, slots=True)
class Matching:
    """How two vectors are matched: `on` (True) or `ignoring` the labels; cardinality is
    "one-to-one", "many-to-one" (group_left), "one-to-many" (group_right), "many-to-many"."""

    card: str = "one-to-one"
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf if a > 0 or (float(b).is_integer() and int(b) % 2 == 0) else -math.inf
    except ValueError:
        if a == 0 and b < 0:
            return math.inf
        return math.nan


def apply(op: str, a: float, b: float) -> tuple[float, bool]:
    """(result, keep): comparison results keep `a`; `keep` says whether the test passed."""
    if op == "+":
        return a + b, True
    if op == "-":
        return a - b, True
    if op == "*":
        return a * b, True
    if op == "/":
        return _div(a, b), True
    if op == "%":
        return _mod(a, b), True
    if op == "^":
        return _pow(a, b), True
    if op == "atan2":
        return math.atan2(a, b), True
    if op == "==":
        return a, a == b
    if op == "!=":
        return a, a != b
    if op == ">":
        return a, a > b
    if op == "<":
        return a, a < b
    if op == ">=":
        return a, a >= b
    if op == "<=":
        return a, a <= b
    raise PromQLError(f"operator {op!r} not allowed here")


def scalar_scalar(op: str, a: float, b: float, return_bool: bool) -> float:
    value, keep = apply(op, a, b)
    if op in COMPARISONS:
        return 1.0 if keep else 0.0
    return value


def vector_scalar(
    op: str, vector: list[Element], scalar: float, swap: bool, return_bool: bool
) -> list[Element]:
    out: list[Element] = []
    drop = op not in COMPARISONS or return_bool
    for labels, value in vector:
        left, right = (scalar, value) if swap else (value, scalar)
        result, keep = apply(op, left, right)
        if op in COMPARISONS and swap:
            result = right
        if return_bool:
            result, keep = (1.0 if keep else 0.0), True
        if keep:
            out.append((drop_name(labels) if drop else labels, result))
    return out


def signature(labels: Labels, matching: Matching) -> Labels:
    if matching.on:
        return keep_labels(labels, matching.labels)
    return without_labels(labels, [*matching.labels, NAME])


def set_operation(
    op: str, lhs: list[Element], rhs: list[Element], matching: Matching
) -> list[Element]:
    right_sigs = {signature(labels, matching) for labels, _ in rhs}
    if op == "and":
        return [e for e in lhs if signature(e[0], matching) in right_sigs]
    if op == "unless":
        return [e for e in lhs if signature(e[0], matching) not in right_sigs]
    left_sigs = {signature(labels, matching) for labels, _ in lhs}
    return lhs + [e for e in rhs if signature(e[0], matching) not in left_sigs]


def vector_vector(
    op: str, lhs: list[Element], rhs: list[Element], matching: Matching, return_bool: bool
) -> list[Element]:
    if matching.card == "one-to-many":
        lhs, rhs = rhs, lhs
    right: dict[Labels, Element] = {}
    for element in rhs:
        sig = signature(element[0], matching)
        if sig in right:
            side = "left" if matching.card == "one-to-many" else "right"
            raise PromQLError(
                f"found duplicate series for the match group {labels_text(sig)} on the {side} "
                f"hand-side of the operation: [{labels_text(element[0])}, "
                f"{labels_text(right[sig][0])}];many-to-many matching not allowed: "
                "matching labels must be unique on one side"
            )
        right[sig] = element
    matched: dict[Labels, set[Labels] | None] = {}
    out: list[Element] = []
    for labels, value in lhs:
        sig = signature(labels, matching)
        other = right.get(sig)
        if other is None:
            continue
        left_value, right_value = value, other[1]
        if matching.card == "one-to-many":
            left_value, right_value = right_value, left_value
        result, keep = apply(op, left_value, right_value)
        if return_bool:
            result, keep = (1.0 if keep else 0.0), True
        if not keep:
            continue
        metric = _result_labels(labels, other[0], op, matching)
        if return_bool:
            metric = drop_name(metric)
        seen = matched.get(sig, ...)
        if matching.card == "one-to-one":
            if seen is not ...:
                raise PromQLError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
            matched[sig] = None
        else:
            if seen is ... or seen is None:
                seen = matched[sig] = set()
            if metric in seen:
                raise PromQLError(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                )
            seen.add(metric)
        out.append((metric, result))
    return out


def _result_labels(lhs: Labels, rhs: Labels, op: str, matching: Matching) -> Labels:
    metric = lhs
    if op not in COMPARISONS:
        metric = drop_name(metric)
    if matching.card == "one-to-one":
        if matching.on:
            metric = keep_labels(metric, matching.labels)
        else:
            metric = without_labels(metric, matching.labels)
    for name in matching.include:
        metric = set_label(metric, name, get_label(rhs, name))
    return metric
