"""Conformance of what the pipeline derives from spans' attributes: whatever values a decoder
lets through (OTLP's AnyValue: any int64, double, bool, text, bytes, list), the calls paired
from the spans (their access logs: status code, method, path, peer) and the service graph's
series are stored on every backend, never a failed write (a status of 2**40 failed the
access-log write of every call it went with)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.derive.servicegraph import PEER_ATTRIBUTES, REQUESTS
from meshscope.store.base import LogQuery, Storage

KEYS = (
    "http.status_code", "http.response.status_code", "http.method", "http.request.method",
    "url.path", "http.target", "http.route", "db.system", *PEER_ATTRIBUTES,
)  # fmt: skip
"""The attributes a call's access log is made of (`servicegraph.side_fields`)."""

TEXT = st.text(st.characters(codec="utf-8"), max_size=30)  # no lone surrogates: refused
VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**31 - 1, 2**31, 2**40, -1, 0, 200, 503]),
    st.floats(),
    st.booleans(),
    TEXT,
    st.binary(max_size=8),
    st.lists(st.integers(-3, 3) | TEXT, max_size=3),
)
ATTRIBUTES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)
_traces = itertools.count(1)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one store, many traces
)
@given(ATTRIBUTES, ATTRIBUTES)
def test_calls_are_stored_whatever_the_spans_attributes(
    storage: Storage, client: dict[str, Any], server: dict[str, Any]
) -> None:
    trace_id = f"{next(_traces):032x}"
    now = time.time_ns()
    root = Span(trace_id, "1" * 16, "GET /", "web", now, now + 10**7, kind=SpanKind.SERVER)
    call = Span(trace_id, "2" * 16, "GET /api", "web", now + 1, now + 10**6, root.span_id,
                SpanKind.CLIENT, attributes=client)  # fmt: skip
    answer = Span(trace_id, "3" * 16, "GET /api", "api", now + 2, now + 10**5, call.span_id,
                  SpanKind.SERVER, attributes=server)  # fmt: skip
    pipeline = Pipeline(storage, ManualClock(now))
    pipeline.consume(Batch(spans=[root, call, answer]))
    pipeline.flush()  # the span metrics' and the service graph's series
    assert (pipeline.backlog.rows, pipeline.backlog.dropped) == (0, 0)
    logs = storage.logs.find_logs(LogQuery(trace_id=trace_id, access=True))
    assert [record.body.split(" ")[:3] for record in logs] == [["web", "->", "api"]]
    assert len(storage.traces.get_trace(trace_id)) == 3
    edge = {("client", "web"), ("server", "api")}
    edges = storage.metrics.latest(REQUESTS, [], now, 60 * 10**9)
    written = [one.samples[-1].time_ns for one in edges if edge <= set(one.labels)]
    assert written == [now]  # by this flush (each example has a time of its own)
