"""The Prometheus HTTP API routes over an in-memory store."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.params import MAX_FORM_BYTES
from meshscope.api.prometheus import parse_duration, parse_time, prometheus_routes
from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.budget import QueryLimits
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.store.memory import MemoryMetricStore

T0 = 1_700_000_000  # seconds


@pytest.fixture
def client() -> TestClient:
    store = MemoryMetricStore()
    points = []
    for i in range(21):
        t = (T0 + 15 * i) * 10**9
        for job in ("api", "web"):
            labels = (("instance", "a"), ("job", job))
            points.append(
                MetricPoint(
                    "requests_total",
                    labels,
                    t,
                    MetricType.COUNTER,
                    value=float(10 * i),
                    help="Requests.",
                )
            )
        hist = Histogram((0.1, 1.0), (i, i, 1), 0.5 * i, 2 * i + 1)
        points.append(
            MetricPoint(
                "latency_seconds", (("job", "api"),), t, MetricType.HISTOGRAM, histogram=hist
            )
        )
    store.write_points(points)
    app = Starlette(routes=prometheus_routes(MetricStoreQueryable(store)))
    return TestClient(app)


def test_instant_query_vector(client: TestClient) -> None:
    response = client.get(
        "/api/v1/query", params={"query": "requests_total", "time": str(T0 + 300)}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    result = sorted(body["data"]["result"], key=lambda r: r["metric"]["job"])
    assert result[0] == {
        "metric": {"__name__": "requests_total", "instance": "a", "job": "api"},
        "value": [T0 + 300, "200"],
    }


def test_instant_query_scalar_string_and_special_values(client: TestClient) -> None:
    body = client.get("/api/v1/query", params={"query": "1/0", "time": "10.5"}).json()
    assert body["data"] == {"resultType": "scalar", "result": [10.5, "+Inf"]}
    body = client.get("/api/v1/query", params={"query": "-1/0", "time": "10"}).json()
    assert body["data"]["result"] == [10, "-Inf"]
    body = client.get("/api/v1/query", params={"query": "0/0", "time": "10"}).json()
    assert body["data"]["result"] == [10, "NaN"]
    body = client.get("/api/v1/query", params={"query": '"hello"', "time": "10"}).json()
    assert body["data"] == {"resultType": "string", "result": [10, "hello"]}


def test_instant_query_matrix(client: TestClient) -> None:
    body = client.get(
        "/api/v1/query", params={"query": "requests_total[30s]", "time": str(T0 + 300)}
    ).json()
    assert body["data"]["resultType"] == "matrix"
    assert body["data"]["result"][0]["values"][-1] == [T0 + 300, "200"]
    assert len(body["data"]["result"][0]["values"]) == 3


def test_query_range_get_and_post(client: TestClient) -> None:
    params = {
        "query": "sum by (job) (rate(requests_total[1m]))",
        "start": str(T0 + 60),
        "end": str(T0 + 300),
        "step": "1m",
    }
    got = client.get("/api/v1/query_range", params=params).json()
    posted = client.post("/api/v1/query_range", data=params).json()
    assert got == posted
    assert got["data"]["resultType"] == "matrix"
    api = next(r for r in got["data"]["result"] if r["metric"] == {"job": "api"})
    assert [t for t, _ in api["values"]] == [T0 + 60, T0 + 120, T0 + 180, T0 + 240, T0 + 300]
    assert all(float(v) == pytest.approx(10 / 15) for _, v in api["values"])


def test_query_range_rfc3339_and_float_step(client: TestClient) -> None:
    params = {
        "query": "histogram_quantile(0.5, rate(latency_seconds_bucket[1m]))",
        "start": "2023-11-14T22:14:20Z",
        "end": "2023-11-14T22:16:20.000Z",
        "step": "60",
    }
    body = client.get("/api/v1/query_range", params=params).json()
    assert body["status"] == "success"
    assert [t for t, _ in body["data"]["result"][0]["values"]] == [T0 + 60, T0 + 120, T0 + 180]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/query", {"query": "sum("}),
        ("/api/v1/query", {}),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}),
        ("/api/v1/query_range", {"query": "up", "start": "1", "end": "0", "step": "1"}),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "0"}),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "soon"}),
        ("/api/v1/query_range", {"query": "up[5m]", "start": "0", "end": "10", "step": "1"}),
        # Prometheus' duration strings: units in order, each once, within ~292 years.
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "1h1h"}),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "1s1m"}),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "0s"}),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "300y"}),
        ("/api/v1/query", {"query": "up", "timeout": "0s"}),
        ("/api/v1/query", {"query": "up", "timeout": "1s1m"}),
        ("/api/v1/series", {}),
        ("/api/v1/metadata", {"limit": "abc"}),
        ("/api/v1/metadata", {"limit_per_metric": "x"}),
    ],
)
def test_bad_params_are_400(client: TestClient, path: str, params: dict[str, str]) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert body["error"]


def test_execution_errors_are_422(client: TestClient) -> None:
    response = client.get("/api/v1/query", params={"query": "mad_over_time(requests_total[5m])"})
    assert response.status_code == 422
    assert response.json()["errorType"] == "execution"
    assert "mad_over_time" in response.json()["error"]
    response = client.get(
        "/api/v1/query",
        params={"query": "requests_total + on(instance) requests_total", "time": str(T0 + 300)},
    )
    assert response.status_code == 422


def test_series_labels_and_values(client: TestClient) -> None:
    body = client.get("/api/v1/series", params={"match[]": "requests_total"}).json()
    assert body["data"] == [
        {"__name__": "requests_total", "instance": "a", "job": "api"},
        {"__name__": "requests_total", "instance": "a", "job": "web"},
    ]
    body = client.post("/api/v1/series", data={"match[]": ['{__name__=~"latency.*_count"}']}).json()
    assert body["data"] == [{"__name__": "latency_seconds_count", "job": "api"}]
    assert client.get("/api/v1/labels").json()["data"] == ["__name__", "instance", "job", "le"]
    names = client.get("/api/v1/label/__name__/values").json()["data"]
    assert names == [
        "latency_seconds_bucket",
        "latency_seconds_count",
        "latency_seconds_sum",
        "requests_total",
    ]
    les = client.get("/api/v1/label/le/values").json()["data"]
    assert les == ["+Inf", "0.1", "1"]
    jobs = client.get("/api/v1/label/job/values", params={"match[]": "requests_total"}).json()
    assert jobs["data"] == ["api", "web"]


def test_metadata_and_buildinfo(client: TestClient) -> None:
    body = client.get("/api/v1/metadata").json()
    assert body["data"]["requests_total"] == [{"type": "counter", "help": "Requests.", "unit": ""}]
    assert body["data"]["latency_seconds"][0]["type"] == "histogram"
    assert list(client.get("/api/v1/metadata", params={"limit": "1"}).json()["data"]) == [
        sorted(body["data"])[0]
    ]
    assert client.get("/api/v1/metadata", params={"limit": "0"}).json()["data"] == {}
    assert client.get("/api/v1/metadata", params={"limit": "-1"}).json()["data"] == body["data"]
    info = client.get("/api/v1/status/buildinfo").json()
    assert info["status"] == "success"
    assert "version" in info["data"]


def test_parse_time_and_duration() -> None:
    assert parse_time("1.5") == 1500
    assert parse_time("1970-01-01T00:00:02Z") == 2000
    assert parse_time("1970-01-01T00:00:02.250+00:00") == 2250
    assert parse_duration("1m30s", "step") == 90_000
    assert parse_duration("0.5", "step") == 500
    assert parse_duration("1y2w3d4h5m6s7ms", "step") == (
        ((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7
    )
    assert parse_duration("0", "step") == parse_duration("0s", "step") == 0
    assert parse_duration("292y", "step") == 292 * 365 * 86_400_000


def test_metadata_answers_are_cut_at_limit_and_at_the_setting(client: TestClient) -> None:
    """`limit` (Prometheus 2.49) and the query.max_label_values setting cut /labels,
    /label/{name}/values and /series, with Prometheus' warning; under the cap, no warning."""
    names = client.get("/api/v1/labels").json()
    assert names["data"] == ["__name__", "instance", "job", "le"] and "warnings" not in names
    cut = client.get("/api/v1/labels", params={"limit": "2"}).json()
    assert cut == {
        "status": "success",
        "data": ["__name__", "instance"],
        "warnings": ["results truncated due to limit"],
    }
    assert "warnings" not in client.get("/api/v1/labels", params={"limit": "4"}).json()
    series = client.post("/api/v1/series", data={"match[]": "requests_total", "limit": "1"})
    assert len(series.json()["data"]) == 1 and series.json()["warnings"]
    bad = client.get("/api/v1/label/job/values", params={"limit": "-1"})
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"

    client.app.state.query_limits = QueryLimits(max_label_values=1)  # type: ignore[attr-defined]
    for path in ("/api/v1/labels", "/api/v1/label/job/values", "/api/v1/label/__name__/values"):
        body = client.get(path).json()
        assert len(body["data"]) == 1 and body["warnings"] == ["results truncated due to limit"]
        # `limit` 0 means none: the setting still caps it; a larger `limit` cannot lift it
        assert len(client.get(path, params={"limit": "0"}).json()["data"]) == 1
        assert len(client.get(path, params={"limit": "10"}).json()["data"]) == 1
    body = client.get("/api/v1/series", params={"match[]": '{job=~".+"}'}).json()
    assert len(body["data"]) == 1 and body["warnings"]


