"""Each tail-sampling policy on traces built to match or miss it."""

from __future__ import annotations

import random

import pytest

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.pipeline.sampling.facts import SpanMatcher
from meshscope.pipeline.sampling.policies import (
    AndPolicy,
    CompositePolicy,
    Decision,
    LatencyPolicy,
    NumericAttributePolicy,
    ProbabilisticPolicy,
    StatusCodePolicy,
    StringAttributePolicy,
    TraceData,
    build_policy,
)
from meshscope.pipeline.sampling.policy_config import (
    AlwaysSample,
    Composite,
    LatencyThreshold,
    NumericAttribute,
    Probabilistic,
    RateAllocation,
    StatusCodeMatch,
    StringAttribute,
    SubPolicy,
)
from tests.pipeline.sampling.traces import make_trace, trace_of

SEC = 10**9


M = SpanMatcher()  # the per-span predicates of every policy built here, one bit each


def with_attrs(rng: random.Random, attributes: dict[str, AttrValue], **kw: object) -> TraceData:
    spans = make_trace(rng, attributes=attributes, **kw).spans  # type: ignore[arg-type]
    return trace_of(spans, M)


def test_string_attribute_exact_and_regex_and_resource() -> None:
    rng = random.Random(1)
    exact = StringAttributePolicy(StringAttribute("http.route", ("/pay", "/cart")), M)
    regex = StringAttributePolicy(StringAttribute("http.route", (r"^/api/v\d+/",), True), M)
    assert exact.evaluate("", with_attrs(rng, {"http.route": "/pay"}), 0) is Decision.SAMPLED
    assert exact.evaluate("", with_attrs(rng, {"http.route": "/pay/x"}), 0) is Decision.NOT_SAMPLED
    assert exact.evaluate("", with_attrs(rng, {"http.route": 5}), 0) is Decision.NOT_SAMPLED
    assert regex.evaluate("", with_attrs(rng, {"http.route": "/api/v2/x"}), 0).samples
    assert not regex.evaluate("", with_attrs(rng, {"http.route": "/api/vx/"}), 0).samples
    span = make_trace(rng).spans[0]
    resourced = Span(span.trace_id, span.span_id, "op", "svc", 0, 1, resource={"env": "prod"})
    env = StringAttributePolicy(StringAttribute("env", ("prod",)), M)
    assert env.evaluate("", trace_of([resourced], M), 0) is Decision.SAMPLED


def test_numeric_attribute_bounds_are_inclusive_and_optional() -> None:
    rng = random.Random(2)
    between = NumericAttributePolicy(NumericAttribute("http.status_code", 500, 599), M)
    at_least = NumericAttributePolicy(NumericAttribute("retries", min_value=3), M)
    not_5xx = NumericAttributePolicy(NumericAttribute("http.status_code", 500, 599, True), M)
    for value, expected in ((499, False), (500, True), (599, True), (600, False), (True, False)):
        trace = with_attrs(rng, {"http.status_code": value})
        assert between.evaluate("", trace, 0).samples is expected, value
    assert at_least.evaluate("", with_attrs(rng, {"retries": 3.0}), 0).samples
    assert not at_least.evaluate("", with_attrs(rng, {"retries": 2}), 0).samples
    veto = not_5xx.evaluate("", with_attrs(rng, {"http.status_code": 503}), 0)
    assert veto is Decision.INVERTED_NOT_SAMPLED
    assert not_5xx.evaluate("", with_attrs(rng, {}), 0) is Decision.INVERTED_SAMPLED


def test_and_samples_only_when_every_sub_policy_does() -> None:
    rng = random.Random(3)
    policy = AndPolicy(
        [
            StatusCodePolicy(StatusCodeMatch(("ERROR",)), M),
            StringAttributePolicy(StringAttribute("tier", ("gold",)), M),
        ]
    )
    gold_error = with_attrs(rng, {"tier": "gold"}, error=True)
    gold_ok = with_attrs(rng, {"tier": "gold"})
    free_error = with_attrs(rng, {"tier": "free"}, error=True)
    assert policy.evaluate("", gold_error, 0) is Decision.SAMPLED
    assert policy.evaluate("", gold_ok, 0) is Decision.NOT_SAMPLED
    assert policy.evaluate("", free_error, 0) is Decision.NOT_SAMPLED


def test_latency_upper_threshold() -> None:
    rng = random.Random(4)
    band = LatencyPolicy(LatencyThreshold(100, 200))
    for duration, expected in ((99.0, False), (100.0, True), (200.0, True), (201.0, False)):
        trace = trace_of(make_trace(rng, duration_ms=duration).spans, M)
        assert band.evaluate("", trace, 0).samples is expected, duration


@pytest.mark.parametrize("salt", ["", "layer-2"])
def test_probabilistic_is_consistent_per_trace_id(salt: str) -> None:
    rng = random.Random(5)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(20000)]
    first, second = (ProbabilisticPolicy(Probabilistic(25, salt)) for _ in range(2))
    empty = TraceData(0)
    decisions = [first.evaluate(t, empty, 0).samples for t in ids]
    assert decisions == [second.evaluate(t, empty, 0).samples for t in ids]
    # binomial(20000, 0.25): sd ~61
    assert abs(sum(decisions) - 5000) < 5 * 62


def test_salted_probabilistic_is_independent_of_the_unsalted_one() -> None:
    rng = random.Random(6)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(20000)]
    plain = ProbabilisticPolicy(Probabilistic(50))
    salted = ProbabilisticPolicy(Probabilistic(50, "x"))
    both = sum(
        plain.evaluate(t, TraceData(0), 0).samples and salted.evaluate(t, TraceData(0), 0).samples
        for t in ids
    )
    assert abs(both - 5000) < 5 * 62  # independent: 25%, not 50%


def test_composite_gives_each_sub_policy_its_share_per_second() -> None:
    rng = random.Random(7)
    settings = Composite(
        max_total_spans_per_second=100,
        policy_order=("errors", "rest"),
        composite_sub_policy=(
            SubPolicy("errors", StatusCodeMatch(("ERROR",))),
            SubPolicy("rest", AlwaysSample()),
        ),
        rate_allocation=(RateAllocation("errors", 60),),
    )
    policy = build_policy(settings, M)
    assert isinstance(policy, CompositePolicy)
    errors = [trace_of(make_trace(rng, error=True, n_spans=10).spans, M) for _ in range(10)]
    others = [trace_of(make_trace(rng, n_spans=10).spans, M) for _ in range(10)]
    # second 1: "rest" may take 40 spans (4 traces), "errors" 60 (6 traces); an error trace
    # over the errors' share falls through to "rest", whose share is used up by then
    kept_others = sum(policy.evaluate("", t, 1 * SEC).samples for t in others)
    kept_errors = sum(policy.evaluate("", t, 1 * SEC).samples for t in errors)
    assert (kept_others, kept_errors) == (4, 6)
    # a new second: budgets start again
    assert policy.evaluate("", others[0], 2 * SEC).samples
