from __future__ import annotations

from meshscope.ingest.delta import DeltaToCumulative
from meshscope.model.metrics import Histogram

KEY = ("requests_total", (("job", "a"),))


def test_sums_accumulate_per_series() -> None:
    delta = DeltaToCumulative()
    assert delta.add_sum(KEY, 2) == 2
    assert delta.add_sum(KEY, 3) == 5
    assert delta.add_sum(("other", ()), 1) == 1


def test_histograms_accumulate_and_restart_on_new_bounds() -> None:
    delta = DeltaToCumulative()
    first = Histogram((1.0,), (1, 2), 5.0, 3)
    assert delta.add_histogram(KEY, first) == first
    assert delta.add_histogram(KEY, first) == Histogram((1.0,), (2, 4), 10.0, 6)
    other = Histogram((2.0,), (1, 0), 1.0, 1)
    assert delta.add_histogram(KEY, other) == other


def test_oldest_series_are_forgotten_beyond_the_limit() -> None:
    delta = DeltaToCumulative(max_series=2)
    for name in ("a", "b", "c"):
        delta.add_sum((name, ()), 1)
    assert len(delta) == 2
    assert delta.add_sum(("a", ()), 1) == 1  # restarted
    assert delta.add_sum(("c", ()), 1) == 2


def test_undo_takes_a_refused_requests_deltas_out_again() -> None:
    delta = DeltaToCumulative()
    delta.add_sum(KEY, 1)
    with delta.recording() as refused:
        assert delta.add_sum(KEY, 10) == 11
        assert delta.add_sum(("new", ()), 4) == 4
        assert delta.add_histogram(KEY, Histogram((1.0,), (1, 2), 5.0, 3)) is not None
    assert delta.add_sum(KEY, 1) == 12  # decoded meanwhile: it saw the refused delta
    delta.undo(refused)
    assert delta.add_sum(KEY, 1) == 3  # 1 + 1 + 1: the 10 is gone
    assert delta.add_sum(("new", ()), 2) == 2  # a series only the refused request started
    assert len(delta) == 2  # KEY and "new": the histogram it started is forgotten too
    with delta.recording() as refused:
        delta.add_histogram(KEY, Histogram((1.0,), (1, 1), 1.0, 2))
        delta.add_histogram(KEY, Histogram((1.0,), (0, 3), 2.0, 3))
    delta.undo(refused[1:])
    assert delta.add_histogram(KEY, Histogram((1.0,), (0, 0), 0.0, 0)) == Histogram(
        (1.0,), (1, 1), 1.0, 2
    )


def test_a_total_that_does_not_fit_changes_nothing() -> None:
    delta = DeltaToCumulative()
    delta.add_histogram(KEY, Histogram((1.0,), (1, 2), 5.0, 3))
    with delta.recording() as changes:
        refused = delta.add_histogram(
            KEY, Histogram((1.0,), (1, 0), 1.0, 1), fits=lambda h: h.count < 4
        )
    assert refused is None and changes == []
    assert delta.add_histogram(KEY, Histogram((1.0,), (0, 0), 0.0, 0)) == Histogram(
        (1.0,), (1, 2), 5.0, 3
    )
