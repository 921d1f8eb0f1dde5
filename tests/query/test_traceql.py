"""The TraceQL subset: parsing, refusals that name what is unsupported, span matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query.budget import QueryTooComplexError
from meshscope.query.tempo_search import TraceFilter, _narrowing, tag_search
from meshscope.query.traceql import (
    BoolOp,
    Condition,
    Contains,
    MatchAll,
    SpansetOp,
    Text,
    TraceQLError,
    matches,
    parse,
    trace_matches,
)

MS = 10**6


def _span(**kw: object) -> Span:
    fields: dict[str, object] = {
        "trace_id": "ab" * 16, "span_id": "cd" * 8, "name": "GET /cart", "service": "cart",
        "start_ns": 0, "end_ns": 30 * MS, "kind": SpanKind.SERVER,
        "attributes": {"http.status_code": 500, "customer.tier": "gold", "flag": True},
        "resource": {"k8s.pod.name": "cart-7", "region": "eu"},
    }  # fmt: skip
    fields.update(kw)
    return Span(**fields)  # type: ignore[arg-type]


def test_parse_shapes() -> None:
    query = parse('{ resource.service.name = "cart" && (span.x >= 5 || .y =~ "a.*") }')
    (node,) = query.filters()
    assert isinstance(node, BoolOp) and node.op == "&&"
    assert node.left == Condition("resource.service.name", "=", "cart")
    assert isinstance(node.right, BoolOp) and node.right.op == "||"
    assert parse("{}").expr == MatchAll()
    two = parse("{ status = error } || { duration > 1.5s }")
    assert two.expr == SpansetOp(
        "||", Condition("status", "=", StatusCode.ERROR), Condition("duration", ">", 1_500_000_000)
    )
    assert parse("{ kind = server }").expr == Condition("kind", "=", SpanKind.SERVER)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{ resource.service.name = "cart" }', True),
        ('{ .service.name = "cart" }', True),
        ('{ resource.service.name = "web" }', False),
        ("{ span.http.status_code >= 500 }", True),
        ("{ .http.status_code = 200 }", False),
        ('{ .customer.tier =~ "go.*" }', True),
        ('{ .customer.tier =~ "go" }', False),  # regexes match the whole value
        ('{ .customer.tier !~ "free|trial" }', True),
        ('{ resource.region = "eu" && .k8s.pod.name = "cart-7" }', True),
        ('{ span.region = "eu" }', False),  # span scope: not the resource's
        ("{ duration > 25ms && duration <= 30ms }", True),
        ("{ duration > 30ms }", False),
        ('{ name = "GET /cart" && kind = server && status = unset }', True),
        ("{ status != unset }", False),
        ("{ span.flag = true }", True),
        ('{ .missing = "x" }', False),
        ('{ .missing != "x" }', False),  # a missing attribute satisfies no condition
        ("{ .missing = nil }", True),  # but nil's: = nil is "does not exist"
        ("{ .missing != nil }", False),
        ("{ span.customer.tier != nil && resource.region != nil }", True),
        ("{ span.region != nil }", False),  # the resource's, not the span's
        ("{ name != nil && .flag = nil }", False),
        ('{ .customer.tier = "free" || span.http.status_code > 499 }', True),
        ("{ (span.http.status_code < 300 || .flag = false) && kind = server }", False),
    ],
)
def test_matching_one_span(query: str, expected: bool) -> None:
    (node,) = parse(query).filters()
    assert matches(node, _span()) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{ .http.status_code = "500" }', False),  # the attribute is an int
        ('{ .http.status_code != "500" }', False),
        ("{ .customer.tier = 5 }", False),
        ("{ .customer.tier != 5 }", False),
        ('{ .flag = "true" }', False),
        ('{ .flag != "true" }', False),
        ("{ .flag != false }", True),
        ("{ .http.status_code = 500.0 }", True),  # ints and floats compare as numbers
        ('{ .http.status_code =~ "5.*" }', False),  # a regex applies to strings only
        ('{ .http.status_code !~ "4.*" }', False),
        ("{ .code = 500 }", False),  # the string "500" below is no number
    ],
)
def test_values_of_another_type_satisfy_no_comparison_as_in_tempo(
    query: str, expected: bool
) -> None:
    (node,) = parse(query).filters()
    span = _span(attributes={"http.status_code": 500, "customer.tier": "gold", "flag": True,
                             "code": "500"})  # fmt: skip
    assert matches(node, span) is expected


def test_and_and_or_bind_alike_left_to_right_as_in_tempo() -> None:
    """Tempo's grammar has `%left AND OR`: `{ a || b && c }` is `{ (a || b) && c }`."""
    (node,) = parse('{ .customer.tier = "gold" || .flag = true && .region = "us" }').filters()
    assert isinstance(node, BoolOp) and node.op == "&&"
    assert matches(node, _span()) is False  # (true || true) && false
    (node,) = parse('{ .region = "us" && .flag = true || .customer.tier = "gold" }').filters()
    assert matches(node, _span()) is True  # (false && true) || true


