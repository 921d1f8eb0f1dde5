"""Two in-process nodes (memory stores, real HTTP between them): every node takes every
client's traces and logs and each trace ends up whole on its owner."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

from meshscope.app import App, build
from meshscope.auth.config import AuthConfig
from meshscope.cluster.config import NODE_LABEL, ClusterConfig, Peer
from meshscope.cluster.ring import Ring
from meshscope.cluster.sides import MEDIA_TYPE, encode_sides
from meshscope.config import Config, StorageConfig
from meshscope.ingest.otlp import decode_otlp
from meshscope.pipeline.sampling.config import SamplingConfig
from meshscope.pipeline.sampling.config import from_mapping as parse_sampling
from meshscope.store.base import LogQuery
from meshscope.tenancy.config import TenancyConfig
from meshscope.tenancy.context import as_tenants
from tests.auth.tokens import READER, WRITER, bearer, write_tokens
from tests.cluster.traces import calls, logs_request, request
from tests.serving import serving

PROTOBUF = {"content-type": "application/x-protobuf"}
SIDES = {"content-type": MEDIA_TYPE}
SIDE = ("ab" * 16, "cd" * 8, "", "web", 2, 10**18, 5, False, 200, "GET", "/", "", "")
UNUSED = "http://127.0.0.1:9"  # replaced once the peers' ports are known


@dataclass
class Node:
    id: str
    app: App
    ui: str
    otlp: str
    zipkin: str


def _config(node_id: str, sampling: SamplingConfig | None = None, **more: Any) -> Config:
    peers = (Peer("a", UNUSED), Peer("b", UNUSED))
    cluster = ClusterConfig(node_id, peers, token=more.pop("token", ""))
    config = Config(storage=StorageConfig(kind="memory"), cluster=cluster, **more)
    return dataclasses.replace(config, sampling=sampling) if sampling else config


def _start(
    stack: ExitStack, sampling: SamplingConfig | None = None, **more: Any
) -> dict[str, Node]:
    made: dict[str, Node] = {}
    for node_id in ("a", "b"):
        app = build(_config(node_id, sampling, **dict(more)))
        app.start()
        stack.callback(app.stop)
        ui = stack.enter_context(serving(app.ui))
        assert app.cluster is not None
        close = app.cluster.sink.forwarder.close
        otlp = stack.enter_context(serving(app.otlp_http, on_exit=close))
        zipkin = stack.enter_context(serving(app.zipkin, on_exit=close))
        made[node_id] = Node(node_id, app, ui, otlp, zipkin)
    for node in made.values():
        assert node.app.cluster is not None
        node.app.cluster.sink.forwarder.urls = {n.id: n.ui for n in made.values()}
    return made


@pytest.fixture
def nodes() -> Iterator[dict[str, Node]]:
    with ExitStack() as stack:
        yield _start(stack)


def _owner(trace_id: bytes) -> str:
    return Ring.of(["a", "b"]).owner(int.from_bytes(trace_id[8:], "big"))


def test_traces_sent_anywhere_end_up_whole_on_their_owner(nodes: dict[str, Node]) -> None:
    made = calls(40)
    # The frontend's spans go to a, the backend's to b: every trace is split by the client.
    front = httpx.post(f"{nodes['a'].otlp}/v1/traces", content=request(made, ("frontend",)),
                       headers=PROTOBUF)  # fmt: skip
    back = httpx.post(f"{nodes['b'].otlp}/v1/traces", content=request(made, ("backend",)),
                      headers=PROTOBUF)  # fmt: skip
    assert front.status_code == back.status_code == 200
    for call in made:
        owner = _owner(call.trace_id)
        for node_id, node in nodes.items():
            spans = node.app.storage.traces.get_trace(call.trace_id.hex())
            assert len(spans) == (3 if node_id == owner else 0)
    for node in nodes.values():
        node.app.writer.stop()  # flush the derived metrics
    edges = 0.0
    labels = set()
    for node in nodes.values():
        for series in node.app.storage.metrics.select(
            "traces_service_graph_request_total", [], 0, 2**62
        ):
            edges += series.samples[-1].value
            labels.add(dict(series.labels)[NODE_LABEL])
    assert edges == 40  # each call paired once, though its spans came to different nodes
    assert labels == {"a", "b"}
    metrics = httpx.get(f"{nodes['a'].ui}/metrics").text
    assert 'meshscope_cluster_forwarded_items_total{kind="traces",peer="b"}' in metrics
    assert 'meshscope_cluster_forward_requests_total{kind="traces",peer="b"}' in metrics
    assert "meshscope_cluster_received_items_total" in metrics


def test_logs_follow_their_trace(nodes: dict[str, Node]) -> None:
    made = calls(20)
    body = logs_request([c.trace_id for c in made], untraced=3)
    answer = httpx.post(f"{nodes['a'].otlp}/v1/logs", content=body, headers=PROTOBUF)
    assert answer.status_code == 200
    for call in made:
        owner = _owner(call.trace_id)
        for node_id, node in nodes.items():
            found = node.app.storage.logs.find_logs(LogQuery(trace_id=call.trace_id.hex()))
            assert len(found) == (1 if node_id == owner else 0)
    untraced = nodes["a"].app.storage.logs.find_logs(LogQuery(body_contains=("untraced",)))
    assert len(untraced) == 3


def test_zipkin_spans_follow_their_trace(nodes: dict[str, Node]) -> None:
    made = calls(20)
    spans = [
        {"traceId": c.trace_id.hex(), "id": f"{i + 1:016x}", "name": "get",
         "timestamp": 1_700_000_000_000_000, "duration": 1000,
         "localEndpoint": {"serviceName": "zipkin-svc"}}
        for i, c in enumerate(made)
    ]  # fmt: skip
    answer = httpx.post(f"{nodes['b'].zipkin}/api/v2/spans", json=spans)
    assert answer.status_code == 202
    for call in made:
        owner = _owner(call.trace_id)
        for node_id, node in nodes.items():
            found = node.app.storage.traces.get_trace(call.trace_id.hex())
            assert len(found) == (1 if node_id == owner else 0)


def test_an_owner_that_is_down_gives_503_and_nothing_is_acknowledged(
    nodes: dict[str, Node],
) -> None:
    assert nodes["a"].app.cluster is not None
    nodes["a"].app.cluster.sink.forwarder.urls["b"] = UNUSED
    made = calls(20)
    answer = httpx.post(f"{nodes['a'].otlp}/v1/traces", content=request(made), headers=PROTOBUF)
    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    # a's own part was stored: the client is not told "not stored"
    status = Status.FromString(answer.content)
    assert "may be stored in part" in status.message and "not stored" not in status.message
    metrics = httpx.get(f"{nodes['a'].ui}/metrics").text
    assert 'meshscope_cluster_forward_failed_items_total{kind="traces",peer="b"}' in metrics


def test_the_ring_route_shows_the_same_version_on_every_node(nodes: dict[str, Node]) -> None:
    rings = [httpx.get(f"{n.ui}/internal/cluster/v1/ring").json() for n in nodes.values()]
    assert rings[0]["version"] == rings[1]["version"]
    assert sum(rings[0]["slots"].values()) == 4096


def test_tail_sampling_decides_on_whole_traces() -> None:
    """The error is on the backend's span, sent to b; the frontend's spans go to a. Each
    trace's owner sees all three spans, so error traces are kept whole, others dropped."""
    sampling = parse_sampling(
        {
            "tail": {
                "enabled": True,
                "decision_wait_seconds": 0.5,
                "policies": [{"name": "errors", "type": "status_code"}],
            }
        }
    )
    made = calls(30)
    with ExitStack() as stack:
        nodes = _start(stack, sampling)
        for node_id, services in (("a", ("frontend",)), ("b", ("backend",))):
            answer = httpx.post(
                f"{nodes[node_id].otlp}/v1/traces",
                content=request(made, services),
                headers=PROTOBUF,
            )
            assert answer.status_code == 200
        for node in nodes.values():
            node.app.writer.stop()  # decides every buffered trace
        for index, call in enumerate(made):
            owner = nodes[_owner(call.trace_id)].app.storage
            kept = owner.traces.get_trace(call.trace_id.hex())
            assert len(kept) == (3 if index % 5 == 0 else 0), index


