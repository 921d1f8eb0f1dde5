"""The LogQL parser: the supported subset parses to the expected tree; the rest is refused
with a message naming the problem."""

from __future__ import annotations

import pytest

from meshscope.query.logql import LogQLError, parse
from meshscope.query.logql.ast import (
    BinaryOp,
    BoolFilter,
    Comparison,
    LabelFilterStage,
    LabelsStage,
    LineFilter,
    LineFormat,
    LogExpr,
    NumberLiteral,
    Parser,
    RangeAggregation,
    VectorAggregation,
    VectorLiteral,
)
from meshscope.store.base import LabelMatcher, MatchOp

M = 60 * 10**9


def test_selector_line_filters_parsers_and_label_filters() -> None:
    expr = parse(
        '{app="a", env!="b", ns=~"x|y", pod!~`p-\\d+`} |= "err" != `x` |~ "a.c" '
        '| json | status >= 500 and dur > 1.5s or level="x" | line_format "{{.a}} - {{ .b }}"'
    )
    assert isinstance(expr, LogExpr)
    assert expr.matchers == (
        LabelMatcher("app", MatchOp.EQ, "a"),
        LabelMatcher("env", MatchOp.NE, "b"),
        LabelMatcher("ns", MatchOp.RE, "x|y"),
        LabelMatcher("pod", MatchOp.NRE, "p-\\d+"),
    )
    first, second, third, json_stage, filters, fmt = expr.stages
    assert (first, second) == (LineFilter("|=", "err"), LineFilter("!=", "x"))
    assert isinstance(third, LineFilter) and third.op == "|~" and third.regex is not None
    assert json_stage == Parser("json")
    assert filters == LabelFilterStage(
        BoolFilter(
            "or",
            BoolFilter(
                "and",
                Comparison("status", ">=", 500.0, "number"),
                Comparison("dur", ">", 1.5e9, "duration"),
            ),
            Comparison("level", "=", "x", "string"),
        )
    )
    assert isinstance(fmt, LineFormat)
    assert fmt.template.render({"a": "1", "b": "2"}, "line", 0) == "1 - 2"


def test_comma_and_juxtaposition_mean_and_and_parentheses_group() -> None:
    a = parse('{a="b"} | logfmt | x="1", y="2" z="3"')
    b = parse('{a="b"} | logfmt | x="1" and (y="2" and z="3")')
    assert a == b
    # Loki's parser_test.go: `,` and a space and their left side with the whole rest.
    loki = parse('{a="b"} | logfmt | foo="bar" buzz!="blip", blop=~"boop" or fuzz==5')
    same = parse('{a="b"} | logfmt | foo="bar" and (buzz!="blip" and (blop=~"boop" or fuzz==5))')
    assert loki == same
    assert parse('{a="b"} | x="1" and y="2" or z="3"') == parse(
        '{a="b"} | (x="1" and y="2") or z="3"'
    )
    many = ", ".join(f'k{i}="{i}"' for i in range(255))  # 255 commas: no recursion limit
    assert isinstance(parse('{a="b"} | ' + many), LogExpr)
    grouped = parse('{a="b"} | x="1" and (y="2" or z="3")')
    assert isinstance(grouped, LogExpr)
    stage = grouped.stages[0]
    assert isinstance(stage, LabelFilterStage) and isinstance(stage.expr, BoolFilter)
    assert stage.expr.op == "and" and isinstance(stage.expr.right, BoolFilter)
    assert stage.expr.right.op == "or"


def test_metric_queries_with_grouping_before_or_after() -> None:
    inner = RangeAggregation(
        "count_over_time",
        LogExpr((LabelMatcher("job", MatchOp.EQ, "x"),), (LabelsStage(False, ("__error__",)),)),
        5 * M,
    )
    assert parse('sum by (level) (count_over_time({job="x"} | drop __error__ [5m]))') == (
        VectorAggregation("sum", inner, ("level",))
    )
    assert parse('sum(count_over_time({job="x"} | drop __error__[5m])) by (level)') == (
        VectorAggregation("sum", inner, ("level",))
    )
    assert parse('count without (a, b) (rate({job="x"}[1h30m]))') == VectorAggregation(
        "count", RangeAggregation("rate", LogExpr(inner.log.matchers), 90 * M), ("a", "b"), True
    )
    assert parse('bytes_rate({job="x"}[10s])') == RangeAggregation(
        "bytes_rate", LogExpr(inner.log.matchers), 10 * 10**9
    )


