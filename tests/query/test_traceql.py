"""The TraceQL subset: parsing, refusals that name what is unsupported, span matching."""

from __future__ import annotations

import pytest

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query.tempo_search import TraceFilter, _narrowing, tag_search
from meshscope.query.traceql import (
    BoolOp,
    Condition,
    Contains,
    MatchAll,
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
    (node,) = query.sets
    assert isinstance(node, BoolOp) and node.op == "&&"
    assert node.left == Condition("resource.service.name", "=", "cart")
    assert isinstance(node.right, BoolOp) and node.right.op == "||"
    assert parse("{}").sets == (MatchAll(),)
    two = parse("{ status = error } || { duration > 1.5s }")
    assert two.ops == ("||",)
    assert two.sets[0] == Condition("status", "=", StatusCode.ERROR)
    assert two.sets[1] == Condition("duration", ">", 1_500_000_000)
    assert parse("{ kind = server }").sets[0] == Condition("kind", "=", SpanKind.SERVER)


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
        ('{ .customer.tier = "free" || span.http.status_code > 499 }', True),
        ("{ (span.http.status_code < 300 || .flag = false) && kind = server }", False),
    ],
)
def test_matching_one_span(query: str, expected: bool) -> None:
    (node,) = parse(query).sets
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
    (node,) = parse(query).sets
    span = _span(attributes={"http.status_code": 500, "customer.tier": "gold", "flag": True,
                             "code": "500"})  # fmt: skip
    assert matches(node, span) is expected


def test_and_and_or_bind_alike_left_to_right_as_in_tempo() -> None:
    """Tempo's grammar has `%left AND OR`: `{ a || b && c }` is `{ (a || b) && c }`."""
    (node,) = parse('{ .customer.tier = "gold" || .flag = true && .region = "us" }').sets
    assert isinstance(node, BoolOp) and node.op == "&&"
    assert matches(node, _span()) is False  # (true || true) && false
    (node,) = parse('{ .region = "us" && .flag = true || .customer.tier = "gold" }').sets
    assert matches(node, _span()) is True  # (false && true) || true


def test_span_sets_combine_at_trace_level() -> None:
    spans = [_span(), _span(span_id="ef" * 8, service="db", name="SELECT", kind=SpanKind.CLIENT)]
    both = parse('{ resource.service.name = "cart" } && { name = "SELECT" }')
    assert [[s.service for s in found] for found in trace_matches(both, spans)] == [
        ["cart"], ["db"],
    ]  # fmt: skip
    assert trace_matches(parse('{ name = "SELECT" } && { name = "none" }'), spans) == []
    either = trace_matches(parse('{ name = "none" } || { kind = client }'), spans)
    assert [len(found) for found in either] == [0, 1]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("{ status = error } | count() > 2", "pipelines"),
        ('{ name = "a" } >> { name = "b" }', "structural operator >>"),
        ("{ foo = 1 }", "unknown field 'foo'"),
        ("{ .x = }", "bad value"),
        ('{ .x =~ "(" }', "bad regex"),
        ("{ .x = 1", "missing"),
        ("{ duration > fast }", "bad value"),
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
    assert query.sets[0] == Condition(".flag", "=", Text("true"))
    assert query.ops == ("&&", "&&")
    assert _narrowing(query) == {"attributes": {"flag": "true"}}
    assert trace_filter == TraceFilter(min_duration_ns=5 * MS, root_name="GET")
    span = _span(status_code=StatusCode.ERROR)
    assert trace_matches(query, [span])
    assert not trace_matches(query, [_span()])  # status unset
    assert matches(Condition("name", "=", Contains("T /ca")), span)
    assert not matches(Condition("name", "=", Contains("get")), span)  # case-sensitive
    assert matches(Condition(".http.status_code", "=", Text("500")), span)
    assert not trace_filter.keeps(span, 0, 4 * MS) and trace_filter.keeps(span, 0, 5 * MS)
