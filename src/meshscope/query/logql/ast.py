"""The LogQL syntax tree: a log query (selector + pipeline) or a metric query over one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshscope.model.regex import Pattern
from meshscope.query.logql.line_pattern import LinePattern
from meshscope.query.logql.template import Template
from meshscope.store.base import LabelMatcher

CompareOp = Literal["=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="]
LineFilterOp = Literal["|=", "!=", "|~", "!~"]
ParserKind = Literal["json", "logfmt"]
ArithOp = Literal["+", "-", "*", "/", "%", "^"]
ComparisonOp = Literal["==", "!=", ">", ">=", "<", "<="]
SetOp = Literal["and", "or", "unless"]
BinaryOpName = ArithOp | ComparisonOp | SetOp


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
class Extraction:
    """`label="expression"` (or `label` alone) after `| json` or `| logfmt`: the label takes
    the value at `path` (JSON object keys and array indexes; a logfmt key)."""

    label: str
    path: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Parser:
    """`| json` or `| logfmt`: extract labels from the line (every field, or only
    `extractions`)."""

    kind: ParserKind
    extractions: tuple[Extraction, ...] = ()


@dataclass(frozen=True, slots=True)
class RegexpParser:
    """`| regexp "(?P<status>\\d+)"`: each named group of the first match is a label."""

    regex: Pattern
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PatternParser:
    """`| pattern "<ip> - <_> <status>"`: the captures are labels (`line_pattern`)."""

    pattern: LinePattern


@dataclass(frozen=True, slots=True)
class Unpack:
    """`| unpack`: a line Promtail packed (`{"_entry": line, label: value}`) is unpacked."""


@dataclass(frozen=True, slots=True)
class Decolorize:
    """`| decolorize`: ANSI colour sequences are removed from the line."""


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


Stage = (
    LineFilter | Parser | RegexpParser | PatternParser | Unpack | Decolorize | LabelFilterStage
    | LineFormat | LabelFormat | LabelsStage
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogExpr:
    matchers: tuple[LabelMatcher, ...]
    stages: tuple[Stage, ...] = ()


LineRangeFunc = Literal["count_over_time", "rate", "bytes_over_time", "bytes_rate",
                        "absent_over_time"]  # fmt: skip
"""Range aggregations over log lines (`rate` and `absent_over_time` also take an unwrap)."""
UnwrapRangeFunc = Literal[
    "rate",
    "rate_counter",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
]
"""Range aggregations over unwrapped values."""
RangeFunc = LineRangeFunc | UnwrapRangeFunc
GROUPED_RANGE_FUNCS = frozenset({
    "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time",
    "quantile_over_time", "first_over_time", "last_over_time",
})  # fmt: skip
"""The range aggregations that take `by`/`without` (Loki's RangeAggregationExpr.validate)."""
AggOp = Literal["sum", "count", "min", "max", "avg", "stddev", "stdvar", "topk", "bottomk"]
Conversion = Literal["", "duration", "duration_seconds", "bytes"]


@dataclass(frozen=True, slots=True)
class Unwrap:
    """`| unwrap latency` (or `duration(latency)`, `bytes(size)`): the label's value is the
    sample, converted; `filters` are the label filters written after it (`| __error__=""`)."""

    label: str
    conversion: Conversion = ""
    filters: tuple[LabelFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeAggregation:
    func: RangeFunc
    log: LogExpr
    range_ns: int
    unwrap: Unwrap | None = None
    param: float | None = None  # quantile_over_time's quantile
    grouping: tuple[str, ...] | None = None  # by/without after an unwrapped aggregation
    without: bool = False
    offset_ns: int = 0  # `offset 1h`: each step's window ends this much earlier


@dataclass(frozen=True, slots=True)
class VectorAggregation:
    op: AggOp
    inner: MetricExpr
    grouping: tuple[str, ...] | None = None  # None: no by/without clause (one group)
    without: bool = False
    param: int = 0  # topk's and bottomk's k


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
    """`a + b` (also `- * / % ^`), comparisons (`a > 10` keeps the series where it holds;
    with `bool`, 1 or 0) and `and`/`or`/`unless`, between series with the same labels
    (`vector(n)` is a series without labels, as in Loki); a number applies to every series
    of the other side."""

    op: BinaryOpName
    left: MetricExpr
    right: MetricExpr
    bool: bool = False


MetricExpr = RangeAggregation | VectorAggregation | VectorLiteral | NumberLiteral | BinaryOp
Query = LogExpr | MetricExpr
