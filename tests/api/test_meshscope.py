"""meshscope's own API (RED, service graph, trace statistics) over known data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.shop import ERROR_EVERY, T0, TRACES, S, shop_app, span_id, trace_id

RANGE = {"start": T0 // 10**6 - 1, "end": (T0 + 100 * S) // 10**6}
# The series started at T0 (the first trace) and were last flushed at T0 + 60 s: rates cover
# that, not the whole 100 s range.
SECONDS = 60


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with shop_app() as (app, _):
        yield TestClient(app.ui)


def _data(client: TestClient, path: str, params: Any = None) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_red_per_service_from_span_metrics(client: TestClient) -> None:
    rows = {r["service"]: r for r in _data(client, "/api/meshscope/red", RANGE)}
    cart = rows["cart"]  # server spans only (the default)
    assert cart["calls"] == TRACES and cart["errors"] == TRACES // ERROR_EVERY
    assert cart["rate"] == pytest.approx(TRACES / SECONDS)
    assert cart["errorRatio"] == pytest.approx(1 / ERROR_EVERY)
    # Half the cart server spans last 3 ms, half 30 ms: from the exponential histogram, the
    # value of rank q * count within 2.2 %.
    assert cart["percentileError"] == pytest.approx(0.0219, abs=1e-4)
    assert cart["p50Ms"] == pytest.approx(3.0, rel=0.022)
    assert cart["p95Ms"] == pytest.approx(30.0, rel=0.022)
    assert cart["p99Ms"] == pytest.approx(30.0, rel=0.022)
    assert rows["frontend"]["errors"] == 0


def test_red_per_operation_and_kind(client: TestClient) -> None:
    params = {**RANGE, "service": "cart", "groupBy": "operation", "spanKind": "client"}
    rows = _data(client, "/api/meshscope/red", params)
    assert [(r["operation"], r["calls"]) for r in rows] == [("SELECT", TRACES)]
    rows = _data(client, "/api/meshscope/red", {**RANGE, "groupBy": "operation", "spanKind": "all"})
    assert len(rows) == 4
    # A range before any flush has no calls.
    assert _data(client, "/api/meshscope/red", {"start": 1, "end": T0 // 10**6}) == []


def test_red_over_part_of_the_range_uses_counter_increases(client: TestClient) -> None:
    # Flushes at T0+14 s (15 traces), T0+29 s (30), T0+39 s (40) and T0+60 s (40).
    window = {"start": (T0 + 20 * S) // 10**6, "end": (T0 + 35 * S) // 10**6}
    (cart,) = _data(client, "/api/meshscope/red", {**window, "service": "cart"})
    assert cart["calls"] == 15
    assert cart["errors"] == 3  # traces 15, 20, 25


def test_graph_edges(client: TestClient) -> None:
    graph = _data(client, "/api/meshscope/graph", RANGE)
    assert graph["nodes"] == ["frontend", "cart", "carts"]
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    edge = edges[("frontend", "cart")]
    assert edge["calls"] == TRACES and edge["errors"] == TRACES // ERROR_EVERY
    assert edge["errorRatio"] == pytest.approx(1 / ERROR_EVERY)
    assert edge["rate"] == pytest.approx(TRACES / SECONDS)
    assert edge["p99Ms"] == pytest.approx(30.0)  # server side, 3 and 30 ms: the max
    assert edge["p99Error"] == pytest.approx(0.0219, abs=1e-4)
    assert edges[("cart", "carts")]["connectionType"] == "database"


def test_trace_stats_and_critical_path(client: TestClient) -> None:
    n = 3
    stats = _data(client, f"/api/meshscope/traces/{trace_id(n)}/stats")
    start = (T0 + n * S) // 1000
    assert stats["spanCount"] == 4 and stats["errorCount"] == 0
    assert stats["duration"] == 34_000
    assert (stats["rootService"], stats["rootOperation"]) == ("frontend", "GET /checkout")
    assert stats["services"] == [
        {"service": "frontend", "spanCount": 2, "errorCount": 0},
        {"service": "cart", "spanCount": 2, "errorCount": 0},
    ]
    path = [(c["spanID"], c["start"] - start, c["end"] - start) for c in stats["criticalPath"]]
    assert path == [
        (span_id(n, 0), 33_000, 34_000),
        (span_id(n, 1), 32_000, 33_000),
        (span_id(n, 2), 3_000, 32_000),
        (span_id(n, 3), 2_000, 3_000),
        (span_id(n, 2), 2_000, 2_000),  # 100 ns before SELECT started (shown in µs)
        (span_id(n, 1), 1_000, 2_000),
        (span_id(n, 0), 0, 1_000),
    ]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/meshscope/red", {"start": "x"}, 400),
        ("/api/meshscope/red", {"start": "10", "end": "5"}, 400),
        ("/api/meshscope/red", {"groupBy": "pod"}, 400),
        ("/api/meshscope/red", {"spanKind": "odd"}, 400),
        ("/api/meshscope/graph", {"end": "-1"}, 400),
        ("/api/meshscope/traces/xyz/stats", {}, 400),
        (f"/api/meshscope/traces/{'b' * 32}/stats", {}, 404),
    ],
)
def test_errors(client: TestClient, path: str, params: dict[str, str], status: int) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["error"]
