"""Exponential histograms: the fast paths (one scale, one histogram) equal the general ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshscope.model import exphistogram
from meshscope.model.exphistogram import ExpHistogram


def histograms(scale: int | None = None) -> st.SearchStrategy[ExpHistogram]:
    return st.builds(
        ExpHistogram,
        st.just(scale) if scale is not None else st.integers(0, 4),
        st.integers(-10, 10),
        st.lists(st.integers(0, 5), max_size=30).map(tuple),
        st.integers(0, 5),
        st.just(0.5),
        st.just(9.0),
    )


def general_difference(base: ExpHistogram, last: ExpHistogram) -> ExpHistogram | None:
    """The sparse-dict definition the fast path must equal."""
    now, before = last.buckets(), base.buckets()
    grown = {i: now.get(i, 0) - before.get(i, 0) for i in now.keys() | before.keys()}
    zero = last.zero_count - base.zero_count
    if zero < 0 or any(count < 0 for count in grown.values()):
        return None
    return exphistogram.make(last.scale, grown, zero, last.min, last.max)


@given(histograms(3), histograms(3))
def test_same_scale_difference_equals_the_sparse_one(
    base: ExpHistogram, last: ExpHistogram
) -> None:
    assert exphistogram.difference(base, last) == general_difference(base, last)


@given(histograms(3), st.lists(st.integers(0, 3), max_size=30))
def test_a_grown_snapshot_gives_back_what_was_added(base: ExpHistogram, added: list[int]) -> None:
    counts = [*base.counts, *[0] * max(0, len(added) - len(base.counts))]
    for k, count in enumerate(added):
        counts[k] += count
    last = ExpHistogram(3, base.offset, tuple(counts), base.zero_count + 1, 0.5, 9.0)
    grown = exphistogram.difference(base, last)
    assert grown is not None
    assert grown.count == sum(added) + 1
    assert grown == general_difference(base, last)


@given(histograms())
def test_merging_one_histogram_equals_merging_it_with_an_empty_one(hist: ExpHistogram) -> None:
    empty = ExpHistogram(hist.scale, 0, (), 0, hist.min, hist.max)
    assert exphistogram.merge([hist]) == exphistogram.merge([hist, empty])


@pytest.mark.parametrize(
    ("base", "last"),
    [
        (ExpHistogram(3, 5, (0, 0), 0, 0.5, 9.0), ExpHistogram(3, 0, (), 0, 0.5, 9.0)),
        (ExpHistogram(3, 5, (1, 2), 0, 0.5, 9.0), ExpHistogram(3, 0, (), 0, 0.5, 9.0)),
        (ExpHistogram(3, 0, (), 0, 0.5, 9.0), ExpHistogram(3, -4, (0, 3, 0), 2, 0.5, 9.0)),
        (ExpHistogram(3, 10, (1,), 0, 0.5, 9.0), ExpHistogram(3, -2, (4, 0, 0), 1, 0.5, 9.0)),
    ],
)
def test_same_scale_difference_edge_cases(base: ExpHistogram, last: ExpHistogram) -> None:
    assert exphistogram.difference(base, last) == general_difference(base, last)


def reference_quantile(q: float, hist: ExpHistogram) -> float | None:
    """The rank walked bucket by bucket: what `quantile` must equal."""
    total = hist.count
    if total == 0:
        return None
    rank = max(1.0, q * total)
    seen = float(hist.zero_count)
    if seen >= rank:
        return 0.0
    for k, count in enumerate(hist.counts):
        seen += count
        if seen >= rank:
            middle: float = (2.0 ** (2.0**-hist.scale)) ** (hist.offset + k + 0.5)
            return min(max(middle, hist.min), hist.max)
    return hist.max


@given(histograms(), st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantile_is_the_bucket_where_the_rank_is_reached(hist: ExpHistogram, q: float) -> None:
    assert exphistogram.quantile(q, hist) == reference_quantile(q, hist)
