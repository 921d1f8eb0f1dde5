"""Tempo's query API (`/tempo/...`) over the shop's known traces (tests/api/shop.py), asked
as Grafana's Tempo data source asks: trace by id as protobuf, TraceQL search, tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.tempo import tempo_routes
from tests.api.shop import T0, TRACES, S, cart_ms, is_error, shop_app, trace_id

END_S = T0 // S + TRACES


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with shop_app() as (app, _):
        routes = tempo_routes(app.storage, lambda: (T0 // S + TRACES + 10) * S)
        with TestClient(Starlette(routes=routes)) as c:
            yield c


def _search(client: TestClient, q: str, **params: Any) -> Any:
    response = client.get("/tempo/api/search", params={"q": q, "limit": 100} | params)
    assert response.status_code == 200, response.text
    return response.json()


def test_echo(client: TestClient) -> None:
    response = client.get("/tempo/api/echo")
    assert (response.status_code, response.text) == (200, "echo")


def test_trace_by_id_as_tempo_protobuf(client: TestClient) -> None:
    response = client.get(
        f"/tempo/api/traces/{trace_id(3)}", headers={"Accept": "application/protobuf"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/protobuf"
    # tempopb.Trace's `batches` is field 1, as ExportTraceServiceRequest's resource_spans.
    trace = ExportTraceServiceRequest.FromString(response.content)
    services = {
        next(a.value.string_value for a in b.resource.attributes if a.key == "service.name"):
        [s.name for scope in b.scope_spans for s in scope.spans]
        for b in trace.resource_spans
    }  # fmt: skip
    assert services == {
        "frontend": ["GET /checkout", "POST /cart"],
        "cart": ["POST /cart", "SELECT"],
    }
    cart = next(s for b in trace.resource_spans for sc in b.scope_spans for s in sc.spans
                if s.name == "POST /cart" and s.kind == 2)  # fmt: skip
    assert cart.trace_id.hex() == trace_id(3)
    assert cart.end_time_unix_nano - cart.start_time_unix_nano == cart_ms(3) * 10**6
    assert [e.name for e in cart.events] == ["cache miss"]
    pod = {a.key: a.value.string_value for b in trace.resource_spans for a in b.resource.attributes}
    assert pod["k8s.pod.name"] in ("frontend-1", "cart-7")


def test_trace_by_id_as_json_and_unknown_ids(client: TestClient) -> None:
    body = client.get(f"/tempo/api/traces/{trace_id(4)}").json()
    assert len(body["batches"]) == 2
    assert client.get(f"/tempo/api/traces/{'f' * 32}").status_code == 404
    assert client.get("/tempo/api/traces/not-hex").status_code == 400


def test_traceql_search_finds_the_failing_cart_calls(client: TestClient) -> None:
    q = '{ resource.service.name = "cart" && status = error }'
    body = _search(client, q, start=T0 // S, end=END_S)
    found = {t["traceID"] for t in body["traces"]}
    assert found == {trace_id(n) for n in range(TRACES) if is_error(n)}
    first = body["traces"][0]
    assert (first["rootServiceName"], first["rootTraceName"]) == ("frontend", "GET /checkout")
    n = int(first["traceID"], 16) - 0x5A00
    assert int(first["startTimeUnixNano"]) == T0 + n * S
    assert first["durationMs"] == cart_ms(n) + 4
    (span,) = first["spanSet"]["spans"]
    assert first["spanSet"]["matched"] == 1 and span["name"] == "POST /cart"
    assert {"key": "service.name", "value": {"stringValue": "cart"}} in span["attributes"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("{ duration > 20ms && name = \"POST /cart\" && kind = server }",
         [n for n in range(TRACES) if cart_ms(n) == 30]),
        ('{ .customer.tier = "free" }', [n for n in range(TRACES) if n % 4 == 0]),
        ('{ .customer.tier =~ "fr.*" && span.http.status_code >= 500 }',
         [n for n in range(TRACES) if n % 4 == 0 and is_error(n)]),
        ('{ name = "SELECT" } && { status = error }', [n for n in range(TRACES) if is_error(n)]),
        ('{ span.http.status_code = 500 } || { .customer.tier = "free" }',
         [n for n in range(TRACES) if is_error(n) or n % 4 == 0]),
        ('{ resource.k8s.pod.name = "cart-7" && .db.system = "postgresql" }', list(range(TRACES))),
        ('{ .customer.tier != "gold" && .customer.tier != "free" }', []),
    ],
)  # fmt: skip
def test_traceql_conditions_against_known_traces(
    client: TestClient, q: str, expected: list[int]
) -> None:
    body = _search(client, q, start=T0 // S, end=END_S)
    assert sorted(t["traceID"] for t in body["traces"]) == sorted(trace_id(n) for n in expected)


def test_search_limit_time_range_and_span_counts(client: TestClient) -> None:
    newest = _search(client, "{}", start=T0 // S, end=END_S, limit=3)["traces"]
    assert [t["traceID"] for t in newest] == [trace_id(n) for n in (39, 38, 37)]
    window = _search(client, "{}", start=T0 // S + 10, end=T0 // S + 14)["traces"]
    assert sorted(t["traceID"] for t in window) == [trace_id(n) for n in range(10, 15)]
    whole = _search(client, "{ kind = client }", start=T0 // S, end=T0 // S, spss=1)["traces"]
    assert whole[0]["spanSet"]["matched"] == 2 and len(whole[0]["spanSet"]["spans"]) == 1
    # The default range is the hour before now: all 40 traces.
    assert len(_search(client, "{}")["traces"]) == TRACES


def test_tags_and_values(client: TestClient) -> None:
    v2 = client.get("/tempo/api/v2/search/tags").json()["scopes"]
    by_scope = {s["name"]: s["tags"] for s in v2}
    assert {"service.name", "k8s.pod.name"} <= set(by_scope["resource"])
    assert {"http.status_code", "customer.tier", "db.system"} <= set(by_scope["span"])
    assert "duration" in by_scope["intrinsic"]
    assert "customer.tier" in client.get("/tempo/api/search/tags").json()["tagNames"]
    services = client.get("/tempo/api/v2/search/tag/resource.service.name/values").json()
    assert {"type": "string", "value": "cart"} in services["tagValues"]
    tiers = client.get("/tempo/api/search/tag/customer.tier/values").json()["tagValues"]
    assert tiers == ["free", "gold"]
    codes = client.get("/tempo/api/v2/search/tag/span.http.status_code/values").json()
    assert codes["tagValues"] == [{"type": "int", "value": "200"}, {"type": "int", "value": "500"}]
    names = client.get("/tempo/api/search/tag/name/values").json()["tagValues"]
    assert {"GET /checkout", "POST /cart", "SELECT"} <= set(names)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "{ status = error } | count() > 1"}, "pipelines"),
        ({"q": "{ nope = 1 }"}, "unknown field"),
        ({"q": "{}", "limit": "0"}, "limit"),
        ({"q": "{}", "start": "later"}, "start"),
        ({"q": "{}", "start": "100", "end": "10"}, "end"),
    ],
)
def test_bad_searches_are_400_with_the_reason(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    response = client.get("/tempo/api/search", params=params)
    assert response.status_code == 400 and message in response.text
