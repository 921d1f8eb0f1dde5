"""The ClickHouse span encoder (store/clickhouse/span_rows.py): the columns workers build from
`SpanColumns` are what a span-by-span encoding of model spans gives, their payloads unpack to
the same spans (span_payload.py; for any request, to what the column-per-field table before
it read back), ClickHouse stores (read back) exactly them for `write_batch` of the same
spans, and the direct OTLP walk gives the same; `select` keeps exactly the masked rows."""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.clickhouse.span_payload import FORMAT, unpack
from meshscope.store.clickhouse.span_rows import (
    BY_TRACE,
    COLUMNS,
    RESOURCE_COLUMNS,
    SEARCH,
    EncodedClickHouseSpans,
    encode_columns,
    encode_spans,
)
from meshscope.store.clickhouse.traces import _LEGACY, _legacy_span
from meshscope.store.codec import id64, id128, resource_id
from meshscope.store.span_columns import span_columns
from meshscope.store.twophase import column_encoder, is_two_phase, select_rows
from tests.conformance import clickhouse_server
from tests.ingest.test_otlp_direct import requests
from tests.store.test_clickhouse_legacy import format_1_payload, legacy_row

S = 1_000_000_000
T0 = 1_700_000_000 * S
CART: dict[str, AttrValue] = {"service.name": "cart", "k8s.pod.name": "cart-1", "replicas": 3,
                              "gone": None}  # fmt: skip
RESOURCES: list[dict[str, AttrValue]] = [CART, {"service.name": "web"}, {}]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    yield from clickhouse_server.fresh_storage(tmp_path)


def spans() -> list[Span]:
    """Events, links, attributes of every type (None included), three resources (one empty),
    a span that ends before it starts."""
    out = [
        Span(
            trace_id=f"{0xA0 + n % 3:032x}",
            span_id=f"{0x100 + n:016x}",
            parent_span_id=f"{0x100 + n - 1:016x}" if n % 3 else "",
            name=f"op-{n % 2}",
            service=["cart", "web", ""][n % 3],
            start_ns=T0 + n * 1000,
            end_ns=T0 + n * 1000 + (-5 if n == 4 else 7 * n),
            kind=SpanKind(n % 6),
            status_code=StatusCode(n % 3),
            status_message="boom" if n % 3 == 2 else "",
            attributes={
                "http.method": "POST",
                "http.status_code": 500 + n,
                "ratio": 0.25,
                "retry": n % 2 == 0,
                "payload": b"\x00\xff",
                "tags": ["a", "b", n],
                "nested": {"k": [1, 2], "s": "v"},
                "nothing": None,
                "": "empty key",
                "unicode": "héllo ✓",
            }
            if n % 2
            else {"only": None},
            events=(
                SpanEvent(T0 + 6, "exception", {"exception.type": "ValueError", "x": None}),
                SpanEvent(T0 + 7, "retry"),
            )
            if n % 4 == 1
            else (),
            links=(
                SpanLink(f"{0xB0 + n:032x}", f"{0xC0 + n:016x}", {"w": 1.5, "none": None}),
                SpanLink(f"{0xD0 + n:032x}", ""),
            )
            if n % 5 == 2
            else (),
            resource=RESOURCES[n % 3],
            scope_name="lib" if n % 2 else "",
            scope_version="1.2.3" if n % 2 else "",
            trace_state="vendor=1" if n == 3 else "",
            flags=n % 2,
        )
        for n in range(12)
    ]
    return out


def span_by_span(spans: Sequence[Span]) -> dict[str, list[Any]]:
    """The search table's columns, built one model span at a time."""
    out: dict[str, list[Any]] = {name: [] for name in SEARCH}
    for s in spans:
        attrs = encode_attrs(s.attributes)
        for name, value in (
            ("trace_hi", id128(s.trace_id)[0]), ("trace_lo", id128(s.trace_id)[1]),
            ("start_ns", s.start_ns), ("span_id", id64(s.span_id)), ("service", s.service),
            ("name", s.name), ("kind", int(s.kind)), ("status", int(s.status_code)),
            ("attr_keys", attrs[0]), ("attr_values", attrs[1]), ("attr_types", attrs[2]),
            ("resource", resource_id(s.resource)), ("duration_ns", s.duration_ns),
        ):  # fmt: skip
            out[name].append(value)
    return out


