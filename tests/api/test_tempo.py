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


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("application/protobuf;q=0, application/json", "application/json"),
        ("application/json;q=0.5, application/protobuf;q=0.9", "application/protobuf"),
        ("*/*", "application/json"),
        ("", "application/json"),
    ],
)
def test_the_trace_comes_in_the_media_the_client_prefers(
    client: TestClient, accept: str, media: str
) -> None:
    response = client.get(f"/tempo/api/traces/{trace_id(3)}", headers={"Accept": accept})
    assert response.headers["content-type"] == media


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
    spans = client.get("/tempo/api/v2/search/tags", params={"scope": "span"}).json()["scopes"]
    assert [s["name"] for s in spans] == ["span"]
    every = client.get("/tempo/api/v2/search/tags", params={"scope": "all"}).json()["scopes"]
    assert every == v2
    assert client.get("/tempo/api/v2/search/tags", params={"scope": "event"}).json() == {
        "scopes": []
    }
    weird = client.get("/tempo/api/v2/search/tags", params={"scope": "weird"})
    assert weird.status_code == 400 and "invalid scope" in weird.text
    assert "customer.tier" in client.get("/tempo/api/search/tags").json()["tagNames"]
    services = client.get("/tempo/api/v2/search/tag/resource.service.name/values").json()
    assert {"type": "string", "value": "cart"} in services["tagValues"]
    tiers = client.get("/tempo/api/search/tag/customer.tier/values").json()["tagValues"]
    assert tiers == ["free", "gold"]
    codes = client.get("/tempo/api/v2/search/tag/span.http.status_code/values").json()
    assert codes["tagValues"] == [{"type": "int", "value": "200"}, {"type": "int", "value": "500"}]
    # Status and kind values are keywords (as Tempo): Grafana's builder leaves them unquoted.
    for tag, value in (("status", "error"), ("kind", "server")):
        found = client.get(f"/tempo/api/v2/search/tag/{tag}/values").json()["tagValues"]
        assert {"type": "keyword", "value": value} in found
        assert {v["type"] for v in found} == {"keyword"}
    names = client.get("/tempo/api/search/tag/name/values").json()["tagValues"]
    assert {"GET /checkout", "POST /cart", "SELECT"} <= set(names)


