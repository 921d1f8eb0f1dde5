"""The token bucket on a fake clock: never more than `rate * t + burst` over any interval,
everything under the rate, and a `wait` that is exactly when the request fits."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.limits.bucket import TokenBucket

EPSILON = 1e-9  # float rounding of the refill arithmetic, relative


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.5, 1000),
    burst=st.floats(1, 5000),
    requests=st.lists(
        st.tuples(st.floats(0, 5), st.integers(1, 200)),  # (seconds since the last, cost)
        min_size=1,
        max_size=120,
    ),
)
def test_never_admits_more_than_rate_times_t_plus_burst(
    rate: float, burst: float, requests: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    admitted: list[tuple[float, int]] = []
    for gap, cost in requests:
        now += gap
        if bucket.wait(cost, now) == 0:
            bucket.take(cost, now)
            admitted.append((now, cost))
    # Every interval [t_i, t_j] between two admissions: at most rate * (t_j - t_i) + burst.
    for i, (start, _) in enumerate(admitted):
        total = 0
        for end, cost in admitted[i:]:
            total += cost
            bound = rate * (end - start) + burst
            assert total <= bound * (1 + EPSILON), (total, bound)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(1, 1000),
    headroom=st.floats(1.0, 3.0),
    costs=st.lists(st.integers(1, 50), min_size=1, max_size=100),
)
def test_admits_everything_sent_under_the_rate(
    rate: float, headroom: float, costs: list[int]
) -> None:
    """Requests spaced so that the offered rate stays at or below `rate`, each within the
    burst: all admitted."""
    burst = float(max(costs))
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    for cost in costs:
        assert bucket.wait(cost, now) == 0, (now, cost)
        bucket.take(cost, now)
        now += cost / rate * headroom  # the time this cost takes to refill, or more


@given(
    rate=st.floats(0.5, 100),
    burst=st.floats(1, 100),
    cost=st.integers(1, 100),
    spent=st.floats(0, 100),
)
def test_wait_is_when_the_request_fits(rate: float, burst: float, cost: int, spent: float) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    bucket.take(min(spent, burst), 0.0)
    wait = bucket.wait(cost, 0.0)
    if cost > burst:
        assert math.isinf(wait)
        return
    if wait > 0:
        assert bucket.wait(cost, wait * (1 - 1e-6)) > 0  # just before: not yet
    assert bucket.wait(cost, wait * (1 + 1e-9) + 1e-12) == 0  # then: admitted


def test_a_new_bucket_is_full_and_a_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(10, 20, now=100.0)
    assert bucket.full(100.0)
    bucket.take(20, 100.0)
    assert bucket.wait(1, 99.0) == 0.1  # nothing refilled by going back
    assert bucket.wait(10, 101.0) == 0
    assert bucket.full(102.0)