def resources_of(spans: Sequence[Span]) -> list[tuple[Any, ...]]:
    """The `resources` rows a batch of spans carries: each distinct resource once, in the
    order of first use, as `encode_attrs` lays it out."""
    distinct = {resource_id(s.resource): s.resource for s in spans if s.resource}
    return [(rid, *encode_attrs(resource)) for rid, resource in distinct.items()]


def carried(encoded: EncodedClickHouseSpans) -> list[tuple[Any, ...]]:
    rows = encoded.resources.take(np.arange(len(encoded.resources)))
    return list(zip(*(rows[name].values() for name in RESOURCE_COLUMNS), strict=True))


def named(encoded: EncodedClickHouseSpans) -> dict[int, tuple[Any, ...]]:
    """The resources the rows name, by fingerprint (what the store writes of a batch)."""
    names = set(encoded.table(("resource",))["resource"])
    return {row[0]: row[1:] for row in carried(encoded) if row[0] in names}


payload_items = st.one_of(
    st.just(FORMAT),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.lists(st.one_of(st.text(max_size=3), st.integers(-5, 5)), max_size=3),
    st.none(),
    st.floats(allow_nan=False),
)
"""Items of a well-formed msgpack array that is mostly not a span (format first or not)."""

LEGACY_COLUMNS = _LEGACY.split(", ")
"""The columns of the trace-id table before `trace_spans` (traces.py reads them so)."""


def unpacked(encoded: EncodedClickHouseSpans) -> list[Span]:
    """The spans the `trace_spans` rows of `encoded` hold."""
    return [unpack(*row) for row in _rows(encoded, BY_TRACE)]


def by_name(encoded: EncodedClickHouseSpans) -> dict[str, list[Any]]:
    return encoded.table(COLUMNS)


def test_encoded_columns_are_the_span_by_span_columns() -> None:
    batch = spans()
    encoded = encode_columns(span_columns(batch))
    assert encoded.table(SEARCH) == span_by_span(batch)
    assert carried(encoded) == resources_of(batch)
    assert len(resources_of(batch)) == len(RESOURCES) - 1  # one resource is empty: none
    assert unpacked(encoded) == batch
    none = encoded.table(("attr_values", "attr_types"))
    assert (none["attr_values"][0], none["attr_types"][0]) == ([""], "n")  # {"only": None}
    assert by_name(encode_spans(batch)) == by_name(encoded)
    assert by_name(encode_spans([])) == {name: [] for name in COLUMNS}
    again = pickle.loads(pickle.dumps(encoded))
    assert by_name(again) == by_name(encoded)
    assert carried(again) == carried(encoded)


def _read_back(storage: ClickHouseStorage, table: str, names: Sequence[str]) -> list[Any]:
    """The rows of `table`: `trace_spans` ones (ids, start, payload) sorted, `spans` ones by
    trace and span id."""
    if table == "trace_spans":
        return sorted(
            storage._conn.rows(
                f"SELECT {', '.join(names)} FROM {storage._conn.database}.{table}", binary=True
            )
        )
    return storage._conn.rows(
        f"SELECT {', '.join(names)} FROM {storage._conn.database}.{table}"
        " ORDER BY trace_hi, trace_lo, span_id"
    )


def _rows(encoded: EncodedClickHouseSpans, names: Sequence[str]) -> list[tuple[Any, ...]]:
    return list(zip(*encoded.table(names).values(), strict=True))


def test_write_batch_stores_exactly_the_encoded_columns(storage: ClickHouseStorage) -> None:
    batch = spans()
    encoded = encode_columns(span_columns(batch))
    storage.write_batch(spans=batch)
    assert _read_back(storage, "trace_spans", BY_TRACE) == sorted(_rows(encoded, BY_TRACE))
    key = [SEARCH.index(name) for name in ("trace_hi", "trace_lo", "span_id")]
    want = sorted(_rows(encoded, SEARCH), key=lambda row: [row[i] for i in key])
    assert _read_back(storage, "spans", SEARCH) == want
    # And the model spans come back (None attributes as None, resources whole).
    for s in batch:
        assert storage.traces.get_trace(s.trace_id).count(s) == 1


def test_write_encoded_takes_worker_encodings_and_renders_calls(
    storage: ClickHouseStorage,
) -> None:
    two_phase = is_two_phase(storage)  # (not asserted directly: that would narrow the type)
    assert two_phase
    assert column_encoder(storage) is encode_columns
    batch = spans()
    parts = [pickle.loads(pickle.dumps(encode_columns(span_columns(batch[:5])))),
             encode_spans(batch[5:])]  # fmt: skip
    storage.write_encoded(parts)
    assert _read_back(storage, "trace_spans", BY_TRACE) == sorted(
        _rows(encode_spans(batch), BY_TRACE)
    )