def test_listings_past_the_series_limit_are_cut_not_refused(client: TestClient) -> None:
    """Past query.max_series a listing answers the labels of the first series it found, with
    Prometheus' warning once (it answered 422, so Grafana's label browser showed nothing with
    more series than the limit); a query over as many series is still refused."""
    limits = QueryLimits(max_series=2, max_label_values=2)
    client.app.state.query_limits = limits  # type: ignore[attr-defined]
    series = client.get("/api/v1/series", params={"match[]": '{__name__=~".+"}'})
    assert series.status_code == 200, series.text
    assert len(series.json()["data"]) == 2
    assert series.json()["warnings"] == ["results truncated due to limit"]
    values = client.get("/api/v1/label/job/values").json()
    assert values["status"] == "success" and values["warnings"] == [
        "results truncated due to limit"
    ]
    assert set(values["data"]) <= {"api", "web"}
    # Cut by both the series limit and the label-value cap: the warning is given once.
    client.app.state.query_limits = QueryLimits(max_series=2, max_label_values=1)  # type: ignore[attr-defined]
    twice = client.get("/api/v1/series", params={"match[]": '{__name__=~".+"}'}).json()
    assert len(twice["data"]) == 1 and twice["warnings"] == ["results truncated due to limit"]
    client.app.state.query_limits = limits  # type: ignore[attr-defined]
    query = {"query": 'count({__name__=~".+"})', "time": str(T0 + 300)}
    refused = client.get("/api/v1/query", params=query)
    assert refused.status_code == 422 and "query.max_series" in refused.json()["error"]