def test_tag_values_narrowed_by_the_query_so_far_and_the_time_range(client: TestClient) -> None:
    """Grafana's autocompletion sends the rest of the query as `q` and the picker's range as
    `start`/`end`; both were ignored (every value of every span came back)."""

    def values(tag: str, **params: Any) -> list[str]:
        url = f"/tempo/api/v2/search/tag/{tag}/values"
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        return [v["value"] for v in response.json()["tagValues"]]

    assert values("name") == ["GET /checkout", "POST /cart", "SELECT"]
    assert values("name", q='{ resource.service.name = "cart" }') == ["POST /cart", "SELECT"]
    assert values("resource.service.name", q="{ kind = server && duration > 20ms }") == [
        "cart", "frontend",
    ]  # fmt: skip
    assert values("span.http.status_code", q="{ status = error }") == ["500"]
    # A half-written query narrows nothing, as Tempo ignores what it cannot use.
    assert values("name", q='{ resource.service.name = "cart" && }') == values("name")
    # Only the traces of the range (the first 10 seconds: traces 0-9).
    early = values("span.http.status_code", start=T0 // S, end=T0 // S + 9)
    assert early == ["200", "500"]
    assert values("span.http.status_code", start=END_S + 100, end=END_S + 200) == []
    bad = client.get("/tempo/api/v2/search/tag/name/values", params={"start": "x"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "{ status = error } | rate()"}, "pipeline stage 'rate'"),
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


def _tag_search(client: TestClient, **params: Any) -> list[str]:
    """Trace ids a `tags`/`minDuration`/`maxDuration` search (no `q`) finds, sorted."""
    params = {"limit": 100, "start": T0 // S, "end": END_S} | params
    response = client.get("/tempo/api/search", params=params)
    assert response.status_code == 200, response.text
    return sorted(t["traceID"] for t in response.json()["traces"])


def _ids(ns: Any) -> list[str]:
    return sorted(trace_id(n) for n in ns)


ALL = range(TRACES)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("service.name=cart", ALL),
        ("service.name=does-not-exist", []),
        ("service.name=car", ALL),  # Tempo's well-known columns: substring,
        ("service.name=Cart", []),  # case-sensitive
        ("customer.tier=free", [n for n in ALL if n % 4 == 0]),
        ("customer.tier=fre", []),  # other attributes: the whole value
        ("http.status_code=500", [n for n in ALL if is_error(n)]),
        ("status.code=error customer.tier=free", [n for n in ALL if is_error(n) and n % 4 == 0]),
        ('name="POST /cart" k8s.pod.name=cart-7', ALL),
        ("name=SELEC", ALL),
        ('root.service.name=front root.name="GET /check"', ALL),
        ("root.service.name=cart", []),  # cart serves in every trace but is never the root
        # Each tag holds for some span of the trace, not necessarily the same one.
        ("db.system=postgresql http.status_code=500", [n for n in ALL if is_error(n)]),
        ("http.method=GET", []),
        ("db.system", []),  # a key alone asks for the empty value
    ],
)  # fmt: skip
def test_tag_search_against_known_traces(client: TestClient, tags: str, expected: Any) -> None:
    assert _tag_search(client, tags=tags) == _ids(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Trace durations: cart_ms + 4 ms, so 7 ms (even traces) and 34 ms (odd ones).
        ({"minDuration": "20ms"}, [n for n in ALL if cart_ms(n) == 30]),
        ({"minDuration": "1h"}, []),
        ({"maxDuration": "10ms"}, [n for n in ALL if cart_ms(n) == 3]),
        ({"minDuration": "7ms", "maxDuration": "7ms"}, [n for n in ALL if cart_ms(n) == 3]),
        ({"maxDuration": "0"}, ALL),  # 0: no bound
        ({"minDuration": "34.9ms"}, [n for n in ALL if cart_ms(n) == 30]),  # whole ms, as Tempo
        ({"minDuration": "0.03s", "tags": "customer.tier=free"},
         [n for n in ALL if cart_ms(n) == 30 and n % 4 == 0]),
        ({"q": "{ status = error }", "minDuration": "20ms"},
         [n for n in ALL if cart_ms(n) == 30 and is_error(n)]),
        ({"tags": "", "minDuration": "", "maxDuration": ""}, ALL),  # empty means absent
    ],
)  # fmt: skip
def test_duration_bounds_are_the_whole_traces(
    client: TestClient, params: dict[str, str], expected: Any
) -> None:
    assert _tag_search(client, **params) == _ids(expected)