def test_select_keeps_exactly_the_masked_rows(storage: ClickHouseStorage) -> None:
    batch = spans()
    encoded = encode_spans(batch)
    mask = np.array([n % 3 != 1 for n in range(len(batch))])
    kept = [s for s, keep in zip(batch, mask.tolist(), strict=True) if keep]
    selected = select_rows(encoded, mask)
    assert isinstance(selected, EncodedClickHouseSpans)
    assert by_name(selected) == by_name(encode_spans(kept))
    assert len(encoded.select(np.zeros(len(batch), dtype=np.bool_))) == 0
    with pytest.raises(ValueError, match="a mask of 3 rows for 12 rows"):
        encoded.select(np.ones(3, dtype=np.bool_))
    storage.write_encoded([selected])
    stored = storage.traces.get_traces(sorted({s.trace_id for s in batch}))
    assert sorted(s.span_id for found in stored.values() for s in found) == sorted(
        s.span_id for s in kept
    )


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.builds(msgpack.packb, st.lists(payload_items)),
        # A format's number and its count of items of any type: the span's fields, wrong.
        st.lists(payload_items, min_size=20, max_size=20).map(lambda x: msgpack.packb([1, *x])),
        st.lists(payload_items, min_size=21, max_size=21).map(
            lambda x: msgpack.packb([FORMAT, *x])
        ),
    )
)
def test_any_bytes_unpack_to_a_span_or_a_value_error(payload: bytes) -> None:
    """A damaged or foreign payload is a ValueError naming it, never another exception."""
    try:
        span = unpack(1, 2, 3, payload)
    except ValueError as error:
        message = str(error)
    else:
        assert isinstance(span, Span)
        return
    assert "trace_spans payload" in message


def test_a_payload_of_another_format_is_refused() -> None:
    [payload] = encode_spans(spans()[:1]).table(("span",))["span"]
    items = msgpack.unpackb(payload)
    assert items[0] == FORMAT
    for first in (FORMAT + 1, 0, True, [1], "1"):
        with pytest.raises(ValueError, match="trace_spans payload of format"):
            unpack(1, 2, 3, msgpack.packb([first, *items[1:]]))
    for wrong in (msgpack.packb({"a": 1}), b"\xc0"):
        with pytest.raises(ValueError, match="trace_spans payload of format"):
            unpack(1, 2, 3, wrong)


def test_a_format_1_payload_with_an_empty_event_is_damaged() -> None:
    """Found by the property test above: an IndexError escaped (a 500 for the trace)."""
    span = spans()[0]
    items = msgpack.unpackb(format_1_payload(span))
    items[19] = [""]  # format 1's events: each [time, name, keys, values, types]
    with pytest.raises(ValueError, match="is damaged"):
        unpack(1, 2, 3, msgpack.packb(items))


def test_format_1_payloads_still_read() -> None:
    for span in spans():
        hi, lo = id128(span.trace_id)
        assert unpack(hi, lo, span.start_ns, format_1_payload(span)) == span


def test_loadgen_requests_encode_alike_on_both_paths() -> None:
    for body in build_requests(3, 300, services=6, seed=11):
        decoded = decode_otlp("traces", body)
        prepared, _, _ = prepare_traces(body, encode=encode_columns)
        assert isinstance(prepared.encoded_spans, EncodedClickHouseSpans)
        assert by_name(prepared.encoded_spans) == by_name(encode_spans(decoded.batch.spans))
        assert named(prepared.encoded_spans) == named(encode_spans(decoded.batch.spans))
        assert len(named(prepared.encoded_spans)) == 6


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_any_request_encodes_alike_on_both_paths(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    decoded = decode_otlp("traces", body)
    prepared, _, _ = prepare_traces(body, encode=encode_columns)
    want = by_name(encode_spans(decoded.batch.spans))
    if prepared.encoded_spans is None:
        assert want == {name: [] for name in COLUMNS}
    else:
        assert by_name(prepared.encoded_spans) == want
        assert named(prepared.encoded_spans) == named(encode_spans(decoded.batch.spans))
        # Every payload unpacks to the span the column-per-field table gave back for it
        # (attributes of every type, events, links, resources: the same text codec).
        assert unpacked(prepared.encoded_spans) == [
            _legacy_span(tuple(legacy_row(span, 0)[name] for name in LEGACY_COLUMNS))
            for span in decoded.batch.spans
        ]