def test_a_form_over_10_mib_is_refused_unread(client: TestClient) -> None:
    """As Go's ParseForm (Prometheus, Loki): a read's form body is at most 10 MiB."""
    body = "query=" + "1" * MAX_FORM_BYTES
    response = client.post(
        "/api/v1/query", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400 and "POST too large" in response.json()["error"]
    response = client.post("/api/v1/query", data={"query": "1 + 1"})
    assert response.json()["data"]["result"][1] == "2"


def test_a_summary_is_one_family_in_the_metadata() -> None:
    """As Prometheus: an OTLP summary's quantiles, `_sum` and `_count` are one `summary`."""
    from meshscope.ingest.otlp_metrics import decode_metrics_json

    doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "rpc.latency", "unit": "s", "description": "RPC latency.",
         "summary": {"dataPoints": [{"timeUnixNano": 7, "count": "2", "sum": 1.5,
                                     "quantileValues": [{"quantile": 0.5, "value": 0.7}]}]}},
        {"name": "plain_count", "gauge": {"dataPoints": [{"timeUnixNano": 7, "asInt": "1"}]}},
    ]}]}]}  # fmt: skip
    store = MemoryMetricStore()
    store.write_points(decode_metrics_json(json.dumps(doc).encode()).batch.metrics)
    metadata = MetricStoreQueryable(store).metadata()
    assert {name: info.type for name, info in metadata.items()} == {
        "rpc_latency_seconds": "summary",
        "plain_count": "gauge",
    }
