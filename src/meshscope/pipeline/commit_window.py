"""The commit window: at low load, requests that arrive close together share one durable commit.

Every store transaction is made durable before its requests are answered, and each durable
commit costs a fixed amount of disk writing whatever it holds: DuckDB appends its log and
syncs it, and the kernel then writes the log's last 4 KiB page again for the next commit's
append (ClickHouse makes one part per insert). At 10 spans/s from 10 SDKs (5 spans a request,
2 requests a second) that fixed cost is most of what is written (ADR 0018). So a small group
may be held open for up to `seconds` after its first request came in, until it holds
`items`, for the next requests to join it: what ClickHouse's `async_insert` with
`wait_for_async_insert` and PostgreSQL's `commit_delay` do. Nothing is answered before it is
durable; the cost is up to `seconds` of acknowledgement latency while the window is on.

A hold only pays when other requests are coming: one client that sends a request, waits for
the answer, then sends the next gains nothing and would wait every time. So the window is
adaptive:
- a group is held only when its first request came less than `seconds` after the request
  before it (an idle server answers a lone request at once);
- a hold has paid when a request arrived during it later than `GAIN_S` after it began (a
  request that came at once would have joined the group anyway);
- the window is on while one of the last `MEMORY` holds paid; after that many holds that did
  not, it is off, and one hold `probe_every_s` after the last tries again.
A group of `items` or more is never held, so a client that sends full batches in a closed
loop (an SDK with a backlog sends 512 spans at a time) is never slowed down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

GAIN_S = 0.05
"""A request that joins a held group later than this after the hold began paid for it."""
MEMORY = 4
"""How many holds the window remembers: it is on while one of them paid."""
PROBE_EVERY_S = 10.0
"""While the window is off, one hold this often tries whether it pays again (a client that
waits for each answer loses at most the window's `seconds` once in this long)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A group held open: until `until` (monotonic seconds); `began` is when the hold began."""

    began: float
    until: float


class CommitWindow:
    """Decides whether a group waits for more requests, and learns whether waiting pays."""

    def __init__(
        self,
        seconds: float,
        items: int,
        probe_every_s: float = PROBE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not seconds >= 0:  # NaN too
            raise ValueError("the commit window must be >= 0 seconds")
        self.seconds = seconds
        self.items = items
        self.probe_every_s = probe_every_s
        self._clock = clock
        self._paid: deque[bool] = deque(maxlen=MEMORY)
        self._last_hold = -float("inf")  # when the last hold began
        self.holds = 0
        self.paid_holds = 0

    @property
    def on(self) -> bool:
        """Whether a hold paid lately (or none was tried yet)."""
        return not self._paid or any(self._paid)

    def hold(self, first_at: float, previous_at: float | None, items: int) -> Hold | None:
        """Whether the group whose first request came at `first_at` (after one at
        `previous_at`) and holds `items` waits for more, and until when."""
        if self.seconds <= 0 or items >= self.items or previous_at is None:
            return None
        if first_at - previous_at >= self.seconds:
            return None
        now = self._clock()
        until = first_at + self.seconds
        if until <= now:  # the group already waited that long (the store was busy)
            return None
        if not self.on and now - self._last_hold < self.probe_every_s:
            return None
        self._last_hold = now
        return Hold(now, until)

    def done(self, hold: Hold, joined_at: list[float]) -> None:
        """Learn from a hold that ended: `joined_at` are when the requests that joined the
        group during it came in."""
        paid = any(at - hold.began > GAIN_S for at in joined_at)
        self._paid.append(paid)
        self.holds += 1
        self.paid_holds += paid
