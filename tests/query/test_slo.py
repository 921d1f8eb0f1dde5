"""SLIs, error budgets, burn rates and states from known span metrics (tests/query/slo_data)."""

from __future__ import annotations

import pytest

from meshscope.query.slo import (
    AVAILABILITY,
    LATENCY,
    OK,
    PAGE,
    TICKET,
    Slo,
    SloStatus,
    evaluate,
)
from meshscope.store.memory import MemoryStorage
from tests.query.slo_data import CALLS_PER_MINUTE, MINUTE, MINUTES, bad_between, load

DAY = 1440 * MINUTE
API = Slo("api-availability", "api", 0.99, DAY)


@pytest.fixture(scope="module")
def data() -> tuple[MemoryStorage, int]:
    return load()


def at(data: tuple[MemoryStorage, int], slo: Slo, minute: int) -> SloStatus:
    storage, start = data
    return evaluate(storage.metrics, slo, start + minute * MINUTE)


def burn(first: int, last: int, budget: float = 0.01) -> float:
    """Expected burn rate of the `api` spans of minutes first..last-1."""
    calls = CALLS_PER_MINUTE * (min(last, MINUTES) - max(0, first))
    return bad_between(first, last) / calls / budget


def test_sli_and_error_budget_over_the_window(data: tuple[MemoryStorage, int]) -> None:
    status = at(data, API, MINUTES)
    bad = 360 * 8 + 30 * 30
    total = MINUTES * CALLS_PER_MINUTE
    assert (status.events.total, status.events.bad) == (total, bad)  # no client or db spans
    assert status.sli == pytest.approx(1 - bad / total)
    assert status.budget_events == pytest.approx(0.01 * total)
    assert status.budget_consumed == pytest.approx(bad / (0.01 * total))
    assert status.budget_remaining == pytest.approx(1 - bad / (0.01 * total))


def test_a_window_shorter_than_the_data_counts_only_its_own_events(
    data: tuple[MemoryStorage, int],
) -> None:
    hourly = Slo("api-1h", "api", 0.9, 60 * MINUTE)
    status = at(data, hourly, 120)  # minutes 60-119: 8 bad of 100 each
    assert (status.events.total, status.events.bad) == (6000, 480)
    assert status.sli == pytest.approx(0.92)
    assert status.budget_consumed == pytest.approx(480 / 600)
    assert status.budget_remaining == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("minute", "state"),
    [
        (60, OK),  # nothing bad yet
        (120, OK),  # 8 % for an hour: burn 8 over 1 h and 30 m, but only 4 over 6 h
        (420, TICKET),  # six hours at 8 %: burn 8 > 6 on 6 h and 30 m, < 14.4 on 1 h
        (435, TICKET),  # burst for 15 min: 1 h burn (45 * 8 + 15 * 30) / 6000 / 0.01 = 13.5
        (450, PAGE),  # 1 h: (30 * 8 + 30 * 30) / 6000 -> 19; 5 m: 30
        (455, TICKET),  # 5 m quiet: no page; 30 m still (25 * 30) / 3000 -> 25 > 6
        (480, OK),  # 30 m quiet: the long windows still burn, the short ones do not
    ],
)
def test_states_follow_the_multiwindow_burn_rates(
    data: tuple[MemoryStorage, int], minute: int, state: str
) -> None:
    status = at(data, API, minute)
    page, ticket = status.burns
    assert page.long_rate == pytest.approx(burn(minute - 60, minute))
    assert page.short_rate == pytest.approx(burn(minute - 5, minute))
    assert ticket.long_rate == pytest.approx(burn(minute - 360, minute))
    assert ticket.short_rate == pytest.approx(burn(minute - 30, minute))
    assert status.state == state


def test_burn_rates_of_the_burst_are_exact(data: tuple[MemoryStorage, int]) -> None:
    page, ticket = at(data, API, 450).burns
    assert page.long_rate == pytest.approx((30 * 8 + 30 * 30) / 6000 / 0.01)
    assert page.short_rate == pytest.approx(30.0)
    assert ticket.long_rate == pytest.approx((330 * 8 + 30 * 30) / 36000 / 0.01)
    assert ticket.short_rate == pytest.approx(30.0)
    assert page.firing and ticket.firing


def test_a_window_reaching_before_the_data_counts_the_data_only(
    data: tuple[MemoryStorage, int],
) -> None:
    # The 6 h window reaches before minute 0: it covers minutes 0-119, 480 bad of 12000.
    _, ticket = at(data, API, 120).burns
    assert ticket.long_rate == pytest.approx(480 / 12000 / 0.01)


def test_latency_sli_counts_spans_slower_than_the_threshold(
    data: tuple[MemoryStorage, int],
) -> None:
    slow = Slo("api-latency", "api", 0.99, DAY, sli=LATENCY, threshold_ms=200)
    status = at(data, slow, MINUTES)
    availability = at(data, API, MINUTES)
    assert status.events == availability.events  # exactly the 300 ms spans are slow
    assert status.burns == tuple(
        type(b)(b.alert, b.long_rate, b.short_rate) for b in availability.burns
    )
    lenient = at(data, Slo("x", "api", 0.99, DAY, sli=LATENCY, threshold_ms=400), MINUTES)
    assert (lenient.events.bad, lenient.sli, lenient.state) == (0, 1.0, OK)
    strict = at(data, Slo("x", "api", 0.99, DAY, sli=LATENCY, threshold_ms=2), MINUTES)
    assert strict.events.bad == strict.events.total == MINUTES * CALLS_PER_MINUTE


def test_an_slo_without_events_is_ok_with_its_whole_budget(
    data: tuple[MemoryStorage, int],
) -> None:
    for slo in (
        Slo("none", "api", 0.999, DAY, operation="POST /nothing"),
        Slo("none", "unknown", 0.999, DAY, sli=AVAILABILITY),
    ):
        status = at(data, slo, MINUTES)
        assert status.sli is None and status.events.total == 0
        assert (status.budget_consumed, status.budget_remaining, status.state) == (0.0, 1.0, OK)
        assert all(b.long_rate == b.short_rate == 0 for b in status.burns)
    operation = at(data, Slo("op", "api", 0.99, DAY, operation="GET /"), MINUTES)
    assert operation.events == at(data, API, MINUTES).events
