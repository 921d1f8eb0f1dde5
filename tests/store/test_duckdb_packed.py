"""Packed attributes (store/duckdb/packed.py): lossless, and a condition matches whole entries
only, whatever the keys and values hold (separators and escape characters included)."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.attributes import AttrValue
from meshscope.store.base import attr_text
from meshscope.store.codec import AttrColumns
from meshscope.store.duckdb.packed import (
    ESC,
    KV,
    SEP,
    escape,
    has_params,
    key_needle,
    needle,
    pack_columns,
    pack_events,
    sql_escape,
    sql_has,
    unpack,
    unpack_events,
)

# Text that is mostly separators and escapes, so collisions are likely if the format allows any.
tricky = st.text(alphabet=st.sampled_from(["a", "b", ESC, KV, SEP, "0", "1", "2", "n"]), max_size=6)
values = st.one_of(
    tricky,
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.binary(max_size=4),
)
attributes = st.dictionaries(st.one_of(tricky, st.text(max_size=6)), values, max_size=5)


def pack(attributes: dict[str, Any]) -> tuple[str, str]:
    """One row's packed attributes and type letters."""
    columns = AttrColumns()
    columns.add(attributes)
    packed, tags = pack_columns(columns)
    return str(packed[0].as_py()), str(tags[0].as_py())


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@given(attributes)
def test_pack_then_unpack_gives_the_attributes_back(attrs: dict[str, Any]) -> None:
    packed, tags = pack(attrs)
    assert unpack(packed, tags) == attrs


@settings(max_examples=300)
@given(attributes, st.one_of(tricky, st.text(max_size=6)), st.one_of(tricky, st.text(max_size=6)))
def test_a_condition_matches_exactly_the_rows_whose_attribute_has_that_text(
    con: duckdb.DuckDBPyConnection, attrs: dict[str, Any], key: str, text: str
) -> None:
    if attrs and key not in attrs and len(attrs) % 2:
        key = next(iter(attrs))  # often ask for a key the row has
        value = attrs[key]
        text = text if value is None else attr_text(value)
    packed, _ = pack(attrs)
    value = attrs.get(key)
    expected = key in attrs and value is not None and attr_text(value) == text
    query = f"SELECT {sql_has('p')} FROM (SELECT ?::VARCHAR AS p)"
    found = con.execute(query, [*has_params(needle(key, text)), packed]).fetchone()
    assert found == (expected,)
    has_key = con.execute(query, [*has_params(key_needle(key)), packed]).fetchone()
    assert has_key == (key in attrs,)


@given(st.one_of(tricky, st.text(max_size=10)))
def test_sql_escape_escapes_as_python_does(con: duckdb.DuckDBPyConnection, text: str) -> None:
    assert con.execute(f"SELECT {sql_escape('?')}", [text]).fetchone() == (escape(text),)


def test_columns_of_many_rows_and_events_as_json() -> None:
    rows: list[dict[str, AttrValue]] = [{"a": 1}, {}, {"b": None, "c": "x\x1fy"}]
    columns = AttrColumns()
    columns.extend(rows)
    packed, tags = pack_columns(columns)
    assert [unpack(p, t) for p, t in zip(packed.to_pylist(), tags.to_pylist(), strict=True)] == rows
    assert packed.to_pylist()[1] == ""
    event_attrs = AttrColumns()
    event_attrs.extend([{"k": 2**64 - 1}, {}, {}])
    events, first, others = pack_events(
        [0, 0, 2, 3, 3], [5, 6, 12], ["boom", "retry", "once"], event_attrs, [0, 4, 9, 1]
    )
    assert events.to_pylist()[0] is None and first.to_pylist()[0] is None
    assert first.to_pylist() == [None, 1, 3, None]  # the first event's offset from the start
    assert others.to_pylist() == [None, "2", None, None]  # the others', as text
    assert unpack_events(events[1].as_py(), first[1].as_py(), others[1].as_py(), 4) == [
        (5, "boom", {"k": 2**64 - 1}),
        (6, "retry", {}),
    ]
    assert unpack_events(events[2].as_py(), first[2].as_py(), others[2].as_py(), 9) == [
        (12, "once", {}),
    ]


def _events_by_orjson(
    offsets: list[int], times: list[int], names: list[str], attrs: AttrColumns, starts: list[int]
) -> tuple[list[str | None], list[int | None], list[str | None]]:
    """pack_events' three columns built one row at a time (its first form): the reference
    its NumPy offsets must equal."""
    packed, tags = pack_columns(attrs)
    items = [
        {"n": n, "a": a, "y": y}
        for n, a, y in zip(names, packed.to_pylist(), tags.to_pylist(), strict=True)
    ]
    events: list[str | None] = []
    firsts: list[int | None] = []
    others: list[str | None] = []
    for row in range(len(offsets) - 1):
        first, end = offsets[row], offsets[row + 1]
        if end > first:
            events.append(orjson.dumps(items[first:end]).decode())
            firsts.append(times[first] - starts[row])
            others.append(",".join(str(t - starts[row]) for t in times[first + 1 : end]) or None)
        else:
            events += [None]
            firsts += [None]
            others += [None]
    return events, firsts, others


# Names and attribute texts with what JSON escapes: quotes, backslashes, the separators and
# other control characters (those take the orjson path), and non-ASCII.
json_tricky = st.text(
    alphabet=st.sampled_from(['"', "\\", ESC, KV, SEP, "\n", "\x00", "a", "é", "\u2028"]),
    max_size=5,
)


@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),  # the span's start
            st.lists(
                st.tuples(
                    st.integers(0, 2**63 - 1),
                    st.one_of(json_tricky, st.text(max_size=6)),
                    st.dictionaries(
                        st.one_of(json_tricky, st.text(max_size=4)), values, max_size=3
                    ),
                ),
                max_size=3,
            ),
        ),
        max_size=6,
    )
)
@settings(max_examples=300)
def test_events_are_packed_as_orjson_writes_them_one_row_at_a_time(
    rows: list[tuple[int, list[tuple[int, str, dict[str, Any]]]]],
) -> None:
    offsets, times, names, starts = [0], [], [], []
    attrs = AttrColumns()
    for start, events in rows:
        starts.append(start)
        for time_ns, name, attributes in events:
            times.append(time_ns)
            names.append(name)
            attrs.add(attributes)
        offsets.append(len(times))
    expected = _events_by_orjson(offsets, times, names, attrs, starts)
    try:
        got = pack_events(offsets, times, names, attrs, starts)
    except (OverflowError, pa.ArrowInvalid):  # an offset past int64: refused as before
        with pytest.raises((OverflowError, pa.ArrowInvalid)):
            pa.array(expected[1], pa.int64())
        return
    assert tuple(column.to_pylist() for column in got) == expected
