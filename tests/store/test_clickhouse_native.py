"""Native-format insert columns (store/clickhouse/native.py) give exactly the bytes
clickhouse-driver's own column writer gives for the same values and type, for every type the
span tables use on old and new servers, after any joins and selections of rows; and a whole
insert sent through `Connection.insert_native` is byte for byte the block the driver would
send."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from clickhouse_driver import Client, bufferedwriter
from clickhouse_driver.block import ColumnOrientedBlock
from clickhouse_driver.columns.service import write_column
from clickhouse_driver.context import Context
from clickhouse_driver.streams.native import BlockOutputStream
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.store.clickhouse import native
from meshscope.store.clickhouse.connection import NativeRows, _Client
from meshscope.store.clickhouse.native import Lists, NativeTypeError, Numbers, Strings, Words
from meshscope.store.clickhouse.span_rows import SEARCH, concat, encode_spans
from tests.store.test_clickhouse_span_rows import spans

OLD, NEW = 54213, 54468
"""Protocol revisions: 18.16's, and one past custom serialization and profile events."""


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.chunks.append(bytes(data))


def _context(revision: int, as_bytes: bool = False) -> Context:
    class Info:
        used_revision = revision

    context = Context()
    context.server_info = Info()
    context.settings = {}
    context.client_settings = {
        "strings_as_bytes": as_bytes, "strings_encoding": "utf-8", "use_numpy": False,
        "input_format_null_as_default": False, "namedtuple_as_json": False,
        "insert_block_size": 1_048_576,
    }  # fmt: skip
    return context


def driver_column(
    spec: str, values: list[Any], revision: int = OLD, as_bytes: bool = False
) -> bytes:
    """What clickhouse-driver writes for a column of `values` of type `spec`."""
    sink = _Sink()
    out = bufferedwriter.BufferedSocketWriter(sink, 1 << 16)
    write_column(_context(revision, as_bytes), "c", spec, values, out)
    out.flush()
    return b"".join(sink.chunks)


def ours(column: native.Column, spec: str) -> bytes:
    """What `column.write` writes as `spec`."""
    sink = _Sink()
    out = bufferedwriter.BufferedSocketWriter(sink, 1 << 16)
    column.write(spec, out)
    out.flush()
    return b"".join(sink.chunks)


texts = st.text(max_size=12)
few = st.sampled_from(["", "a", "frontend", "ключ", "🙂", "x" * 130, "y" * 20_000])
"""Values that repeat, with lengths past one (130) and two (20,000) varint bytes."""


def build(kind: str, rows: list[Any]) -> native.Column:
    """A column of `kind` as the encoder builds one."""
    if kind == "Strings":
        return Strings(rows)
    if kind == "Words":
        return Words.of(rows)
    flat = [item for row in rows for item in row]
    offsets = native.offsets_of([len(row) for row in rows])
    return Lists(Strings(flat) if kind == "TextLists" else Words.of(flat), offsets)


SPECS = {
    "Strings": ["String"],
    "Words": ["String", "LowCardinality(String)"],
    "TextLists": ["Array(String)"],
    "WordLists": ["Array(String)", "Array(LowCardinality(String))"],
}
ROWS: dict[str, st.SearchStrategy[list[Any]]] = {
    "Strings": st.lists(st.one_of(texts, few), max_size=20),
    "Words": st.lists(st.one_of(few, st.sampled_from(["b", "c"])), max_size=300),
    "TextLists": st.lists(st.lists(st.one_of(texts, few), max_size=4), max_size=15),
    "WordLists": st.lists(st.lists(few, max_size=4), max_size=15),
}


