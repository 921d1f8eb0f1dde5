"""`hex_words`, the access-log columns' ids: the same integers as `id128` / `id64`, whether
the ids are all of full width (one `bytes.fromhex`) or not (one by one)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.calls import Call
from meshscope.store.codec import call_columns, hex_words, id64, id128

DIGITS = "0123456789abcdefABCDEF"


def _ids(width: int) -> st.SearchStrategy[list[str]]:
    full = st.text(DIGITS, min_size=width, max_size=width)
    short = st.text(DIGITS, min_size=0, max_size=width)
    return st.one_of(st.lists(full, max_size=30), st.lists(st.one_of(full, short), max_size=30))


@settings(max_examples=300, deadline=None)
@given(_ids(32), _ids(16))
def test_ids_read_as_id128_and_id64_read_them(traces: list[str], spans: list[str]) -> None:
    assert [tuple(row) for row in hex_words(traces, 2).tolist()] == [id128(t) for t in traces]
    assert hex_words(spans, 1)[:, 0].tolist() == [id64(s) for s in spans]


def test_ids_that_are_not_hex_or_too_wide_are_refused() -> None:
    with pytest.raises(ValueError, match="non-hexadecimal"):
        hex_words(["zz" * 16], 2)  # full width: fromhex refuses it
    with pytest.raises(ValueError, match="invalid literal"):
        hex_words(["ab" * 16, "xyz"], 2)  # one by one: int() refuses it
    with pytest.raises(ValueError, match="invalid literal"):
        hex_words(["ab cd" + "0" * 26 + " "], 2)  # fromhex skips the spaces; int() does not
    with pytest.raises(OverflowError, match="wider than 16"):
        hex_words(["1" * 17], 1)


DURATION = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(st.tuples(DURATION, DURATION), max_size=30))
def test_call_columns_durations_are_the_calls_own(durations: list[tuple[int, int]]) -> None:
    """`call_columns` computes `observed_duration` a column at a time: the same values."""
    calls = [Call("a", "b", 0, False, client, server) for client, server in durations]
    assert call_columns(calls)["duration_ns"].tolist() == [call.duration_ns for call in calls]
