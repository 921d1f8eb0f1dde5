"""Prometheus' query_exemplars over the span metrics: the slowest spans behind a series,
for the queries Grafana sends from a latency panel (tests/query/slo_data: `api` serves 100
`GET /` calls a minute; from minute 60 to 419 eight of them fail and last 300 ms)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.exemplars import exemplar_routes
from meshscope.store.memory import MemoryStorage
from tests.query.slo_data import MINUTE, load

P99 = (
    'histogram_quantile(0.99, sum by (le) (rate(duration_milliseconds_bucket{service_name="api",'
    ' span_kind="SPAN_KIND_SERVER"}[5m])))'
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TestClient, MemoryStorage, int]]:
    storage, start = load()
    app = Starlette(routes=exemplar_routes(storage.traces, lambda: start + 480 * MINUTE))
    with TestClient(app) as client:
        yield client, storage, start


def _data(client: TestClient, **params: Any) -> Any:
    response = client.get("/api/v1/query_exemplars", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def test_a_latency_panel_gets_the_slowest_span_of_each_minute(
    served: tuple[TestClient, MemoryStorage, int],
) -> None:
    client, storage, start = served
    t0 = start // 10**9
    data = _data(client, query=P99, start=t0 + 300 * 60, end=t0 + 310 * 60 - 1)
    by_le = {d["seriesLabels"]["le"]: d for d in data}
    # Exemplars are per series: the failing spans' series (300 ms, in le=400) and the
    # successful spans' series (3 ms, in le=4).
    assert set(by_le) == {"400", "4"}
    assert {e["value"] for e in by_le["4"]["exemplars"]} == {"3"}
    series = by_le["400"]
    assert series["seriesLabels"] == {
        "__name__": "duration_milliseconds_bucket", "service_name": "api",
        "span_kind": "SPAN_KIND_SERVER", "span_name": "GET /",
        "status_code": "STATUS_CODE_ERROR", "le": "400",
    }  # fmt: skip
    exemplars = series["exemplars"]
    assert len(exemplars) == 10  # one per minute
    assert all(e["value"] == "300" for e in exemplars)
    timestamps = [e["timestamp"] for e in exemplars]
    assert timestamps == sorted(timestamps) and t0 + 300 * 60 <= timestamps[0]
    # Each exemplar opens a real trace whose span it names.
    first = exemplars[0]["labels"]
    (span,) = storage.traces.get_trace(first["trace_id"])
    assert span.span_id == first["span_id"] and span.duration_ns == 300 * 10**6


def test_before_the_failures_the_slowest_spans_are_the_fast_ones(
    served: tuple[TestClient, MemoryStorage, int],
) -> None:
    client, _, start = served
    t0 = start // 10**9
    data = _data(client, query=P99, start=t0 + 10 * 60, end=t0 + 13 * 60 - 1)
    ((series),) = data
    assert series["seriesLabels"]["status_code"] == "STATUS_CODE_UNSET"
    assert series["seriesLabels"]["le"] == "4"
    assert [e["value"] for e in series["exemplars"]] == ["3", "3", "3"]


def test_selectors_filter_and_other_metrics_have_none(
    served: tuple[TestClient, MemoryStorage, int],
) -> None:
    client, _, start = served
    t0 = start // 10**9
    window = {"start": t0 + 300 * 60, "end": t0 + 302 * 60 - 1}
    calls = _data(client, query='sum(rate(calls_total{service_name="db"}[1m]))', **window)
    assert [d["seriesLabels"]["service_name"] for d in calls] == ["db"]
    assert {e["value"] for e in calls[0]["exemplars"]} == {"1"}
    unset_only = _data(
        client,
        query='duration_milliseconds_bucket{service_name="api",status_code!="STATUS_CODE_ERROR",'
        'span_kind="SPAN_KIND_SERVER"}',
        **window,
    )
    assert [d["seriesLabels"]["le"] for d in unset_only] == ["4"]
    assert _data(client, query="up", **window) == []
    assert _data(client, query='calls_total{span_kind="nonsense"}', **window) == []
    # Default range: the hour before "now" (minute 480); failures stopped at minute 450.
    recent = _data(client, query='calls_total{service_name="api",span_kind="SPAN_KIND_SERVER"}')
    by_status = {d["seriesLabels"]["status_code"]: d["exemplars"] for d in recent}
    assert set(by_status) == {"STATUS_CODE_UNSET", "STATUS_CODE_ERROR"}
    assert len(by_status["STATUS_CODE_ERROR"]) == 30
    assert all(e["timestamp"] < t0 + 450 * 60 for e in by_status["STATUS_CODE_ERROR"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "query"),
        ({"query": "sum(", "start": "0", "end": "10"}, "parse"),
        ({"query": "up", "start": "soon"}, "start"),
        ({"query": "up", "start": "100", "end": "10"}, "end"),
    ],
)
def test_bad_requests_are_400_bad_data(
    served: tuple[TestClient, MemoryStorage, int], params: dict[str, str], message: str
) -> None:
    response = served[0].get("/api/v1/query_exemplars", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["errorType"] == "bad_data" and message in body["error"]


def test_grafana_posts_the_same_as_a_form(served: tuple[TestClient, MemoryStorage, int]) -> None:
    client, _, start = served
    t0 = start // 10**9
    form = {"query": P99, "start": str(t0 + 300 * 60), "end": str(t0 + 301 * 60 - 1)}
    response = client.post("/api/v1/query_exemplars", data=form)
    assert response.status_code == 200 and len(response.json()["data"]) == 2
