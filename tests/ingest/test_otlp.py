from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp import Signal, decode_otlp
from tests.ingest.otel_sdk import make_logs, make_metrics, make_spans, traces_request_bytes

SIGNALS: list[Signal] = ["traces", "logs", "metrics"]


def test_dispatch_by_signal() -> None:
    assert len(decode_otlp("traces", traces_request_bytes(make_spans())).batch.spans) == 4
    assert len(decode_otlp("logs", make_logs()[1]).batch.logs) == 3
    assert decode_otlp("metrics", make_metrics()).batch.metrics
    assert decode_otlp("traces", b"{}", json=True).batch.spans == []


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("as_json", [False, True])
@given(body=st.binary(max_size=400))
@settings(max_examples=150)
def test_arbitrary_bytes_decode_or_raise_decode_error(
    signal: Signal, as_json: bool, body: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        decode_otlp(signal, body, json=as_json)


_KEYS = [
    "resourceSpans",
    "resourceLogs",
    "resourceMetrics",
    "scopeSpans",
    "scopeLogs",
    "scopeMetrics",
    "spans",
    "logRecords",
    "metrics",
    "traceId",
    "spanId",
    "parentSpanId",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "kind",
    "body",
    "sum",
    "gauge",
    "histogram",
    "dataPoints",
    "bucketCounts",
    "explicitBounds",
    "asInt",
    "asDouble",
    "aggregationTemporality",
    "isMonotonic",
    "startTimeUnixNano",
    "summary",
    "x",
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=25,
)


@pytest.mark.parametrize("signal", SIGNALS)
@given(document=st.dictionaries(st.sampled_from(_KEYS), _json, max_size=3))
@settings(max_examples=150)
def test_arbitrary_json_documents_decode_or_raise_decode_error(
    signal: Signal, document: dict[str, Any]
) -> None:
    with contextlib.suppress(DecodeError):
        decode_otlp(signal, json.dumps(document).encode(), json=True)
