"""The commit window: holds small groups at low load while holding pays, never otherwise."""

from __future__ import annotations

import pytest

from meshscope.pipeline.commit_window import GAIN_S, MEMORY, CommitWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def window(clock: Clock, seconds: float = 1.0, items: int = 512) -> CommitWindow:
    return CommitWindow(seconds, items, probe_every_s=10.0, clock=clock)


def test_a_small_group_soon_after_the_last_request_is_held_until_the_window_ends() -> None:
    clock = Clock()
    hold = window(clock).hold(first_at=99.9, previous_at=99.5, items=5)
    assert hold is not None
    assert hold.began == 100.0 and hold.until == pytest.approx(100.9)


@pytest.mark.parametrize(
    ("first_at", "previous_at", "items", "why"),
    [
        (100.0, None, 5, "the first request the writer sees"),
        (100.0, 98.5, 5, "an idle server answers a lone request at once"),
        (100.0, 99.9, 512, "a full batch is never held"),
        (98.9, 98.8, 5, "the group already waited the window out (the store was busy)"),
    ],
)
def test_groups_that_are_not_held(
    first_at: float, previous_at: float | None, items: int, why: str
) -> None:
    assert window(Clock()).hold(first_at, previous_at, items) is None, why


def test_a_window_of_zero_seconds_is_off() -> None:
    assert window(Clock(), seconds=0).hold(100.0, 99.99, 1) is None


def test_unpaid_holds_turn_the_window_off_and_a_probe_turns_it_back_on() -> None:
    clock = Clock()
    commit = window(clock)
    hold = commit.hold(100.0, 99.9, 5)
    assert hold is not None
    # Only a request that came at once joined (it would have joined without the hold).
    commit.done(hold, [hold.began + GAIN_S / 2])
    assert not commit.on and commit.holds == 1 and commit.paid_holds == 0
    clock.now += 5.0
    assert commit.hold(clock.now, clock.now - 0.1, 5) is None  # off: no hold till the probe
    clock.now += 5.0
    probe = commit.hold(clock.now, clock.now - 0.1, 5)
    assert probe is not None  # 10 s since the last try: one probe
    commit.done(probe, [probe.began + 0.4])  # a request came during it: paid
    assert commit.on and commit.paid_holds == 1
    assert commit.hold(clock.now, clock.now - 0.1, 5) is not None  # on again


def test_the_window_stays_on_while_one_of_the_last_holds_paid() -> None:
    clock = Clock()
    commit = window(clock)
    first = commit.hold(100.0, 99.9, 5)
    assert first is not None
    commit.done(first, [first.began + 0.3])
    for _ in range(MEMORY - 1):
        hold = commit.hold(clock.now, clock.now - 0.1, 5)
        assert hold is not None
        commit.done(hold, [])
        assert commit.on
    last = commit.hold(clock.now, clock.now - 0.1, 5)
    assert last is not None
    commit.done(last, [])  # MEMORY holds in a row did not pay
    assert not commit.on


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        CommitWindow(-1.0, 512)
