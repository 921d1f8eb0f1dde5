"""A token bucket: `rate` tokens per second, at most `burst` held, costs taken whole.

Time is passed in (seconds, from any monotonic clock), so tests drive it with a fake clock.
A request costing more than `burst` can never be admitted (`wait` is infinite); any other is
admitted as soon as the bucket holds its cost, and `wait` says how long that is. Over any
interval of t seconds a bucket admits at most `rate * t + burst` tokens (give or take a
billionth of the burst: float rounding is not held against a client sending at the rate).
"""

from __future__ import annotations

import math


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self.rate = rate
        self.burst = burst
        self.tokens = burst  # a new bucket is full
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:  # a clock that goes back adds nothing
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` tokens are there: 0 now, infinite if `cost` > `burst`."""
        if cost > self.burst:
            return math.inf
        self._refill(now)
        missing = cost - self.tokens
        # A billionth of the burst is float rounding of the refill, not a missing token.
        return 0.0 if missing <= self.burst * 1e-9 else missing / self.rate

    def take(self, cost: float, now: float) -> None:
        """Take `cost` tokens (after `wait` said 0)."""
        self._refill(now)
        self.tokens -= cost

    def retune(self, rate: float, burst: float, now: float) -> None:
        """New limits (a reloaded overrides file): tokens held are kept, up to the new burst."""
        self._refill(now)
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)

    def full(self, now: float) -> bool:
        """Whether the bucket is back to `burst`: then it is the same as a new one."""
        self._refill(now)
        return self.tokens >= self.burst
