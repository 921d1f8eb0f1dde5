"""A recursive-descent parser for the supported LogQL subset (grammar in the package doc).

Every error is a LogQLError whose message names the position and what was expected, or says
which LogQL feature is not supported, so the API can answer 400 with it.
"""

from __future__ import annotations

from typing import cast, get_args

from meshscope.model.regex import Pattern, RegexError, compile_pattern
from meshscope.query import budget
from meshscope.query.logql.arithmetic import COMPARE, apply
from meshscope.query.logql.ast import (
    GROUPED_RANGE_FUNCS,
    AggOp,
    BinaryOp,
    BinaryOpName,
    BoolFilter,
    CompareOp,
    Comparison,
    Conversion,
    Decolorize,
    Extraction,
    LabelAssignment,
    LabelFilter,
    LabelFilterStage,
    LabelFormat,
    LabelsStage,
    LineFilter,
    LineFilterOp,
    LineFormat,
    LineRangeFunc,
    LogExpr,
    MetricExpr,
    NumberLiteral,
    Parser,
    ParserKind,
    PatternParser,
    Query,
    RangeAggregation,
    RangeFunc,
    RegexpParser,
    Stage,
    Unpack,
    Unwrap,
    UnwrapRangeFunc,
    VectorAggregation,
    VectorLiteral,
)
from meshscope.query.logql.json_fields import json_path
from meshscope.query.logql.lexer import Kind, LogQLError, Token, duration_ns, tokenize
from meshscope.query.logql.line_pattern import PatternError, parse_pattern
from meshscope.query.logql.template import parse_template
from meshscope.store.base import LabelMatcher, MatchOp

__all__ = ["LogQLError", "parse"]

LINE_RANGE_FUNCS: tuple[str, ...] = get_args(LineRangeFunc)
UNWRAP_RANGE_FUNCS: tuple[str, ...] = get_args(UnwrapRangeFunc)
RANGE_FUNCS = tuple(dict.fromkeys(LINE_RANGE_FUNCS + UNWRAP_RANGE_FUNCS))
_CONVERSIONS: tuple[str, ...] = tuple(c for c in get_args(Conversion) if c)
AGG_OPS: tuple[str, ...] = get_args(AggOp)
_LINE_FILTERS = ("|=", "!=", "|~", "!~")
_MATCH_OPS = {op.value: op for op in MatchOp}
_COMPARE_OPS = ("=", "!=", "=~", "!~", "==", ">", ">=", "<", "<=")
# Nesting and length limits keep hostile queries to a 400 (the parser and evaluator recurse).
MAX_NESTING = 64
MAX_FILTER_TERMS = 256
_UNSUPPORTED_STAGES = ("distinct", "ip")


