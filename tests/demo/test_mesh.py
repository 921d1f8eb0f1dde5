"""End to end: the demo mesh (real sidecars and services processes) sending to a real
meshscope pipeline; the test drives the traffic itself and checks the store against it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from meshscope.app import App
from meshscope.demo.faults import Faults
from meshscope.demo.topology import DemoSettings
from meshscope.model.ids import new_span_id, new_trace_id
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.servicegraph import REQUESTS
from meshscope.store.base import LogQuery
from tests.demo.mesh import demo_children, free_port_range, in_process_meshscope

CHECKOUT = ("web", "api"), ("api", "cache"), ("api", "db"), ("api", "worker")
CHECKOUT_FAILED = ("web", "api"), ("api", "cache"), ("api", "db")
BROWSE = ("web", "api"), ("api", "cache")
# sidecar SERVER + app INTERNAL per service, a CLIENT per call, the worker's job span
SPANS = {"checkout": 15, "checkout_failed": 11, "browse": 8}


@dataclass(frozen=True)
class Sent:
    trace_id: str
    outside_parent: str
    kind: str  # checkout | checkout_failed | browse
    status: int

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        return {"checkout": CHECKOUT, "checkout_failed": CHECKOUT_FAILED, "browse": BROWSE}[
            self.kind
        ]


@dataclass
class Run:
    app: App
    sent: list[Sent]
    settings: DemoSettings


def _send(client: httpx.Client, settings: DemoSettings, path: str, kind: str) -> Sent:
    trace_id, parent = new_trace_id(), new_span_id()
    response = client.get(
        settings.entry_url + path, headers={"traceparent": f"00-{trace_id}-{parent}-01"}
    )
    return Sent(trace_id, parent, kind, response.status_code)


def _wait_for(app: App, sent: list[Sent], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            counts = [len(app.storage.traces.get_trace(s.trace_id)) for s in sent]
        except RuntimeError:  # the writer thread changed the memory store under us
            continue
        if all(count >= SPANS[s.kind] for count, s in zip(counts, sent, strict=True)):
            time.sleep(1.0)  # let the pipeline flush derived metrics
            return
        time.sleep(0.1)
    raise AssertionError("not every trace arrived complete")


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with in_process_meshscope() as (app, endpoint):
        settings = DemoSettings(
            otlp_endpoint=endpoint,
            base_port=free_port_range(32),
            rate=0,
            faults=Faults(),
            export_interval_s=0.1,
        )
        with demo_children(settings), httpx.Client(timeout=10) as client:
            sent = [_send(client, settings, f"/checkout?item={i}", "checkout") for i in range(10)]
            sent += [_send(client, settings, "/browse", "browse") for _ in range(4)]
            control = settings.url(settings.control_port)
            client.put(f"{control}/faults", json={"error_rate": {"db": 1.0}}).raise_for_status()
            sent += [_send(client, settings, "/checkout", "checkout_failed") for _ in range(5)]
            client.put(f"{control}/faults", json={}).raise_for_status()
            _wait_for(app, sent)
            yield Run(app, sent, settings)


@pytest.mark.slow
def test_responses_match_the_faults(run: Run) -> None:
    assert [s.status for s in run.sent] == [200] * 14 + [500] * 5


@pytest.mark.slow
def test_one_trace_per_request_spanning_every_hop_with_correct_parents(run: Run) -> None:
    for sent in run.sent:
        spans = run.app.storage.traces.get_trace(sent.trace_id)
        assert len(spans) == SPANS[sent.kind], sent
        by_id = {span.span_id: span for span in spans}
        (root,) = [s for s in spans if s.parent_span_id not in by_id]
        assert (root.service, root.kind, root.parent_span_id) == (
            "web",
            SpanKind.SERVER,
            sent.outside_parent,
        )
        hops = Counter[tuple[str, str]]()
        for span in spans:
            if span.kind is SpanKind.SERVER and span is not root:
                client = by_id[span.parent_span_id]  # every hop's caller is in the trace
                assert client.kind is SpanKind.CLIENT
                assert client.attributes["peer.service"] == span.service
                hops[(client.service, span.service)] += 1
            assert span.start_ns >= root.start_ns
        assert sorted(hops.elements()) == sorted(sent.edges)


@pytest.mark.slow
def test_error_traces_exactly_where_faults_were_injected(run: Run) -> None:
    for sent in run.sent:
        spans = run.app.storage.traces.get_trace(sent.trace_id)
        failed = {(s.service, s.kind) for s in spans if s.status_code is StatusCode.ERROR}
        if sent.kind == "checkout_failed":
            # db failed; api and web saw it and failed too (sidecars and apps alike)
            assert {("db", SpanKind.SERVER), ("db", SpanKind.INTERNAL)} <= failed
            assert {("api", SpanKind.CLIENT), ("web", SpanKind.SERVER)} <= failed
            assert not {s for s in failed if s[0] in ("cache", "worker")}
        else:
            assert failed == set()


@pytest.mark.slow
def test_access_logs_and_edges_match_the_traffic_sent(run: Run) -> None:
    expected = Counter[tuple[str, str]]()
    for sent in run.sent:
        access = run.app.storage.logs.find_logs(LogQuery(trace_id=sent.trace_id, access=True))
        pairs = sorted(
            (str(r.attributes["source.service"]), str(r.attributes["destination.service"]))
            for r in access
        )
        assert pairs == sorted([("unknown", "web"), *sent.edges]), sent
        expected.update(sent.edges)
    edges = run.app.storage.metrics.latest(REQUESTS, [], time.time_ns(), 300 * 10**9)
    seen = {
        (dict(s.labels)["client"], dict(s.labels)["server"]): s.samples[-1].value for s in edges
    }
    assert seen == {edge: float(count) for edge, count in expected.items()}


def _span_of(spans: list[Span], span_id: str) -> Span:
    (span,) = [s for s in spans if s.span_id == span_id]
    return span


@pytest.mark.slow
def test_service_logs_are_correlated_to_their_traces(run: Run) -> None:
    for sent in run.sent:
        spans = run.app.storage.traces.get_trace(sent.trace_id)
        logs = run.app.storage.logs.find_logs(LogQuery(trace_id=sent.trace_id, access=False))
        services = {service for edge in sent.edges for service in edge}
        handled = {r.service for r in logs if r.body == "handled"}
        assert handled == services, sent
        for record in logs:  # each log line points at the span that was current
            assert _span_of(spans, record.span_id).service == record.service
        if sent.kind == "checkout":
            assert any(r.service == "worker" and r.body == "job done" for r in logs)
        if sent.kind == "checkout_failed":
            (failure,) = [r for r in logs if r.body == "injected failure"]
            assert (failure.service, failure.severity_text) == ("db", "ERROR")


@pytest.mark.slow
def test_fault_switch_rejects_bad_input(run: Run) -> None:
    control = run.settings.url(run.settings.control_port)
    for body in ({"error_rate": {"nope": 1}}, {"error_rate": {"db": 2}}, {"bogus": 1}, [1]):
        response = httpx.put(f"{control}/faults", json=body)
        assert response.status_code == 400, body
        assert "error" in response.json()
    for route in ("faults", "traffic"):  # not JSON: the same {"error": ...} as other refusals
        refused = httpx.put(f"{control}/{route}", content=b"{not json")
        assert refused.status_code == 400
        assert refused.json()["error"].startswith("body must be JSON")
    assert httpx.put(f"{control}/traffic", json={"rate": -1}).status_code == 400
    assert httpx.get(f"{control}/faults").json()["error_rate"] == {}
