"""Jaeger's SPM API (`/api/metrics/*`, the Monitor tab) over known span metrics
(tests/query/slo_data: `api` serves 100 `GET /` calls a minute, 8 of them failing and
300 ms long from minute 60 to 419, the rest 3 ms; 5 failing client spans of `api` and 10
failing server spans of `db` a minute), requested as Jaeger UI requests them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.jaeger_metrics import jaeger_metrics_routes
from tests.query.slo_data import MINUTE, load

AT_MIN = 300  # inside the steady 8 % failure stretch


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[TestClient, int]]:
    storage, start = load()
    now = start + AT_MIN * MINUTE
    app = Starlette(routes=jaeger_metrics_routes(storage.metrics, lambda: now))
    with TestClient(app) as c:
        yield c, now // 10**6


def _get(client: TestClient, kind: str, **params: Any) -> Any:
    base = {"service": "api", "step": 60000, "ratePer": 600000, "lookback": 1800000}
    response = client.get(f"/api/metrics/{kind}", params=base | params)
    assert response.status_code == 200, response.text
    return response.json()


def _values(family: dict[str, Any]) -> dict[tuple[str, ...], list[float]]:
    return {
        tuple(label["value"] for label in metric["labels"]): [
            p["gaugeValue"]["doubleValue"] for p in metric["metricPoints"]
        ]
        for metric in family["metrics"]
    }


def test_calls_per_second_in_jaegers_metric_family_shape(client: tuple[TestClient, int]) -> None:
    http, _ = client
    family = _get(http, "calls")
    assert (family["name"], family["type"]) == ("service_call_rate", "GAUGE")
    assert family["help"] == "calls/sec, grouped by service"
    (metric,) = family["metrics"]
    assert metric["labels"] == [{"name": "service_name", "value": "api"}]
    points = metric["metricPoints"]
    assert len(points) == 31  # 30 min at 1 min steps, both ends
    assert points[-1]["timestamp"].endswith("Z")
    assert all(p["gaugeValue"]["doubleValue"] == pytest.approx(100 / 60) for p in points)


def test_error_rate_and_latency_quantile(client: tuple[TestClient, int]) -> None:
    http, _ = client
    errors = _get(http, "errors")
    assert errors["name"] == "service_error_rate"
    assert _values(errors)[("api",)] == [pytest.approx(0.08)] * 31
    latencies = _get(http, "latencies", quantile=0.95)
    assert latencies["name"] == "service_latencies"
    assert latencies["help"] == "0.95th quantile latency, grouped by service"
    # 92 % of calls in the le=4 bucket, 8 % in (200, 400]: p95 interpolates to
    # 200 + (0.95 - 0.92) / 0.08 * 200 ms.
    assert _values(latencies)[("api",)] == [pytest.approx(275)] * 31


def test_grouped_by_operation_and_other_span_kinds(client: tuple[TestClient, int]) -> None:
    http, _ = client
    grouped = _get(http, "calls", groupByOperation="true")
    assert grouped["name"] == "service_operation_call_rate"
    assert grouped["metrics"][0]["labels"] == [
        {"name": "service_name", "value": "api"},
        {"name": "operation", "value": "GET /"},
    ]
    clients = _get(http, "errors", spanKind="client")  # 5 client calls a minute, all failing
    assert _values(clients)[("api",)] == [pytest.approx(1.0)] * 31
    both = _get(http, "calls", service=["api", "db"])
    assert sorted(_values(both)) == [("api",), ("db",)]
    assert _get(http, "calls", service="nobody")["metrics"] == []


def test_no_errors_is_a_zero_rate_not_a_gap(client: tuple[TestClient, int]) -> None:
    http, now_ms = client
    quiet = _get(http, "errors", endTs=now_ms - 260 * 60_000, lookback=600000)  # minute 40
    assert set(_values(quiet)[("api",)]) == {0.0}


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("calls", {"service": ""}, "service"),
        ("latencies", {"service": "api"}, "quantile"),
        ("latencies", {"service": "api", "quantile": "1.5"}, "quantile"),
        ("calls", {"service": "api", "step": "soon"}, "step"),
        ("calls", {"service": "api", "spanKind": "sideways"}, "unsupported span kind"),
        ("calls", {"service": "api", "groupByOperation": "maybe"}, "groupByOperation"),
        ("calls", {"service": "api", "lookback": "86400000", "step": "1"}, "points"),
    ],
)
def test_bad_parameters_are_400s_in_the_jaeger_envelope(
    client: tuple[TestClient, int], kind: str, params: dict[str, str], message: str
) -> None:
    response = client[0].get(f"/api/metrics/{kind}", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["data"] is None and body["errors"][0]["code"] == 400
    assert message in body["errors"][0]["msg"]