def parse(query: str) -> Query:
    """Parse a LogQL query; raises LogQLError naming the problem."""
    if not query.strip():
        raise LogQLError("empty query")
    budget.check_depth(query)  # the parser and evaluators recurse once per level
    return _Parser(tokenize(query)).query()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.terms = 0

    # --- token helpers ---------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def at(self, kind: Kind, *texts: str) -> bool:
        token = self.peek()
        return token.kind is kind and (not texts or token.text in texts)

    def at_keyword(self, word: str) -> bool:
        """`and`/`or` in any case: Loki's keywords are case-insensitive (Grafana has sent `OR`)."""
        token = self.peek()
        return token.kind is Kind.NAME and token.text.lower() == word

    def expect(self, kind: Kind, *texts: str, what: str = "") -> Token:
        if not self.at(kind, *texts):
            wanted = what or (" or ".join(repr(t) for t in texts) if texts else kind.value)
            self.fail(f"expected {wanted}")
        return self.next()

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise LogQLError(f"the query nests parentheses deeper than {MAX_NESTING} levels")

    def fail(self, message: str) -> None:
        token = self.peek()
        raise LogQLError(
            f"parse error at position {token.pos + 1}: unexpected {token.describe()}, {message}"
        )

    # --- grammar ---------------------------------------------------------------------------

    def query(self) -> Query:
        result: Query = self.log_expr() if self.at(Kind.OP, "{") else self.metric_expr()
        if self.at_unwrap():
            self.fail("| unwrap belongs in a range aggregation, before its [range]")
        self.expect(Kind.EOF, what="end of query")
        return result

    def at_unwrap(self) -> bool:
        ahead = self.peek(1)
        return self.at(Kind.OP, "|") and ahead.kind is Kind.NAME and ahead.text == "unwrap"

    def metric_expr(self) -> MetricExpr:
        """Binary operators by Prometheus' (and Loki's) precedence, lowest first: `or`;
        `and`, `unless`; comparisons; `+ -`; `* / %`; `^` (right-associative). Each level is
        a loop, not a recursion, so a long chain cannot exhaust the stack."""
        return self.binary_level(0)

    def binary_level(self, level: int) -> MetricExpr:
        if level == len(_BINARY_LEVELS):
            return self.power()
        left = self.binary_level(level + 1)
        while (op := self.binary_operator(_BINARY_LEVELS[level])) is not None:
            as_bool = False
            if op in _COMPARISONS and self.at(Kind.NAME, "bool"):
                self.next()
                as_bool = True
            if self.at(Kind.NAME, "on", "ignoring", "group_left", "group_right"):
                self.fail(
                    "vector matching (on, ignoring, group_left, group_right) is not supported"
                )
            right = self.binary_level(level + 1)
            left = _binary(op, left, right, as_bool)
        return left

    def binary_operator(self, ops: tuple[str, ...]) -> BinaryOpName | None:
        token = self.peek()
        if (token.kind is Kind.OP and token.text in ops) or (
            token.kind is Kind.NAME and token.text.lower() in ops
        ):
            self.next()
            return cast(BinaryOpName, token.text.lower())
        return None

    def power(self) -> MetricExpr:
        operands = [self.metric_primary()]
        while self.at(Kind.OP, "^"):
            self.next()
            operands.append(self.metric_primary())
        result = operands.pop()
        while operands:  # right-associative: a ^ b ^ c is a ^ (b ^ c)
            result = _binary("^", operands.pop(), result, False)
        return result

    def metric_primary(self) -> MetricExpr:
        if self.at(Kind.NUMBER):
            return NumberLiteral(float(self.next().text))
        if self.at(Kind.NAME, "vector"):
            self.next()
            self.expect(Kind.OP, "(")
            value = float(self.expect(Kind.NUMBER, what="a number").text)
            self.expect(Kind.OP, ")")
            return VectorLiteral(value)
        if self.at(Kind.OP, "("):
            self.next()
            self.nest()
            inner = self.metric_expr()
            self.expect(Kind.OP, ")")
            self.depth -= 1
            return inner
        token = self.peek()
        if token.kind is Kind.NAME and token.text in RANGE_FUNCS:
            return self.range_aggregation()
        if token.kind is Kind.NAME and token.text in AGG_OPS:
            return self.vector_aggregation()
        if token.kind is Kind.NAME:
            raise LogQLError(
                f"unsupported LogQL function {token.text!r} at position {token.pos + 1}; "
                f"supported: {', '.join(RANGE_FUNCS + AGG_OPS)}, vector"
            )
        self.fail("expected a stream selector {...} or a metric query such as count_over_time")
        raise AssertionError  # unreachable: fail raises

    def range_aggregation(self) -> RangeAggregation:
        func = cast(RangeFunc, self.next().text)
        self.expect(Kind.OP, "(")
        param: float | None = None
        if func == "quantile_over_time":
            param = float(self.expect(Kind.NUMBER, what="a quantile such as 0.99").text)
            self.expect(Kind.OP, ",", what="',' after the quantile")
        # Loki's two orders: `{...} | stages | unwrap x [5m] offset 1h` and
        # `{...} [5m] offset 1h | stages | unwrap x`.
        matchers = self.selector()
        early = self.at(Kind.OP, "[")
        if early:
            range_ns, offset_ns = self.log_range()
        log = LogExpr(matchers, self.stages())
        unwrap = self.unwrap() if self.at_unwrap() else None
        if not early:
            range_ns, offset_ns = self.log_range()
        self.expect(Kind.OP, ")")
        grouping, without = self.grouping()
        # As Loki's RangeAggregationExpr.validate.
        if grouping is not None and func not in GROUPED_RANGE_FUNCS:
            raise LogQLError(f"grouping not allowed for {func} aggregation")
        if unwrap is not None and func not in UNWRAP_RANGE_FUNCS:
            raise LogQLError(f"invalid aggregation {func} with unwrap")
        if unwrap is None and func not in LINE_RANGE_FUNCS:
            raise LogQLError(f"invalid aggregation {func} without unwrap")
        return RangeAggregation(func, log, range_ns, unwrap, param, grouping, without, offset_ns)

    def log_range(self) -> tuple[int, int]:
        """`[5m]` and an optional `offset 1h`: both in ns."""
        self.expect(Kind.OP, "[", what="a range such as [5m]")
        token = self.expect(Kind.DURATION, what="a duration such as 5m")
        range_ns = duration_ns(token.text)
        if not range_ns:
            raise LogQLError(f"invalid range [{token.text}]: it must be positive")
        self.expect(Kind.OP, "]")
        if not self.at(Kind.NAME, "offset"):
            return range_ns, 0
        self.next()
        token = self.expect(Kind.DURATION, what="an offset such as 1h")
        return range_ns, duration_ns(token.text) or 0

    def unwrap(self) -> Unwrap:
        """`| unwrap name`, `| unwrap duration(name)` ..., then `| label filters`."""
        self.next()
        self.next()
        conversion: Conversion = ""
        if self.at(Kind.NAME, *_CONVERSIONS) and self.peek(1).text == "(":
            conversion = cast(Conversion, self.next().text)
            self.next()
            label = self.expect(Kind.NAME, what="a label name").text
            self.expect(Kind.OP, ")")
        else:
            label = self.expect(Kind.NAME, what="a label name to unwrap").text
        filters: list[LabelFilter] = []
        while self.at(Kind.OP, "|"):
            self.next()
            self.terms = 0
            filters.append(self.label_or())
        return Unwrap(label, conversion, tuple(filters))

    def vector_aggregation(self) -> VectorAggregation:
        op = cast(AggOp, self.next().text)
        grouping, without = self.grouping()
        self.expect(Kind.OP, "(")
        k = 0
        if op in ("topk", "bottomk"):
            token = self.expect(Kind.NUMBER, what=f"{op}'s k, a positive integer")
            k = int(float(token.text)) if float(token.text).is_integer() else 0
            if k <= 0:
                raise LogQLError(f"invalid parameter for {op}: {token.text} (a positive integer)")
            self.expect(Kind.OP, ",", what=f"',' after {op}'s k")
        inner = self.metric_expr()
        self.expect(Kind.OP, ")")
        if grouping is None:
            grouping, without = self.grouping()
        return VectorAggregation(op, inner, grouping, without, k)

    def grouping(self) -> tuple[tuple[str, ...] | None, bool]:
        if not self.at(Kind.NAME, "by", "without"):
            return None, False
        without = self.next().text == "without"
        self.expect(Kind.OP, "(")
        return self.name_list(")"), without

    def name_list(self, closing: str) -> tuple[str, ...]:
        names: list[str] = []
        while not self.at(Kind.OP, closing):
            names.append(self.expect(Kind.NAME, what="a label name").text)
            if not self.at(Kind.OP, ","):
                break
            self.next()
        self.expect(Kind.OP, closing)
        return tuple(names)

    def log_expr(self) -> LogExpr:
        return LogExpr(self.selector(), self.stages())

    def stages(self) -> tuple[Stage, ...]:
        stages: list[Stage] = []
        while self.at(Kind.OP, "|", *_LINE_FILTERS) and not self.at_unwrap():
            stages.append(self.stage())
        return tuple(stages)

    def selector(self) -> tuple[LabelMatcher, ...]:
        self.expect(Kind.OP, "{", what="a stream selector {...}")
        matchers: list[LabelMatcher] = []
        while not self.at(Kind.OP, "}"):
            name = self.expect(Kind.NAME, what="a label name").text
            op = self.expect(Kind.OP, *_MATCH_OPS, what="=, !=, =~ or !~").text
            value = self.expect(Kind.STRING, what="a quoted label value").text
            if op in ("=~", "!~"):
                _compile(value)
            matchers.append(LabelMatcher(name, _MATCH_OPS[op], value))
            if not self.at(Kind.OP, ","):
                break
            self.next()
        self.expect(Kind.OP, "}", what="',' or '}'")
        if not any(not m.matches("") for m in matchers):
            raise LogQLError(
                "queries require at least one regexp or equality matcher that does not have an "
                'empty-compatible value. For instance, app=~".*" does not meet this requirement, '
                'but app=~".+" will'
            )
        return tuple(matchers)

    def stage(self) -> Stage:
        token = self.next()
        if token.text in _LINE_FILTERS:
            text = self.expect(Kind.STRING, what="a quoted string after " + token.text).text
            regex = _compile(text) if token.text in ("|~", "!~") else None
            return LineFilter(cast(LineFilterOp, token.text), text, regex)
        word = self.peek()
        if word.kind is Kind.NAME and word.text in ("json", "logfmt"):
            self.next()
            if self.at(Kind.OP, "-"):
                self.fail(f"flags of | {word.text} (--strict, --keep-empty) are not supported")
            kind = cast(ParserKind, word.text)
            return Parser(kind, self.extractions(kind) if self.at(Kind.NAME) else ())
        if word.kind is Kind.NAME and word.text == "regexp":
            self.next()
            return self.regexp()
        if word.kind is Kind.NAME and word.text == "pattern":
            self.next()
            text = self.expect(Kind.STRING, what="a quoted pattern").text
            try:
                return PatternParser(parse_pattern(text))
            except PatternError as error:
                raise LogQLError(f"invalid pattern {text!r}: {error}") from None
        if word.kind is Kind.NAME and word.text in ("unpack", "decolorize"):
            self.next()
            return Unpack() if word.text == "unpack" else Decolorize()
        if word.kind is Kind.NAME and word.text == "line_format":
            self.next()
            return LineFormat(parse_template(self.expect(Kind.STRING, what="a template").text))
        if word.kind is Kind.NAME and word.text == "label_format":
            self.next()
            return self.label_format()
        if word.kind is Kind.NAME and word.text in ("drop", "keep"):
            self.next()
            names = self.drop_names()
            return LabelsStage(word.text == "keep", names)
        if word.kind is Kind.NAME and word.text in _UNSUPPORTED_STAGES:
            raise LogQLError(
                f"unsupported LogQL stage | {word.text} at position {word.pos + 1}; supported: "
                "line filters, | json, | logfmt, | regexp, | pattern, | unpack, | decolorize, "
                "label filters, | line_format, | label_format, | drop, | keep, and | unwrap in "
                "range aggregations"
            )
        self.terms = 0
        return LabelFilterStage(self.label_or())

    def regexp(self) -> RegexpParser:
        """As Loki's NewRegexpParser: named groups only, each a valid label name."""
        text = self.expect(Kind.STRING, what="a quoted regular expression").text
        regex = _compile(text)
        names = tuple(sorted(regex.groupindex, key=regex.groupindex.__getitem__))
        if not names:
            raise LogQLError(
                f"invalid regexp {text!r}: at least one named capture must be supplied"
            )
        for name in names:
            if name[:1].isdigit():
                raise LogQLError(f"invalid extracted label name '{name}'")
        return RegexpParser(regex, names)

    def extractions(self, kind: ParserKind) -> tuple[Extraction, ...]:
        """`a="path", b` after `| json` / `| logfmt` (a name alone is its own path)."""
        found: list[Extraction] = []
        while True:
            token = self.expect(Kind.NAME, what="a label name")
            expression = token.text
            if self.at(Kind.OP, "="):
                self.next()
                expression = self.expect(Kind.STRING, what="a quoted expression").text
            if kind == "logfmt":
                path: tuple[str | int, ...] = (expression,)
            else:
                parsed = json_path(expression)
                if parsed is None:
                    raise LogQLError(
                        f"cannot parse expression [{expression}] at position {token.pos + 1}: "
                        'a JSON path such as a.b, a["b c"] or a[0]'
                    )
                path = parsed
            found.append(Extraction(token.text, path))
            if not self.at(Kind.OP, ","):
                return tuple(found)
            self.next()

    def label_format(self) -> LabelFormat:
        assignments: list[LabelAssignment] = []
        while True:
            name = self.expect(Kind.NAME, what="a label name").text
            if name == "__error__":  # as Loki's label_format (fmt.go `validate`)
                self.i -= 1
                self.fail("__error__ cannot be formatted")
            if any(done.name == name for done in assignments):  # as Loki's label_format
                self.i -= 1
                self.fail(f"multiple label name '{name}' not allowed in a single format operation")
            self.expect(Kind.OP, "=", what="'='")
            token = self.next()
            if token.kind is Kind.STRING:
                assignments.append(LabelAssignment(name, parse_template(token.text)))
            elif token.kind is Kind.NAME:
                assignments.append(LabelAssignment(name, source=token.text))
            else:
                self.i -= 1
                self.fail("expected a quoted template or a label name")
            if not self.at(Kind.OP, ","):
                return LabelFormat(tuple(assignments))
            self.next()

    def drop_names(self) -> tuple[str, ...]:
        names = [self.expect(Kind.NAME, what="a label name").text]
        while self.at(Kind.OP, ","):
            self.next()
            names.append(self.expect(Kind.NAME, what="a label name").text)
        if self.at(Kind.OP, *_MATCH_OPS):
            self.fail("label matchers in | drop / | keep are not supported; list names only")
        return tuple(names)

    def label_or(self) -> LabelFilter:
        left = self.label_and()
        while self.at_keyword("or"):
            self.next()
            left = BoolFilter("or", left, self.label_and())
        return left

    def label_and(self) -> LabelFilter:
        """`and` binds tighter than `or`; a `,` or a plain space ands its left side with the
        whole rest (Loki's grammar gives them no precedence, so its parser shifts):
        `a, b or c` is `a and (b or c)` (pkg/logql/syntax/parser_test.go)."""
        left = self.label_primary()
        while True:
            if self.at_keyword("and"):
                self.next()
                left = BoolFilter("and", left, self.label_primary())
                continue
            if self.at(Kind.OP, ","):
                self.next()
            elif not (self.at(Kind.OP, "(") or (self.at(Kind.NAME) and not self.at_keyword("or"))):
                return left
            return BoolFilter("and", left, self.label_or())  # <= MAX_FILTER_TERMS deep

    def label_primary(self) -> LabelFilter:
        if self.at(Kind.OP, "("):
            self.next()
            self.nest()
            inner = self.label_or()
            self.expect(Kind.OP, ")")
            self.depth -= 1
            return inner
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise LogQLError(f"a label filter may have at most {MAX_FILTER_TERMS} comparisons")
        name = self.expect(Kind.NAME, what="a label filter, parser or line filter").text
        op = cast(CompareOp, self.expect(Kind.OP, *_COMPARE_OPS, what="a comparison").text)
        token = self.next()
        if token.kind is Kind.STRING:
            if op not in ("=", "!=", "=~", "!~"):
                raise LogQLError(f"operator {op} needs a number or duration, not a string")
            regex = _compile(token.text, anchored=True) if op in ("=~", "!~") else None
            return Comparison(name, op, token.text, "string", regex)
        if op in ("=~", "!~"):
            raise LogQLError(f"operator {op} needs a quoted regular expression")
        if token.kind is Kind.NUMBER:
            return Comparison(name, op, float(token.text), "number")
        if token.kind is Kind.DURATION:
            return Comparison(name, op, float(duration_ns(token.text) or 0), "duration")
        self.i -= 1
        self.fail("expected a string, number or duration")
        raise AssertionError


