"""Pairing records between nodes (`cluster/sides.py`): what is encoded decodes the same, and
any other body is refused with a DecodeError, never another exception, and never a record
the pairer could not hold (the internal route's body comes from the network)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshscope.cluster.sides import decode_sides, encode_sides
from meshscope.ingest.errors import DecodeError
from meshscope.pipeline.derive.servicegraph import MAX_STATUS, side_fields

TEXT = st.text(max_size=40)
INT64 = st.integers(-(2**63) + 1, 2**63 - 1)
SIDES = st.lists(
    st.tuples(
        TEXT, TEXT, TEXT, TEXT,
        st.integers(0, 5), INT64, st.integers(0, 2**63 - 1), st.booleans(),
        st.integers(0, MAX_STATUS), TEXT, TEXT, TEXT, TEXT,
    ),
    max_size=20,
)  # fmt: skip


def _valid(record: Any) -> bool:
    return (
        type(record) is tuple
        and len(record) == 13
        and all(type(record[i]) is str for i in (0, 1, 2, 3, 9, 10, 11, 12))
        and all(type(record[i]) is int for i in (4, 5, 6, 8))
        and type(record[7]) is bool
        and 0 <= record[4] < 6
        and record[6] >= 0
        and 0 <= record[8] <= MAX_STATUS
    )


@given(SIDES, SIDES)
def test_records_survive_the_trip_and_parts_concatenate(
    first: list[tuple[Any, ...]], second: list[tuple[Any, ...]]
) -> None:
    assert decode_sides(encode_sides(first)) == first
    assert decode_sides(encode_sides(first) + encode_sides(second)) == first + second


def test_a_walks_side_is_a_valid_record() -> None:
    side = side_fields(
        "ab" * 16, "cd" * 8, "", "web", 3, 10**18, 5, True, {"http.status_code": 200}
    )
    assert decode_sides(encode_sides([side])) == [side]
    # Any length an attribute may have (a 1 MiB path), and the largest times and status.
    long = side_fields(
        "ab" * 16, "cd" * 8, "ef" * 8, "web", 3, 2**63 - 1, 2**63 - 1, False,
        {"url.path": "/" * 2**20, "http.status_code": 2**31 - 1, "http.method": "\u00e9"},
    )  # fmt: skip
    assert decode_sides(encode_sides([long, side])) == [long, side]


@given(st.binary(max_size=300))
def test_any_bytes_are_records_or_refused(body: bytes) -> None:
    try:
        sides = decode_sides(body)
    except DecodeError:
        return
    assert all(map(_valid, sides))


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | TEXT
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=14) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=30,
)  # fmt: skip


@given(st.lists(ANY_VALUE, max_size=5))
def test_any_msgpack_values_are_records_or_refused(values: list[Any]) -> None:
    body = b"".join(msgpack.packb(value, use_bin_type=True) for value in values)
    try:
        sides = decode_sides(body)
    except DecodeError:
        return
    assert all(map(_valid, sides))


COLUMNS = st.lists(st.lists(ANY_VALUE, min_size=2, max_size=2), min_size=13, max_size=13)


@given(COLUMNS)
def test_any_values_in_the_columns_are_records_or_refused(columns: list[list[Any]]) -> None:
    try:
        sides = decode_sides(msgpack.packb(columns, use_bin_type=True))
    except DecodeError:
        return
    assert len(sides) == 2 and all(map(_valid, sides))


@given(SIDES.filter(bool), st.data())
def test_mutated_bodies_are_records_or_refused(sides: list[tuple[Any, ...]], data: Any) -> None:
    body = bytearray(encode_sides(sides))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    try:
        decoded = decode_sides(bytes(body[:cut]))
    except DecodeError:
        return
    assert all(map(_valid, decoded))


def _part(*fields: Any) -> bytes:
    return encode_sides([("t", "s", "", "web", 1, 0, 0, False, 0, "", "", "", ""), fields])


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (msgpack.packb([1, 2, 3]), "not an array of 13 columns"),
        (msgpack.packb(7), "not an array of 13 columns"),
        (msgpack.packb({"a": 1}), "max_map_len"),
        (msgpack.packb([[1]] * 12 + [[1, 2]]), "not arrays of one length"),
        (_part("t", "s", "", "web", 9, 0, 0, False, 0, "", "", "", ""), "field 4 has a value out"),
        (_part("t", "s", "", "web", 1, 0, -1, False, 0, "", "", "", ""), "field 6 has a value out"),
        (_part("t", "s", "", "web", 1, 0, 0, 1, 0, "", "", "", ""), "field 7 holds int, not bool"),
        (_part("t", "s", None, "web", 1, 0, 0, False, 0, "", "", "", ""), "field 2 holds NoneType"),
        (_part("t", "s", "", "web", 1, 0, 0, False, 2**31, "", "", "", ""), "field 8 has a value"),
        (_part("t", "s", "", "web", 1, 0, 0, False, 0, "", "", "", "")[:-1], "ends inside a part"),
    ],
)
def test_refusals_name_the_problem(body: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_sides(body)