@pytest.mark.parametrize(("token", "status"), [(WRITER, 200), (READER, 503)])
def test_with_auth_nodes_forward_with_the_cluster_token(
    tmp_path: Path, token: str, status: int
) -> None:
    tokens = write_tokens(tmp_path / "tokens.yaml")
    auth = AuthConfig(enabled=True, tokens_file=str(tokens))
    made = calls(20)
    with ExitStack() as stack:
        nodes = _start(stack, auth=auth, token=token)
        answer = httpx.post(
            f"{nodes['a'].otlp}/v1/traces",
            content=request(made),
            headers={**PROTOBUF, **bearer(WRITER)},
        )
        assert answer.status_code == status, answer.text
        if status == 200:
            for call in made:
                owner = nodes[_owner(call.trace_id)].app.storage
                assert len(owner.traces.get_trace(call.trace_id.hex())) == 3
        else:  # a read-only cluster token: the owner refuses it, the client may retry
            assert "cluster.token" in answer.text


def test_with_tenancy_the_owner_stores_a_part_as_its_tenants() -> None:
    """A forwarded part carries its tenant (`X-Scope-OrgID`): the owner stores it in that
    tenant's store, where that tenant's reads find it and the default tenant's do not."""
    made = calls(20)
    with ExitStack() as stack:
        nodes = _start(stack, tenancy=TenancyConfig(enabled=True))
        answer = httpx.post(
            f"{nodes['a'].otlp}/v1/traces",
            content=request(made),
            headers={**PROTOBUF, "X-Scope-OrgID": "team-x"},
        )
        assert answer.status_code == 200, answer.text
        assert {_owner(call.trace_id) for call in made} == {"a", "b"}  # some were forwarded
        for call in made:
            owner = nodes[_owner(call.trace_id)].app.storage
            with as_tenants("team-x"):
                assert len(owner.traces.get_trace(call.trace_id.hex())) == 3
            with as_tenants("default"):
                assert owner.traces.get_trace(call.trace_id.hex()) == []