_COMPARISONS = tuple(COMPARE)
_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("or",), ("and", "unless"), _COMPARISONS, ("+", "-"), ("*", "/", "%"),
)  # fmt: skip


def _binary(op: BinaryOpName, left: MetricExpr, right: MetricExpr, as_bool: bool) -> MetricExpr:
    """As Loki's parser: set operators and comparisons without `bool` need a series on a
    side; an operation between two numbers is folded into one number."""
    numbers = isinstance(left, NumberLiteral), isinstance(right, NumberLiteral)
    if op in ("and", "or", "unless") and any(numbers):
        raise LogQLError(f"set operator {op} not allowed in binary scalar expression")
    if op in _COMPARISONS and all(numbers) and not as_bool:
        raise LogQLError("comparisons between scalars must use BOOL modifier")
    if isinstance(left, NumberLiteral) and isinstance(right, NumberLiteral):
        compare = COMPARE.get(op)
        if compare is not None:
            return NumberLiteral(float(compare(left.value, right.value)))
        return NumberLiteral(apply(op, left.value, right.value))
    return BinaryOp(op, left, right, as_bool)


def _compile(pattern: str, anchored: bool = False) -> Pattern:
    try:
        return compile_pattern(pattern, anchored)
    except RegexError as error:
        raise LogQLError(str(error)) from None
