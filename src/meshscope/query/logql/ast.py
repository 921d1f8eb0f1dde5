"""The LogQL syntax tree: a log query (selector + pipeline) or a metric query over one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshscope.model.regex import Pattern
from meshscope.query.logql.template import Template
from meshscope.store.base import LabelMatcher

CompareOp = Literal["=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="]
LineFilterOp = Literal["|=", "!=", "|~", "!~"]
ParserKind = Literal["json", "logfmt"]
ArithOp = Literal["+", "-", "*", "/"]


@dataclass(frozen=True, slots=True)
class LineFilter:
    """`|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"` on the (current) log line."""

    op: LineFilterOp
    text: str
    regex: Pattern | None = None

    def keeps(self, line: str) -> bool:
        if self.regex is not None:
            hit = self.regex.search(line) is not None
            return hit if self.op == "|~" else not hit
        return (self.text in line) == (self.op == "|=")


@dataclass(frozen=True, slots=True)
class Parser:
    """`| json` or `| logfmt`: extract labels from the line."""

    kind: ParserKind


@dataclass(frozen=True, slots=True)
class Comparison:
    """One label predicate. `value` is a string, a number, or a duration in ns."""

    name: str
    op: CompareOp
    value: str | float
    kind: Literal["string", "number", "duration"]
    regex: Pattern | None = None


@dataclass(frozen=True, slots=True)
class BoolFilter:
    op: Literal["and", "or"]
    left: LabelFilter
    right: LabelFilter


LabelFilter = Comparison | BoolFilter


@dataclass(frozen=True, slots=True)
class LabelFilterStage:
    expr: LabelFilter


@dataclass(frozen=True, slots=True)
class LineFormat:
    """`| line_format "..."`: the line becomes the rendered template."""

    template: Template


@dataclass(frozen=True, slots=True)
class LabelAssignment:
    """`name="template"` (set from a template) or `name=source` (rename `source`)."""

    name: str
    template: Template | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class LabelFormat:
    """`| label_format a="{{...}}", b=c`: every assignment sees the labels before the stage."""

    assignments: tuple[LabelAssignment, ...]


@dataclass(frozen=True, slots=True)
class LabelsStage:
    """`| drop a, b` or `| keep a, b`."""

    keep: bool
    names: tuple[str, ...]


Stage = LineFilter | Parser | LabelFilterStage | LineFormat | LabelFormat | LabelsStage


@dataclass(frozen=True, slots=True)
class LogExpr:
    matchers: tuple[LabelMatcher, ...]
    stages: tuple[Stage, ...] = ()


RangeFunc = Literal["count_over_time", "rate", "bytes_over_time", "bytes_rate"]
AggOp = Literal["sum", "count", "min", "max", "avg"]


@dataclass(frozen=True, slots=True)
class RangeAggregation:
    func: RangeFunc
    log: LogExpr
    range_ns: int


@dataclass(frozen=True, slots=True)
class VectorAggregation:
    op: AggOp
    inner: MetricExpr
    grouping: tuple[str, ...] | None = None  # None: no by/without clause (one group)
    without: bool = False


@dataclass(frozen=True, slots=True)
class VectorLiteral:
    """`vector(1)`: one series without labels, this value at every step."""

    value: float


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    """`2` in `rate(...) * 2`: applies to every series of the other side."""

    value: float


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """`a + b` (also -, *, /) between series with the same labels (`vector(n)` is a series
    without labels, as in Loki); a number applies to every series of the other side."""

    op: ArithOp
    left: MetricExpr
    right: MetricExpr


MetricExpr = RangeAggregation | VectorAggregation | VectorLiteral | NumberLiteral | BinaryOp
Query = LogExpr | MetricExpr
