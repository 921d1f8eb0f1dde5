"""What one query may cost: a deadline, and limits on series, samples, subquery steps and
nesting depth, checked cooperatively by the evaluators.

A read handler opens a Budget for its request (`running`); the budget travels in a context
variable into the worker thread the query runs in, so evaluators deep down call `check()` /
`charge_samples()` without it being passed along. A request with no budget open (tests,
internal callers) runs unlimited. Python threads cannot be interrupted from outside, so a
timed-out or cancelled query stops at the next check: every loop over series, steps, records
or traces has one; a store statement running in C++ (DuckDB) or on a server (ClickHouse) is
stopped by `meshscope.stopping` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from meshscope import stopping

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The `query:` settings (config.py; defaults and their reasons in docs/configuration.md)."""

    timeout_seconds: float = 120.0
    max_series: int = 50_000
    max_samples: int = 10_000_000
    max_subquery_steps: int = 100_000
    max_depth: int = 150
    max_label_values: int = 50_000


class QueryTimeoutError(Exception):
    """The query ran past its deadline or its client went away (503, `timeout`)."""


class QueryLimitError(Exception):
    """The query would exceed one of its limits (422, `execution`)."""


class QueryTooComplexError(ValueError):
    """The query text nests deeper than the limit (400, refused before parsing)."""


class Budget:
    def __init__(self, limits: QueryLimits, timeout_seconds: float | None = None) -> None:
        self.limits = limits
        seconds = limits.timeout_seconds
        if timeout_seconds is not None:
            seconds = min(seconds, timeout_seconds)
        self.timeout_seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancelled = False
        self.series = 0
        self.samples = 0
        self.warnings: list[str] = []

    def narrow(self, timeout_seconds: float) -> None:
        """Apply a client's own timeout (Prometheus' `timeout`), never beyond the setting."""
        if timeout_seconds < self.timeout_seconds:
            self.deadline -= self.timeout_seconds - timeout_seconds
            self.timeout_seconds = timeout_seconds

    def cancel(self) -> None:
        self.cancelled = True

    def spent(self) -> bool:
        """Whether the query must stop: cancelled, or past its deadline."""
        return self.cancelled or time.monotonic() > self.deadline

    def remaining_s(self) -> float:
        """Seconds left before the deadline (negative past it)."""
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancelled:
            raise QueryTimeoutError("query cancelled: the client went away")
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError(
                f"query timed out in expression evaluation after {self.timeout_seconds:g}s"
            )


_current: ContextVar[Budget | None] = ContextVar("meshscope_query_budget", default=None)


@contextmanager
def running(budget: Budget) -> Iterator[Budget]:
    """Run a query under `budget`: evaluators `check()` it, and a store's own engine is
    interrupted once it is spent (`meshscope.stopping`)."""
    token = _current.set(budget)
    try:
        with stopping.watched(budget):
            yield budget
    finally:
        _current.reset(token)


def current() -> Budget | None:
    return _current.get()


def check() -> None:
    """Raise QueryTimeoutError when the running query's deadline passed or it was cancelled."""
    budget = _current.get()
    if budget is not None:
        budget.check()


def warn(message: str) -> None:
    """Tell the running query's client that its answer is incomplete (e.g. a ClickHouse
    shard could not be reached): each API puts it where its clients look (api/handlers.py).
    Outside a query (internal readers such as the SLO alerts, tests) it is only logged, at
    debug level: what made it partial logs its own warning (a shard found down, once)."""
    budget = _current.get()
    if budget is None:
        log.debug("query answer incomplete: %s", message)
    elif message not in budget.warnings:
        budget.warnings.append(message)


def limits() -> QueryLimits:
    budget = _current.get()
    return budget.limits if budget is not None else _UNLIMITED


_UNLIMITED = QueryLimits(
    timeout_seconds=float("inf"), max_series=2**62, max_samples=2**62,
    max_subquery_steps=2**62, max_depth=10_000, max_label_values=2**62,
)  # fmt: skip


def charge(series: int, samples: int) -> None:
    """Count series and samples a query loads (or allocates); over a limit raises
    QueryLimitError, as Prometheus' `query.max-samples` does."""
    budget = _current.get()
    if budget is None:
        return
    budget.check()
    budget.series += series
    budget.samples += samples
    if budget.series > budget.limits.max_series:
        raise QueryLimitError(
            f"query selects more than {budget.limits.max_series} series"
            " (setting query.max_series); narrow it with label matchers"
        )
    if budget.samples > budget.limits.max_samples:
        raise QueryLimitError(
            "query processing would load too many samples into memory in query execution"
            f" (more than {budget.limits.max_samples}, setting query.max_samples)"
        )


TRUNCATED = "results truncated due to limit"
"""Prometheus' warning on a listing answer that was cut."""


def listing_room(series: int) -> int:
    """How many of `series` more series a listing (`/api/v1/series`, `labels`, label values)
    may take, charging them: past query.max_series a listing is cut, with Prometheus'
    `results truncated due to limit` warning, not refused as a query is (Grafana's label
    browser then still works, over the first series found)."""
    budget = _current.get()
    if budget is None:
        return series
    budget.check()
    room = max(0, min(series, budget.limits.max_series - budget.series))
    budget.series += room
    budget.samples += room
    if room < series:
        warn(TRUNCATED)
    return room


def check_steps(steps: int) -> None:
    """A subquery's inner evaluation steps against query.max_subquery_steps."""
    cap = limits().max_subquery_steps
    if steps > cap:
        raise QueryLimitError(
            f"subquery would evaluate {steps} steps, more than {cap}"
            " (setting query.max_subquery_steps); use a coarser subquery step"
        )


_OPEN = "([{"
_CLOSE = ")]}"
_OPERATORS = frozenset("+-*/%^<>=!|&~")  # `~`: TraceQL's sibling operator (LogQL's `|~` counts 2)
_WORD_OPERATORS = frozenset(("and", "or", "unless"))


def check_depth(text: str, max_depth: int | None = None) -> None:
    """Refuse query text whose expression tree could nest deeper than `max_depth` (default:
    the running query's limit), before any parser sees it. The bound is cheap and
    conservative: brackets nested plus operator characters (and `and`/`or`/`unless`) outside
    quotes and label matchers; each binary or unary operator can add one level (left-nested
    chains like `1+1+...` nest per operator) and parsers/evaluators recurse once per level."""
    cap = limits().max_depth if max_depth is None else max_depth
    depth = deepest = operators = braces = 0
    quote = ""
    escaped = False
    word = ""
    for char in text:
        if char.isalpha() and not quote:
            word += char
            continue
        if word:
            operators += word in _WORD_OPERATORS
            word = ""
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'`":
            quote = char
        elif char in _OPEN:
            depth += 1
            braces += char == "{"
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth -= 1
            braces -= char == "}"
        elif char in _OPERATORS and braces <= 0:
            operators += 1
        if deepest + operators > cap:
            raise _too_deep(cap)
    if deepest + operators + (word in _WORD_OPERATORS) > cap:
        raise _too_deep(cap)


def _too_deep(cap: int) -> QueryTooComplexError:
    return QueryTooComplexError(
        f"the query nests deeper than {cap} levels: at most {cap} nested brackets plus"
        " operators are allowed (setting query.max_depth)"
    )