@pytest.mark.parametrize("kind", list(SPECS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_columns_write_what_the_driver_writes(kind: str, data: st.DataObject) -> None:
    parts = data.draw(st.lists(ROWS[kind], min_size=1, max_size=3))
    masks = [data.draw(st.lists(st.booleans(), min_size=len(p), max_size=len(p))) for p in parts]
    column = native.concat([build(kind, part) for part in parts])
    rows = [row for part in parts for row in part]
    assert column.values() == rows
    mask = [keep for part in masks for keep in part]
    kept = [row for row, keep in zip(rows, mask, strict=True) if keep]
    selected = column.select(np.array(mask, dtype=np.bool_))
    assert selected.values() == kept
    for spec in SPECS[kind]:
        for revision in (OLD, NEW):
            assert ours(column, spec) == driver_column(spec, rows, revision)
            assert ours(selected, spec) == driver_column(spec, kept, revision)


def test_words_past_256_distinct_values_take_wider_indexes() -> None:
    """LowCardinality's index width follows the count of distinct values (the driver's
    `int(log2(n) / 8)`: 255 fit a byte, 256 do not)."""
    for count in (255, 256, 300, 70_000):
        rows = [str(n % count) for n in range(count + 5)]
        spec = "LowCardinality(String)"
        assert ours(Words.of(rows), spec) == driver_column(spec, rows)


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([("UInt64", 0, 2**64 - 1), ("Int64", -(2**63), 2**63 - 1), ("UInt8", 0, 255)]),
    st.data(),
)
def test_numbers_write_what_the_driver_writes(kind: tuple[str, int, int], data: Any) -> None:
    spec, low, high = kind
    values = data.draw(st.lists(st.integers(low, high), max_size=30))
    dtypes: dict[str, type[np.integer[Any]]] = {
        "UInt64": np.uint64, "Int64": np.int64, "UInt8": np.uint8
    }  # fmt: skip
    dtype = dtypes[spec]
    column = Numbers.of(values, dtype)
    assert ours(column, spec) == driver_column(spec, values)
    assert column.values() == values


def test_payload_bytes_stay_bytes() -> None:
    payloads = [b"\x00\xff", b"", bytes(range(256)) * 3]
    column = Strings(payloads)
    assert column.values() == payloads
    assert ours(column, "String") == driver_column("String", payloads, as_bytes=True)
    assert ours(column, "String") == driver_column("String", payloads)


def test_a_type_the_column_cannot_be_is_refused() -> None:
    with pytest.raises(NativeTypeError, match="cannot be written as UInt64"):
        ours(Strings(["a"]), "UInt64")
    with pytest.raises(NativeTypeError, match="cannot be written as LowCardinality"):
        ours(Strings(["a"]), "LowCardinality(String)")
    with pytest.raises(NativeTypeError, match="cannot be written as Nullable"):
        ours(Words.of(["a"]), "Nullable(String)")
    with pytest.raises(NativeTypeError, match="out of the range of UInt8"):
        ours(Numbers.of([300], np.int64), "UInt8")
    with pytest.raises(NativeTypeError, match="cannot be written as String"):
        ours(Numbers.of([1], np.int64), "String")


def _wired(client: Client) -> _Sink:
    """`client` as if connected to an 18.16 server: what it sends goes to the sink."""
    sink = _Sink()
    connection = client.connection
    connection.context = _context(OLD)
    connection.server_info = connection.context.server_info
    connection.fout = bufferedwriter.BufferedSocketWriter(sink, 1 << 16)
    connection.block_out = BlockOutputStream(connection.fout, connection.context)
    return sink


def test_an_insert_sends_the_data_packets_the_driver_sends() -> None:
    """The Data packet with the block, then the empty block that ends the data, as
    `Client.send_data` sends them for the same values (the driver writes a bytes value of
    a String column as it is: the payloads)."""
    batch = encode_spans(spans())
    both = concat([batch, batch.select(np.arange(len(batch)) % 2 == 0)])
    resources = both.resources.take(np.array([1, 0, 1, 3], np.int64))
    resources["time_ns"] = Numbers(np.array([5, -1, 2**40, 0], np.int64))
    assert len(both.resources) == 4  # each of the joined batches' two (one is empty: none)
    specs = dict(SPEC)
    for columns, rows in ((both.native((*SEARCH, "span")), len(both)), (resources, 4)):
        sample = ColumnOrientedBlock([(name, specs[name]) for name in columns], [])
        ours, theirs = _Client("127.0.0.1"), Client("127.0.0.1")
        sent, expected = _wired(ours), _wired(theirs)
        assert ours.send_data(sample, NativeRows(columns.items())) == rows
        theirs.send_data(sample, [column.values() for column in columns.values()], columnar=True)
        assert b"".join(sent.chunks) == b"".join(expected.chunks)
    columns = both.native((*SEARCH, "span"))
    sample = ColumnOrientedBlock([(name, specs[name]) for name in columns], [])
    wrong = ColumnOrientedBlock([("other", "UInt64"), *sample.columns_with_types[1:]], [])
    with pytest.raises(NativeTypeError, match="asks for column other, not trace_hi"):
        ours.send_data(wrong, NativeRows(columns.items()))


SPEC = (
    ("trace_hi", "UInt64"), ("trace_lo", "UInt64"), ("start_ns", "Int64"),
    ("span_id", "UInt64"), ("service", "LowCardinality(String)"), ("name", "String"),
    ("kind", "UInt8"), ("status", "UInt8"), ("attr_keys", "Array(LowCardinality(String))"),
    ("attr_values", "Array(String)"), ("attr_types", "String"), ("resource", "UInt64"),
    ("duration_ns", "Int64"), ("span", "String"),
    # `resources`
    ("fingerprint", "UInt64"), ("res_keys", "Array(String)"),
    ("res_values", "Array(LowCardinality(String))"), ("res_types", "LowCardinality(String)"),
    ("time_ns", "Int64"),
)  # fmt: skip
"""The span and resource columns, as either profile types them (mixed: both kinds of
each)."""