def test_hostile_bodies_on_the_internal_routes_are_4xx_and_store_nothing(
    nodes: dict[str, Node],
) -> None:
    """A peer (or anyone reaching the UI listener) sending garbage, deep JSON, a wrong
    encoding or an unknown kind gets a 4xx; nothing is stored and the node still works."""
    url = f"{nodes['a'].ui}/internal/cluster/v1"
    json_headers = {"content-type": "application/json"}
    cases = [
        ("traces", b"\xff\x00not protobuf" * 1000, PROTOBUF),
        ("logs", b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF),  # a length past the end
        ("traces", b'{"resourceSpans": ' * 5000, json_headers),  # deep, unterminated
        ("traces", b'{"resourceSpans": [{"scopeSpans": "x"}]}', json_headers),  # wrong type
        ("zipkin", b"[" * 100_000, json_headers),
        ("traces", b"x", {**PROTOBUF, "content-encoding": "gzip"}),
        ("metrics", b"", PROTOBUF),  # not a kind peers forward
        ("sides", b"\x93\x01\x02\x03", SIDES),  # pairing records: not 13 columns
        ("sides", b"\xdd\xff\xff\xff\xff", SIDES),  # an array longer than the body
        ("sides", b"\x91" * 100_000, SIDES),  # deep
        ("sides", b"\xc1", SIDES),  # msgpack's one unused byte
        ("sides", encode_sides([SIDE])[:-1], SIDES),  # cut short
        ("sides", encode_sides([(*SIDE[:4], 7, *SIDE[5:])]), SIDES),  # kind 7
    ]
    for kind, body, headers in cases:
        answer = httpx.post(f"{url}/{kind}", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (kind, body[:20], answer.status_code)
    assert [node.app.storage.catalog.services() for node in nodes.values()] == [[], []]
    ring = httpx.post(f"{url}/ring", content=b"", headers=PROTOBUF)  # the ring is read only
    assert (ring.status_code, ring.headers["allow"]) == (405, "GET")
    made = calls(2)
    ok = httpx.post(f"{nodes['a'].otlp}/v1/traces", content=request(made, ("frontend",)),
                    headers=PROTOBUF)  # fmt: skip
    assert ok.status_code == 200
    sides = httpx.post(f"{url}/sides", content=encode_sides([SIDE] * 3), headers=SIDES)
    assert (sides.status_code, sides.json()) == (200, {"rejected": 0, "error_message": ""})


def test_received_items_count_what_was_stored_not_what_the_header_says(
    nodes: dict[str, Node],
) -> None:
    url = f"{nodes['b'].ui}/internal/cluster/v1/traces"
    made = calls(3)
    body = request(made, ("frontend",))
    spans = len(decode_otlp("traces", body).batch.spans)
    for claimed in ("1000", "-5000", "9" * 29, "many", None):
        headers = {**PROTOBUF, **({"x-meshscope-items": claimed} if claimed else {})}
        assert httpx.post(url, content=body, headers=headers).status_code == 200
    metrics = httpx.get(f"{nodes['b'].ui}/metrics").text
    found = [line for line in metrics.splitlines() if "received_items_total{" in line]
    assert found == [f'meshscope_cluster_received_items_total{{kind="traces"}} {5.0 * spans}']