def test_tag_search_answers_as_a_traceql_search(client: TestClient) -> None:
    body = client.get(
        "/tempo/api/search",
        params={"tags": "customer.tier=free", "limit": 2, "start": T0 // S, "end": END_S},
    ).json()
    assert [t["traceID"] for t in body["traces"]] == [trace_id(36), trace_id(32)]
    first = body["traces"][0]
    assert (first["rootServiceName"], first["rootTraceName"]) == ("frontend", "GET /checkout")
    assert first["durationMs"] == cart_ms(36) + 4
    (span,) = first["spanSet"]["spans"]
    assert {"key": "customer.tier", "value": {"stringValue": "free"}} in span["attributes"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "{}", "tags": "service.name=cart"}, "can't specify tags and q"),
        ({"minDuration": "not-a-duration"}, "minDuration"),
        ({"maxDuration": "1x"}, "maxDuration"),
        ({"minDuration": "-1s"}, "minDuration"),
        ({"minDuration": "1" * 20_000 + "s"}, "minDuration"),
        ({"maxDuration": "1s\x00"}, "maxDuration"),
        ({"minDuration": "5ms", "maxDuration": "1ms"}, "must be greater than minDuration"),
        # As Tempo's ParseSearchRequest: a maxDuration given is compared, 0 too.
        ({"minDuration": "5ms", "maxDuration": "0"}, "must be greater than minDuration"),
        ({"tags": 'service.name="cart'}, "unterminated quoted value"),
        ({"tags": 'a=b"c'}, "unexpected"),
        ({"tags": "=cart"}, "unexpected '='"),
        ({"tags": "a=b=c"}, "unexpected '='"),
        ({"tags": "service.name=ca\x00rt"}, "unexpected"),
        ({"tags": 'a="\x00"'}, "invalid quoted value"),
        ({"tags": "a=" + "x" * 20_000}, "longer than"),
        ({"tags": " ".join(f"k{i}=v" for i in range(65))}, "more than 64 tags"),
        ({"tags": "a=1 a=2"}, "tag a has been set twice"),
        ({"tags": "status.code=broken"}, "status.code"),
    ],
)
def test_bad_tag_searches_are_400_with_the_reason(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    response = client.get("/tempo/api/search", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text


def test_values_and_roots_are_written_as_tempo_writes_them() -> None:
    """v1 tag values print bools `true`/`false` and floats as Go does (`1`); an int and a
    float of one value are two values (Tempo keys them by type too); an unscoped tag has the
    span's and the resource's values; a trace whose root span has not come says `<root span
    not yet received>`."""
    from meshscope.app import build
    from meshscope.config import Config, PipelineConfig, StorageConfig
    from meshscope.model.batch import Batch
    from meshscope.model.spans import Span

    now_ns = T0 + 50 * S
    spans = [
        Span("a1" * 16, "01" * 8, "charge", "pay", now_ns, now_ns + S, parent_span_id="ff" * 8,
             attributes={"flag": True, "x": 1}),
        Span("b2" * 16, "02" * 8, "charge", "pay", now_ns, now_ns + S,
             attributes={"flag": False, "x": 1.0, "shared": "spanval"},
             resource={"shared": "resval"}),
    ]  # fmt: skip
    app = build(Config(storage=StorageConfig(kind="memory", path="unused"),
                       pipeline=PipelineConfig()))  # fmt: skip
    try:
        app.pipeline.consume(Batch(spans=spans))
        routes = tempo_routes(app.storage, lambda: now_ns + 10 * S)
        with TestClient(Starlette(routes=routes)) as client:
            window = {"start": str(now_ns // S - 60), "end": str(now_ns // S + 60)}
            v1 = client.get("/tempo/api/search/tag/flag/values", params=window).json()
            assert v1 == {"tagValues": ["false", "true"]}
            v2 = client.get("/tempo/api/v2/search/tag/span.x/values", params=window).json()
            assert sorted(v2["tagValues"], key=str) == sorted(
                [{"type": "int", "value": "1"}, {"type": "float", "value": "1"}], key=str
            )
            # An unscoped tag lists the span's and the resource's values, as Tempo reads both.
            shared = client.get("/tempo/api/v2/search/tag/.shared/values", params=window).json()
            assert sorted(v["value"] for v in shared["tagValues"]) == ["resval", "spanval"]
            found = client.get("/tempo/api/search", params={"q": "{}", **window}).json()
            roots = {t["traceID"]: t["rootServiceName"] for t in found["traces"]}
            assert roots == {"a1" * 16: "<root span not yet received>", "b2" * 16: "pay"}
    finally:
        app.storage.close()


def test_span_set_operators_answer_one_span_set_of_distinct_spans(client: TestClient) -> None:
    """As Tempo's SpansetOperation: `{A} && {B}` is one span set per trace with the spans of
    both, each once (it was a span set per side, a span in two)."""
    body = _search(client, '{ name = "SELECT" } && { kind = server }', start=T0 // S, end=END_S,
                   spss=10)  # fmt: skip
    assert body["traces"]
    for trace in body["traces"]:
        (spanset,) = trace["spanSets"]
        names = sorted(span["name"] for span in spanset["spans"])
        assert names == ["GET /checkout", "POST /cart", "SELECT"] and spanset["matched"] == 3
    same = _search(client, '{ name = "SELECT" } && { name = "SELECT" }', start=T0 // S,
                   end=END_S)  # fmt: skip
    assert all(t["spanSet"]["matched"] == 1 for t in same["traces"])


@pytest.mark.parametrize(
    ("q", "traces", "names"),
    [
        # The errors under frontend's root span: its client call and cart's server span.
        ('{ resource.service.name = "frontend" && kind = server } >> { status = error }',
         [n for n in range(TRACES) if is_error(n)], ["POST /cart", "POST /cart"]),
        ('{ resource.service.name = "cart" } > { name = "SELECT" }', list(range(TRACES)),
         ["SELECT"]),
        ('{ name = "SELECT" } << { kind = server }', list(range(TRACES)),
         ["GET /checkout", "POST /cart"]),
        ('{ resource.service.name = "cart" } !>> { status = error }',  # neither is under cart
         [n for n in range(TRACES) if is_error(n)], ["POST /cart", "POST /cart"]),
        ('{ name = "SELECT" } ~ {}', [], []),
    ],
)  # fmt: skip
def test_structural_operators_answer_the_right_side_spans(
    client: TestClient, q: str, traces: list[int], names: list[str]
) -> None:
    body = _search(client, q, start=T0 // S, end=END_S, spss=10)
    assert sorted(t["traceID"] for t in body["traces"]) == sorted(trace_id(n) for n in traces)
    for trace in body["traces"]:
        assert sorted(span["name"] for span in trace["spanSet"]["spans"]) == names


def test_pipelines_count_group_and_select(client: TestClient) -> None:
    """Tempo's pipeline stages: aggregates keep the traces whose span set passes (and name
    the value on it), `by()` answers a span set per group, `select()` adds fields."""
    errors = [n for n in range(TRACES) if is_error(n)]
    body = _search(client, "{ status = error } | count() > 1", start=T0 // S, end=END_S)
    assert sorted(t["traceID"] for t in body["traces"]) == sorted(trace_id(n) for n in errors)
    spanset = body["traces"][0]["spanSet"]
    assert spanset["matched"] == 2
    assert spanset["attributes"] == [{"key": "count()", "value": {"intValue": "2"}}]
    assert _search(client, "{ status = error } | count() > 2", start=T0 // S,
                   end=END_S)["traces"] == []  # fmt: skip
    slow = _search(client, '{ name = "POST /cart" } | max(duration) >= 25ms', start=T0 // S,
                   end=END_S)  # fmt: skip
    assert sorted(t["traceID"] for t in slow["traces"]) == sorted(
        trace_id(n) for n in range(TRACES) if cart_ms(n) == 30
    )
    body = _search(client, "{ kind = server } | by(resource.service.name) | select(.customer.tier)",
                   start=T0 // S, end=T0 // S, spss=5)  # fmt: skip
    (trace,) = body["traces"]  # trace 0: its server spans are frontend's and cart's
    groups = {s["attributes"][0]["value"]["stringValue"]: s for s in trace["spanSets"]}
    assert set(groups) == {"frontend", "cart"}
    assert groups["cart"]["attributes"][0]["key"] == "by(resource.service.name)"
    (cart,) = groups["cart"]["spans"]
    assert {"key": "customer.tier", "value": {"stringValue": "free"}} in cart["attributes"]
    assert trace["spanSet"] == trace["spanSets"][0]


def test_a_trace_that_began_before_the_range_and_lasts_into_it_is_found() -> None:
    """As Tempo, a trace is in a search's range when it overlaps it."""
    from meshscope.app import build
    from meshscope.config import Config, StorageConfig
    from meshscope.model.batch import Batch
    from meshscope.model.spans import Span

    t0 = T0 + 100 * S
    spans = [
        Span("d4" * 16, "01" * 8, "long job", "batch", t0, t0 + 3 * S),
        Span("d4" * 16, "02" * 8, "step", "batch", t0, t0 + S, parent_span_id="01" * 8),
    ]
    app = build(Config(storage=StorageConfig(kind="memory", path="unused")))
    try:
        app.pipeline.consume(Batch(spans=spans))
        with TestClient(Starlette(routes=tempo_routes(app.storage, lambda: t0 + 60 * S))) as c:

            def found(start_s: int) -> list[str]:
                params = {"q": "{}", "start": str(start_s), "end": str(t0 // S + 30)}
                return [
                    t["traceID"] for t in c.get("/tempo/api/search", params=params).json()["traces"]
                ]

            assert found(t0 // S + 2) == ["d4" * 16]  # began 2 s before, lasted into it
            assert found(t0 // S + 4) == []  # over before the range began
    finally:
        app.storage.close()
