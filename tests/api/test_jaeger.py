"""The Jaeger query API on the real UI app, with requests in the exact form Grafana's Jaeger
data source and Jaeger UI send them, over known data (tests/api/shop.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.shop import ERROR_EVERY, T0, TRACES, S, is_error, shop_app, span_id, trace_id

START_US = T0 // 1000
END_US = (T0 + TRACES * S) // 1000


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with shop_app() as (app, _):
        yield TestClient(app.ui)


def _data(client: TestClient, path: str, params: Any = None) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] is None and body["limit"] == 0 and body["offset"] == 0
    if isinstance(body["data"], list):
        assert body["total"] == len(body["data"])
    return body["data"]


def _ids(traces: list[dict[str, Any]]) -> list[str]:
    return [t["traceID"] for t in traces]


def test_services_and_operations(client: TestClient) -> None:
    assert _data(client, "/api/services") == ["frontend", "cart"]
    assert _data(client, "/api/services/cart/operations") == ["POST /cart", "SELECT"]
    # A name with a "/" (URL-encoded, as the UI sends it) was a 404: the route took no "/".
    assert client.get("/api/services/a%2Fb/operations").json()["data"] == []
    assert _data(client, "/api/operations", {"service": "cart", "spanKind": "server"}) == [
        {"name": "POST /cart", "spanKind": "server"}
    ]
    assert _data(client, "/api/operations", {"service": "frontend"}) == [
        {"name": "GET /checkout", "spanKind": "server"},
        {"name": "POST /cart", "spanKind": "client"},
    ]


def test_grafana_search_request(client: TestClient) -> None:
    # Grafana: pickBy(service, operation, tags (logfmt -> JSON), ...) + start/end µs + lookback.
    query = (
        "/api/traces?service=cart&operation=POST%20%2Fcart"
        "&tags=%7B%22error%22%3A%22true%22%7D&limit=20"
        f"&start={START_US}&end={END_US}&lookback=custom"
    )
    found = _data(client, query)
    expected = [trace_id(n) for n in reversed(range(TRACES)) if is_error(n)]
    assert _ids(found) == expected and len(expected) == TRACES // ERROR_EVERY


def test_jaeger_ui_search_request_with_empty_params(client: TestClient) -> None:
    query = (
        f"/api/traces?end={END_US}&limit=5&lookback=1h&maxDuration&minDuration="
        f"&service=frontend&start={START_US}"
    )
    found = _data(client, query)
    assert _ids(found) == [trace_id(n) for n in range(TRACES - 1, TRACES - 6, -1)]


ALL = range(TRACES)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tags": json.dumps({"otel.status_code": "ERROR"})}, [n for n in ALL if is_error(n)]),
        ({"tag": ["http.status_code:500", "span.kind:server"]}, [n for n in ALL if is_error(n)]),
        (
            {"tags": json.dumps({"k8s.pod.name": "cart-7", "customer.tier": "free"})},
            [n for n in ALL if n % 4 == 0],
        ),
        (
            {"minDuration": "20ms", "maxDuration": "0.031s", "operation": "POST /cart"},
            [n for n in ALL if n % 2],
        ),
        ({"tags": json.dumps({"span.kind": "consumer"})}, []),
    ],
)
def test_search_by_status_kind_attributes_and_duration(
    client: TestClient, params: dict[str, Any], expected: list[int]
) -> None:
    base = {"service": "cart", "start": START_US, "end": END_US, "limit": 1500}
    found = _data(client, "/api/traces", {**base, **params})
    assert _ids(found) == [trace_id(n) for n in reversed(expected)]


def test_search_time_range_and_trace_ids(client: TestClient) -> None:
    found = _data(client, "/api/traces", {"service": "frontend", "start": START_US,
                                          "end": START_US + 2_000_000})  # fmt: skip
    assert _ids(found) == [trace_id(2), trace_id(1), trace_id(0)]  # end is inclusive
    body = client.get("/api/traces", params={"traceID": [trace_id(3), "abc", trace_id(1)]}).json()
    assert _ids(body["data"]) == [trace_id(3), trace_id(1)]
    assert body["errors"] == [{"code": 404, "msg": "trace not found", "traceID": f"{0xABC:032x}"}]


def test_trace_model_field_by_field(client: TestClient) -> None:
    n = ERROR_EVERY  # an error trace
    (trace,) = _data(client, f"/api/traces/{trace_id(n)}")
    assert trace["traceID"] == trace_id(n) and trace["warnings"] is None
    assert trace["processes"] == {
        "p1": {"serviceName": "frontend", "tags": [
            {"key": "k8s.pod.name", "type": "string", "value": "frontend-1"}]},
        "p2": {"serviceName": "cart", "tags": [
            {"key": "k8s.pod.name", "type": "string", "value": "cart-7"}]},
    }  # fmt: skip
    spans = {s["spanID"]: s for s in trace["spans"]}
    server = spans[span_id(n, 2)]
    assert server["operationName"] == "POST /cart" and server["processID"] == "p2"
    assert server["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id(n), "spanID": span_id(n, 1)}
    ]
    assert server["startTime"] == (T0 + n * S) // 1000 + 2000 and server["duration"] == 30_000
    tags = {t["key"]: (t["type"], t["value"]) for t in server["tags"]}
    assert tags == {
        "http.status_code": ("int64", 500),
        "customer.tier": ("string", "gold"),
        "span.kind": ("string", "server"),
        "otel.status_code": ("string", "ERROR"),
        "otel.status_description": ("string", "out of stock"),
        "error": ("bool", True),
    }
    assert server["logs"] == [
        {"timestamp": server["startTime"], "fields": [
            {"key": "event", "type": "string", "value": "cache miss"},
            {"key": "key", "type": "string", "value": "cart:1"}]}
    ]  # fmt: skip
    assert spans[span_id(n, 0)]["references"] == []


def test_dependencies_from_service_graph_counters(client: TestClient) -> None:
    end_ms = (T0 + 100 * S) // 10**6
    links = _data(client, "/api/dependencies", {"endTs": end_ms, "lookback": 3_600_000})
    assert links == [
        {"parent": "cart", "child": "carts", "callCount": TRACES},
        {"parent": "frontend", "child": "cart", "callCount": TRACES},
    ]
    # Only the first flush (T0+14 s) lies before this window's end: 15 paired calls, and 10
    # virtual db calls (an unpaired client becomes one when its 5 s pairing TTL has passed).
    early = _data(client, "/api/dependencies", {"endTs": (T0 + 20 * S) // 10**6})
    assert early == [
        {"parent": "cart", "child": "carts", "callCount": 10},
        {"parent": "frontend", "child": "cart", "callCount": 15},
    ]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/traces", {}),
        ("/api/traces", {"service": "cart", "start": "yesterday"}),
        ("/api/traces", {"service": "cart", "minDuration": "10"}),
        ("/api/traces", {"service": "cart", "maxDuration": "1x"}),
        ("/api/traces", {"service": "cart", "minDuration": "2s", "maxDuration": "1s"}),
        ("/api/traces", {"service": "cart", "tags": "{not json"}),
        ("/api/traces", {"service": "cart", "tags": "[1]"}),
        ("/api/traces", {"service": "cart", "tag": "nocolon"}),
        ("/api/traces", {"service": "cart", "limit": "100000"}),
        ("/api/traces", {"service": "cart", "limit": "-1"}),
        ("/api/traces", {"service": "cart", "tags": '{"otel.status_code": "BAD"}'}),
        ("/api/traces", {"traceID": "xyz"}),
        ("/api/traces/not-hex", {}),
        ("/api/operations", {}),
        ("/api/operations", {"service": "cart", "spanKind": "weird"}),
        ("/api/dependencies", {"endTs": "soon"}),
        ("/api/dependencies", {"lookback": "0"}),
    ],
)
def test_bad_params_are_400_in_the_envelope(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["data"] is None and body["errors"][0]["code"] == 400
    assert body["errors"][0]["msg"]


def test_unknown_trace_is_404(client: TestClient) -> None:
    response = client.get(f"/api/traces/{'f' * 32}")
    assert response.status_code == 404
    assert response.json()["errors"] == [{"code": 404, "msg": "trace not found"}]
