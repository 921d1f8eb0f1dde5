"""What the sidecar tells meshscope: spans, parent links, attributes, the derived edge and
access logs, read back from the real OTLP/HTTP receiver, pipeline and in-memory store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from meshscope.model.ids import new_span_id, new_trace_id
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.servicegraph import REQUESTS
from meshscope.sidecar.runner import RunningSidecars
from meshscope.sidecar.settings import ExportSettings
from meshscope.store.base import LabelMatcher, LogQuery, MatchOp
from tests.ingest.servers import PipelineSink, running_http
from tests.sidecar.harness import LoopThread, running_sidecars, running_upstream, sidecar


class Mesh:
    """web's sidecar (with an egress routing `api`) and api's sidecar, both in front of the
    same echo app; the test plays the web application between the two."""

    def __init__(self, sink: PipelineSink, running: RunningSidecars) -> None:
        self.sink = sink
        self.web = f"http://127.0.0.1:{running.ports['web/inbound']}"
        self.egress = f"http://127.0.0.1:{running.ports['web/egress']}"

    def trace(self, trace_id: str, count: int, timeout: float = 10.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.sink.storage.traces.get_trace(trace_id)
            if len(spans) >= count:
                return spans
            time.sleep(0.05)
        raise AssertionError(f"trace {trace_id} has {len(spans)} spans, expected {count}")


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    loop = LoopThread()
    sink = PipelineSink()
    try:
        with running_http(sink) as endpoint, running_upstream(loop) as upstream:
            export = ExportSettings(endpoint=endpoint, flush_interval_s=0.05)
            with running_sidecars(loop, [sidecar("api", upstream)], export) as api:
                routes = {"api": f"http://127.0.0.1:{api.ports['api/inbound']}"}
                with running_sidecars(loop, [sidecar("web", upstream, routes)], export) as web:
                    yield Mesh(sink, web)
    finally:
        loop.close()


def _by_kind(spans: list[Span]) -> dict[tuple[str, SpanKind], Span]:
    return {(span.service, span.kind): span for span in spans}


def test_a_request_through_two_sidecars_is_one_trace_with_correct_parents(mesh: Mesh) -> None:
    trace_id, outside_parent = new_trace_id(), new_span_id()
    inbound = httpx.get(
        f"{mesh.web}/echo/orders/42?verbose=1",
        headers={"traceparent": f"00-{trace_id}-{outside_parent}-01", "tracestate": "k=v",
                 "User-Agent": "tester/1"},
    ).json()  # fmt: skip
    _, seen_trace, web_server_id, _ = inbound["headers"]["traceparent"].split("-")
    assert seen_trace == trace_id
    # The caller's tracestate goes on, behind the sidecar's own entry (sidecar_mark).
    assert inbound["headers"]["tracestate"] == f"meshscope={web_server_id},k=v"
    # The web application calls api through its egress, propagating its context:
    outbound = httpx.post(
        f"{mesh.egress}/api/echo/charge?x=1",
        content=b"{}",
        headers={"traceparent": inbound["headers"]["traceparent"]},
    ).json()
    assert outbound["raw_path"] == "/echo/charge?x=1"
    assert "x-meshscope-source" not in outbound["headers"]  # mesh-internal, stripped
    _, _, api_server_id, _ = outbound["headers"]["traceparent"].split("-")

    spans = _by_kind(mesh.trace(trace_id, 3))
    server, client, api = (
        spans[("web", SpanKind.SERVER)],
        spans[("web", SpanKind.CLIENT)],
        spans[("api", SpanKind.SERVER)],
    )
    assert (server.span_id, server.parent_span_id) == (web_server_id, outside_parent)
    assert client.parent_span_id == web_server_id
    assert (api.span_id, api.parent_span_id) == (api_server_id, client.span_id)
    assert server.name == "GET /echo/orders/{id}"
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["url.path"] == "/echo/orders/42"
    assert server.attributes["url.query"] == "verbose=1"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["user_agent.original"] == "tester/1"
    assert server.attributes["network.peer.address"] == "127.0.0.1"
    assert server.attributes["server.address"] == "127.0.0.1"
    assert client.attributes["peer.service"] == "api"
    assert client.attributes["url.path"] == "/echo/charge"
    assert api.attributes["source.service"] == "web"
    assert server.trace_state == f"meshscope={web_server_id},k=v"
    assert server.attributes["meshscope.sidecar"] is True
    assert client.attributes["meshscope.sidecar"] is True
    assert server.start_ns <= client.start_ns <= api.start_ns <= api.end_ns <= client.end_ns

    # The pipeline paired web's CLIENT with api's SERVER span: one edge, one access log;
    # web's sidecar sent the access log of the request that entered from outside.
    access = mesh.sink.storage.logs.find_logs(LogQuery(trace_id=trace_id, access=True))
    pairs = sorted(
        (r.attributes["source.service"], r.attributes["destination.service"]) for r in access
    )
    assert pairs == [("unknown", "web"), ("web", "api")]
    mesh.sink.pipeline.flush()
    edges = mesh.sink.storage.metrics.latest(
        REQUESTS, [LabelMatcher("client", MatchOp.EQ, "web")], time.time_ns(), 60 * 10**9
    )
    assert [dict(s.labels)["server"] for s in edges] == ["api"]


def test_5xx_marks_the_span_as_error_and_starts_a_trace_without_context(mesh: Mesh) -> None:
    response = httpx.get(f"{mesh.web}/status/503")
    assert response.status_code == 503
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = mesh.sink.storage.logs.find_logs(
            LogQuery(access=True, body_contains=("/status/503",))
        )
        if logs:
            break
        time.sleep(0.05)
    (record,) = logs
    (span,) = mesh.trace(record.trace_id, 1)
    assert span.parent_span_id == ""
    assert span.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"


def test_b3_single_and_multi_headers_are_continued(mesh: Mesh) -> None:
    trace_id, parent = new_trace_id(), new_span_id()
    seen = httpx.get(f"{mesh.web}/echo", headers={"b3": f"{trace_id}-{parent}-1"}).json()["headers"]
    assert seen["traceparent"].split("-")[1] == trace_id
    b3_trace, b3_span, b3_sampled = seen["b3"].split("-")
    assert (b3_trace, b3_sampled) == (trace_id, "1")
    assert b3_span == seen["traceparent"].split("-")[2] != parent

    short = new_span_id()  # a 64-bit B3 trace id is left-padded to 128 bits
    seen = httpx.get(
        f"{mesh.web}/echo",
        headers={"X-B3-TraceId": short, "X-B3-SpanId": parent, "X-B3-Sampled": "1"},
    ).json()["headers"]
    assert seen["x-b3-traceid"] == "0" * 16 + short
    (span,) = mesh.trace("0" * 16 + short, 1)
    assert span.parent_span_id == parent


def test_unsampled_requests_are_proxied_but_not_traced(mesh: Mesh) -> None:
    trace_id = new_trace_id()
    seen = httpx.get(
        f"{mesh.web}/echo", headers={"traceparent": f"00-{trace_id}-{new_span_id()}-00"}
    ).json()["headers"]
    assert seen["traceparent"].endswith("-00")
    traced = new_trace_id()  # a sampled request sent after it: once it is in, the other is not
    httpx.get(f"{mesh.web}/echo", headers={"traceparent": f"00-{traced}-{new_span_id()}-01"})
    mesh.trace(traced, 1)
    assert mesh.sink.storage.traces.get_trace(trace_id) == []


def test_unknown_egress_target_is_a_clear_404(mesh: Mesh) -> None:
    response = httpx.get(f"{mesh.egress}/nowhere/x")
    assert response.status_code == 404
    assert "targets: api" in response.text


def test_an_aborted_response_is_a_failure_in_the_span_and_the_access_log(mesh: Mesh) -> None:
    with pytest.raises(httpx.HTTPError):  # the upstream broke off mid-body: so do we
        httpx.get(f"{mesh.web}/broken")
    deadline = time.monotonic() + 10
    logs: list[LogRecord] = []
    while not logs and time.monotonic() < deadline:
        logs = mesh.sink.storage.logs.find_logs(LogQuery(access=True, body_contains=("/broken",)))
        time.sleep(0.05)
    (record,) = logs
    (span,) = mesh.trace(record.trace_id, 1)
    assert span.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "response_aborted"
    assert record.attributes["error"] is True


def test_egress_spans_name_the_decoded_path_as_the_inbound_side_does(mesh: Mesh) -> None:
    trace_id = new_trace_id()
    parent = f"00-{trace_id}-{new_span_id()}-01"
    httpx.get(f"{mesh.egress}/api/echo/caf%C3%A9/42", headers={"traceparent": parent})
    spans = _by_kind(mesh.trace(trace_id, 2))
    client, server = spans[("web", SpanKind.CLIENT)], spans[("api", SpanKind.SERVER)]
    assert client.attributes["url.path"] == server.attributes["url.path"] == "/echo/café/42"
    assert client.name == server.name == "GET /echo/café/{id}"
