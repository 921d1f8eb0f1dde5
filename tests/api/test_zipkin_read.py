"""The Zipkin v2 read API on the real Zipkin app, over known data (tests/api/shop.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.shop import T0, TRACES, S, is_error, shop_app, span_id, trace_id

END_MS = (T0 + 100 * S) // 10**6


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with shop_app() as (app, _):
        yield TestClient(app.zipkin)


def _get(client: TestClient, path: str, params: Any = None) -> Any:
    response = client.get("/api/v2" + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_services_span_names_remote_services(client: TestClient) -> None:
    assert _get(client, "/services") == ["cart", "frontend"]
    assert _get(client, "/spans", {"serviceName": "cart"}) == ["POST /cart", "SELECT"]
    assert _get(client, "/remoteServices", {"serviceName": "frontend"}) == ["cart"]
    assert _get(client, "/remoteServices", {"serviceName": "cart"}) == ["carts"]


def test_trace_in_zipkin_model(client: TestClient) -> None:
    n = 5
    spans = {s["id"]: s for s in _get(client, f"/trace/{trace_id(n)}")}
    server = spans[span_id(n, 2)]
    assert server == {
        "traceId": f"{0x5A00 + n:016x}",  # high 64 bits zero: written as a 64-bit id
        "id": span_id(n, 2),
        "parentId": span_id(n, 1),
        "kind": "SERVER",
        "name": "POST /cart",
        "timestamp": (T0 + n * S) // 1000 + 2000,
        "duration": 30_000,
        "localEndpoint": {"serviceName": "cart"},
        # An event with attributes as the OTel Zipkin exporters write it (ingest reads it back).
        "annotations": [
            {"timestamp": (T0 + n * S) // 1000 + 2000, "value": '{"cache miss":{"key":"cart:1"}}'}
        ],
        "tags": {"http.status_code": "500", "customer.tier": "gold",
                 "otel.status_code": "ERROR", "error": "out of stock"},
    }  # fmt: skip
    assert "parentId" not in spans[span_id(n, 0)]
    # A 16-hex id finds the same trace; traceMany returns the found ones only.
    assert len(_get(client, f"/trace/{0x5A00 + n:016x}")) == 4
    many = _get(client, "/traceMany", {"traceIds": f"{trace_id(1)},{'e' * 32},{trace_id(2)}"})
    assert [t[0]["traceId"] for t in many] == [f"{0x5A01:016x}", f"{0x5A02:016x}"]


def test_search(client: TestClient) -> None:
    base = {"endTs": END_MS, "lookback": 3_600_000}
    found = _get(client, "/traces", {**base, "serviceName": "cart"})
    assert len(found) == 10  # default limit
    assert found[0][0]["traceId"] == f"{0x5A00 + TRACES - 1:016x}"
    errors = _get(client, "/traces", {**base, "serviceName": "cart", "annotationQuery": "error",
                                      "limit": 100})  # fmt: skip
    assert len(errors) == sum(is_error(n) for n in range(TRACES))
    query = "http.status_code=500 and cache miss"
    tagged = _get(client, "/traces", {**base, "annotationQuery": query, "limit": 100})
    assert len(tagged) == len(errors)
    assert _get(client, "/traces", {**base, "annotationQuery": "nothing-like-this"}) == []
    slow = _get(client, "/traces", {**base, "spanName": "POST /cart", "minDuration": 20_000,
                                    "limit": 100})  # fmt: skip
    assert len(slow) == TRACES // 2


def test_dependencies(client: TestClient) -> None:
    links = _get(client, "/dependencies", {"endTs": END_MS})
    errors = sum(is_error(n) for n in range(TRACES))
    assert links == [
        {"parent": "cart", "child": "carts", "callCount": TRACES},
        {"parent": "frontend", "child": "cart", "callCount": TRACES, "errorCount": errors},
    ]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/trace/zzz", {}, 400),
        (f"/trace/{'a' * 32}", {}, 404),
        ("/spans", {}, 400),
        ("/traces", {"endTs": "x"}, 400),
        ("/traces", {"minDuration": "-5"}, 400),
        ("/traces", {"limit": "100000"}, 400),
        ("/traces", {"annotationQuery": "=x"}, 400),
        ("/traceMany", {}, 400),
        ("/traceMany", {"traceIds": ", ,"}, 400),  # empty, as Zipkin's server
        ("/dependencies", {}, 400),
        ("/dependencies", {"endTs": "1", "lookback": "x"}, 400),
    ],
)
def test_errors(client: TestClient, path: str, params: dict[str, str], status: int) -> None:
    response = client.get("/api/v2" + path, params=params)
    assert response.status_code == status and response.text


def test_search_as_zipkins_query_request() -> None:
    """remoteServiceName selects spans of the service calling it (`peer.service`); the
    service constrains bare annotation words; `key=` is the key with any value; a maxDuration
    without minDuration and minDuration <= 0 are 400s, as QueryRequest.Builder.build()."""
    from meshscope.app import build
    from meshscope.config import Config, StorageConfig
    from meshscope.model.batch import Batch
    from meshscope.model.spans import Span, SpanEvent, SpanKind

    t0 = T0 + 40 * S
    tid = "c0" * 16
    spans = [
        Span(tid, "01" * 8, "GET /", "frontend", t0, t0 + S, kind=SpanKind.CLIENT,
             attributes={"peer.service": "cart", "tier": "gold"}),
        Span(tid, "02" * 8, "POST /cart", "cart", t0, t0 + S, parent_span_id="01" * 8,
             kind=SpanKind.SERVER, events=(SpanEvent(t0 + 5, "retry"),)),
    ]  # fmt: skip
    app = build(Config(storage=StorageConfig(kind="memory", path="unused")))
    try:
        app.pipeline.consume(Batch(spans=spans))
        client = TestClient(app.zipkin)
        base = {"endTs": (t0 + 10 * S) // 10**6, "lookback": 3_600_000}

        def found(**params: Any) -> list[str]:
            return [t[0]["traceId"] for t in _get(client, "/traces", {**base, **params})]

        assert found(serviceName="frontend", remoteServiceName="cart") == [tid]
        assert found(serviceName="frontend", remoteServiceName="payments") == []
        assert found(serviceName="cart", annotationQuery="retry") == [tid]
        assert found(serviceName="frontend", annotationQuery="retry") == []  # cart's annotation
        assert found(serviceName="frontend", annotationQuery="tier=") == [tid]
        for bad in ({"maxDuration": "100"}, {"minDuration": "0"}):
            response = client.get("/api/v2/traces", params={**base, **bad})
            assert response.status_code == 400, bad
    finally:
        app.storage.close()
