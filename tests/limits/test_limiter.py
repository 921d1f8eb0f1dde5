from __future__ import annotations

import pytest

from meshscope.limits.config import LimitsConfig, TenantLimits
from meshscope.limits.limiter import OTHER, Limiter, RateLimitedError, TenantLabels, TooLargeError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(**kwargs: object) -> tuple[Limiter, FakeClock]:
    clock = FakeClock()
    defaults = TenantLimits(spans_per_second=10, spans_burst=20, request_bytes_per_second=100)
    config = LimitsConfig(defaults=defaults, **kwargs)  # type: ignore[arg-type]
    return Limiter(config, clock), clock


def test_over_the_rate_is_refused_with_the_wait_and_nothing_taken() -> None:
    limiter, clock = _limiter()
    limiter.admit("a", [("spans", 15)])
    with pytest.raises(RateLimitedError) as raised:
        limiter.admit("a", [("spans", 10)])
    error = raised.value
    assert error.wait_s == pytest.approx(0.5) and error.retry_after_s == 1
    assert "tenant 'a' is over its limit of 10 spans/s (burst 20)" in str(error)
    limiter.admit("a", [("spans", 5)])  # the refused 10 took nothing: 5 are still there
    clock.now += 1
    limiter.admit("a", [("spans", 10)])
    assert limiter.items["a", "spans"] == 30
    assert limiter.refused_items["a", "spans", "rate_limited"] == 10
    assert limiter.refused_requests["a", "spans_rate"] == 1


def test_tenants_have_their_own_buckets() -> None:
    limiter, _ = _limiter()
    limiter.admit("a", [("spans", 20)])
    limiter.admit("b", [("spans", 20)])  # b is not slowed down by a
    with pytest.raises(RateLimitedError):
        limiter.admit("a", [("spans", 1)])


def test_a_request_over_the_burst_is_too_large() -> None:
    limiter, _ = _limiter()
    with pytest.raises(TooLargeError, match="over the burst of 20") as raised:
        limiter.admit("a", [("spans", 21)])
    assert raised.value.status == 413
    with pytest.raises(TooLargeError, match="200 request bytes"):
        limiter.admit("a", [("bytes", 200)])
    assert limiter.refused_requests["a", "too_large"] == 2


def test_a_request_refused_on_one_signal_takes_nothing_from_the_others() -> None:
    limiter, _ = _limiter()
    limiter.admit("a", [("bytes", 100)])
    with pytest.raises(RateLimitedError, match="request bytes/s"):
        limiter.admit("a", [("bytes", 1), ("spans", 5)])
    limiter.admit("a", [("spans", 20)])  # all 20 still there


def test_unlimited_signals_are_counted_not_limited() -> None:
    limiter, _ = _limiter()
    limiter.admit("a", [("logs", 10**9), ("metrics", 0)])
    assert limiter.items["a", "logs"] == 10**9
    assert ("a", "metrics") not in limiter.items


def test_overrides_per_tenant() -> None:
    clock = FakeClock()
    config = LimitsConfig(
        defaults=TenantLimits(spans_per_second=1),
        tenants={"big": TenantLimits(spans_per_second=1000)},
    )
    limiter = Limiter(config, clock)
    limiter.admit("big", [("spans", 1000)])
    with pytest.raises(TooLargeError):
        limiter.admit("small", [("spans", 2)])


def test_tenants_tracked_are_bounded() -> None:
    limiter, clock = _limiter(max_tenants=3)
    for name in ("a", "b", "c"):
        limiter.admit(name, [("spans", 20)])
    limiter.admit("d", [("spans", 20)])  # no bucket is idle: d gets the shared one
    with pytest.raises(RateLimitedError):
        limiter.admit("e", [("spans", 1)])  # ... which e shares
    assert limiter.tenants() == 4  # three tenants and the shared buckets
    clock.now += 10  # every bucket full again: the idle tenants are forgotten
    limiter.admit("f", [("spans", 20)])
    assert limiter.tenants() == 2


def test_label_values_are_capped_and_named_tenants_kept() -> None:
    labels = TenantLabels(2, named=["vip"])
    assert [labels(t) for t in ("a", "b", "c", "vip", "a", "d")] == ["a", "b", OTHER, "vip",
                                                                     "a", OTHER]  # fmt: skip