def test_arithmetic_with_vector_literals_like_grafanas_health_check() -> None:
    assert parse("vector(1)+vector(1)") == BinaryOp("+", VectorLiteral(1.0), VectorLiteral(1.0))
    assert parse('rate({a="b"}[5m]) * 2') == BinaryOp(
        "*", RangeAggregation("rate", LogExpr((LabelMatcher("a", MatchOp.EQ, "b"),)), 5 * M),
        NumberLiteral(2.0),
    )  # fmt: skip
    rate = RangeAggregation("rate", LogExpr((LabelMatcher("a", MatchOp.EQ, "b"),)), M)
    assert parse('vector(2) * rate({a="b"}[1m]) - vector(1)') == BinaryOp(
        "-", BinaryOp("*", VectorLiteral(2.0), rate), VectorLiteral(1.0)
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("{}", "at least one regexp or equality matcher"),
        ('{a=~".*"}', "at least one regexp or equality matcher"),
        ('{a="b" |= "x"', "position 8: unexpected '|=', expected ',' or '}'"),
        ('{a="b"', "expected ',' or '}'"),
        ("{a=b}", "expected a quoted label value"),
        ('{a="b}', "unterminated string"),
        ('{a="b"} | distinct x', "unsupported LogQL stage | distinct"),
        ('{a="b"} | unwrap x', "| unwrap belongs in a range aggregation"),
        ('quantile_over_time(0.9, {a="b"}[1m])', "invalid aggregation quantile_over_time without"),
        ('sum_over_time({a="b"} | unwrap x [1m]) by (a)', "grouping not allowed for sum_over_time"),
        ('count_over_time({a="b"} | unwrap x [1m])', "invalid aggregation count_over_time with"),
        ('count_over_time({a="b"}[1m]) by (a)', "grouping not allowed for count_over_time"),
        ('quantile_over_time({a="b"} | unwrap x [1m])', "expected a quantile such as 0.99"),
        ('avg_over_time({a="b"} | unwrap [1m])', "expected a label name to unwrap"),
        ('avg_over_time({a="b"} | unwrap bytes(x [1m])', "expected ')'"),
        ('topk(0, count_over_time({a="b"}[1m]))', "invalid parameter for topk: 0"),
        ('topk(1.5, count_over_time({a="b"}[1m]))', "invalid parameter for topk: 1.5"),
        ('bottomk(count_over_time({a="b"}[1m]))', "expected bottomk's k"),
        ('count_over_time({a="b"})', "expected a range such as [5m]"),
        ("1 > 2", "comparisons between scalars must use BOOL modifier"),
        ('rate({a="b"}[5m]) and 1', "set operator and not allowed in binary scalar"),
        ('rate({a="b"}[5m]) > on(a) rate({a="b"}[5m])', "vector matching (on, ignoring"),
        ('{a="b"} | x > "s"', "needs a number or duration"),
        ('{a="b"} | x =~ 5', "needs a quoted regular expression"),
        ('{a="b"} |~ "("', "invalid regular expression"),
        ('{a=~"("}', "invalid regular expression"),
        ('{a="b"} | line_format "{{ .a | upper }}"', "unsupported template action"),
        ('{a="b"} | json x="a..b"', "cannot parse expression [a..b]"),
        ('{a="b"} | json x=".a"', "cannot parse expression [.a]"),
        ('{a="b"} | json x="a[x]"', "cannot parse expression [a[x]]"),
        ('{a="b"} | json x=', "expected a quoted expression"),
        ('{a="b"} | logfmt --strict', "flags of | logfmt (--strict, --keep-empty)"),
        ('{a="b"} | drop x="y"', "label matchers in | drop"),
        ('{a="\\q"}', "unknown escape sequence"),
        ('{a="b"} extra', "expected end of query"),
        ('count_over_time({a="b"}[0s])', "must be positive"),
        ('{a="b"} | label_format x=a, x=b', "multiple label name 'x' not allowed"),
        ('{a="b"} | label_format __error__="x"', "__error__ cannot be formatted"),
    ],
)
def test_errors_name_the_problem(query: str, message: str) -> None:
    with pytest.raises(LogQLError) as info:
        parse(query)
    assert message in str(info.value)
