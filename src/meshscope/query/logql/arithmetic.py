"""The arithmetic and comparisons of LogQL's binary operators on two numbers, as Loki's
`mergeBinOp` computes them (shared by the evaluator and the parser, which folds operations
between numbers into one number, as Loki's parser does)."""

from __future__ import annotations

import math
from collections.abc import Callable

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}  # fmt: skip


def apply(op: str, a: float, b: float) -> float:
    if op.startswith("r"):  # the operands were swapped to broadcast the label-less side
        op, a, b = op[1:], b, a
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "^":
        return power(a, b)
    if b == 0:  # as Loki's MergeBinOp, whatever `a` is (Prometheus would say +-Inf)
        return math.nan
    return a / b if op == "/" else math.fmod(a, b)


def power(a: float, b: float) -> float:
    """Go's math.Pow where Python's raises: an overflow is +-Inf, 0 to a negative power +Inf,
    a negative base to a fraction NaN."""
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = float(b).is_integer() and b % 2 == 1
        return -math.inf if a < 0 and odd else math.inf
    except ValueError:
        return math.inf if a == 0 else math.nan
