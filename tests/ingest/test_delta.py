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