def test_span_sets_combine_at_trace_level() -> None:
    spans = [_span(), _span(span_id="ef" * 8, service="db", name="SELECT", kind=SpanKind.CLIENT)]
    both = parse('{ resource.service.name = "cart" } && { name = "SELECT" }')
    assert [s.service for s in trace_matches(both, spans)] == ["cart", "db"]
    assert trace_matches(parse('{ name = "SELECT" } && { name = "none" }'), spans) == []
    either = trace_matches(parse('{ name = "none" } || { kind = client }'), spans)
    assert [s.service for s in either] == ["db"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("({ status = error } | count() > 2) && {}", "a pipeline inside an operator"),
        ("{} | rate()", "unsupported TraceQL pipeline stage 'rate'"),
        ("{} | count() > fast", "a number or duration"),
        ("{} | count() =~ 2", "compared with one of"),
        ("{} | avg() > 2", "expected a field"),
        ("{} | by(foo)", "unknown field 'foo'"),
        ("{} | select(.a .b)", "expected '\\)'"),
        ("{} |", "expected a pipeline stage"),
        ('{ name = "a" } >> ', "unexpected end"),
        ('{ name = "a" } ! { name = "b" }', "unexpected '!'"),
        ('({ name = "a" } >> { name = "b" }', "end of query, expected \\)"),
        ("{ foo = 1 }", "unknown field 'foo'"),
        ("{ .x = }", "bad value"),
        ('{ .x =~ "(" }', "bad regex"),
        ("{ .x = 1", "missing"),
        ("{ duration > fast }", "bad value"),
        ("{ .x > nil }", "nil is compared with = or !="),
        ("{ .x = 1 } extra", "unexpected"),
        # Enums compare to their keywords (Grafana's builder quoted them: 0 traces, no error).
        ('{ status = "error" }', "same type"),
        ('{ kind = "server" }', "same type"),
        ("{ status > error }", "same type"),
        ('{ status =~ "e.*" }', "same type"),
    ],
)
def test_bad_and_unsupported_queries_say_why(query: str, message: str) -> None:
    with pytest.raises(TraceQLError, match=message):
        parse(query)


def test_tempo_tags_become_span_sets_the_store_narrows() -> None:
    """Tempo's `tags`: one span set per tag; a plain attribute tag goes first, matched by its
    text form as the stores match attributes, so the store narrows on it."""
    query, trace_filter = tag_search(
        [("name", "cart"), ("flag", "true"), ("root.name", "GET"), ("status.code", "error")],
        TraceFilter(min_duration_ns=5 * MS),
    )
    assert query.filters() == [
        Condition("name", "=", Contains("cart")),
        Condition(".flag", "=", Text("true")),
        Condition("status", "=", StatusCode.ERROR),
    ]
    assert isinstance(query.expr, SpansetOp) and query.expr.op == "&&"
    # The first tag the store can narrow on: the attribute, matched as the stores match.
    assert _narrowing(query) == {"attributes": {"flag": "true"}}
    assert trace_filter == TraceFilter(min_duration_ns=5 * MS, root_name="GET")
    span = _span(status_code=StatusCode.ERROR)
    assert trace_matches(query, [span])
    assert not trace_matches(query, [_span()])  # status unset
    assert matches(Condition("name", "=", Contains("T /ca")), span)
    assert not matches(Condition("name", "=", Contains("get")), span)  # case-sensitive
    assert matches(Condition(".http.status_code", "=", Text("500")), span)
    assert not trace_filter.keeps(span, 0, 4 * MS) and trace_filter.keeps(span, 0, 5 * MS)


_TOKENS = ["{", "}", "(", ")", "&&", "||", ">", ">>", "<", "<<", "~", "!>", "!>>", "!<", "!<<",
           "!~", "&>", "&>>", "&<", "&<<", "&~", "=", "!=", ">=", "=~", "|", "!", "&", "name",
           "status", "kind", "duration", ".a", "span.b", "resource.service.name", "error",
           "server", '"x"', '"(a+)+$"', "5", "1.5s", "true", " ", "count", "avg", "max", "by",
           "coalesce", "select", ",", "()", "nil"]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_TOKENS), max_size=30).map(" ".join))
)
def test_any_text_parses_or_is_refused_and_a_parsed_query_runs(text: str) -> None:
    """Hostile and half-written queries (as Grafana's autocompletion sends them): a
    TraceQLError (or a too-deep refusal), never another exception; a query that parses is
    evaluated on a trace without one."""
    try:
        query = parse(text)
    except (TraceQLError, QueryTooComplexError):
        return
    spans = [_span(), _span(span_id="ef" * 8, parent_span_id="cd" * 8, kind=SpanKind.CLIENT)]
    found = trace_matches(query, spans)
    assert all(any(span is s for s in spans) for span in found)
