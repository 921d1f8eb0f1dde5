"""Forwarding between nodes whose listeners speak TLS under a private CA: with
`cluster.ca_file` the parts reach their owners; without it (system CAs) the peer is not
trusted and the client gets 503 naming the peer; with mutual TLS on the peers, the node's
`cluster.cert_file` gets it in, and without it the handshake is refused (503)."""

from __future__ import annotations

import ssl
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshscope.app import build
from meshscope.cluster.config import ClusterConfig, Peer
from meshscope.cluster.ring import Ring
from meshscope.config import Config, StorageConfig
from meshscope.errors import ConfigError
from tests.auth.certs import Certs, make_certs
from tests.cluster.traces import calls, request
from tests.serving import serving

PROTOBUF = {"content-type": "application/x-protobuf"}
UNUSED = "https://127.0.0.1:9"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("cluster-tls"))


def _nodes(stack: ExitStack, certs: Certs, mutual: bool, **cluster: Any) -> dict[str, Any]:
    listen: dict[str, Any] = {
        "ssl_certfile": str(certs.server_cert),
        "ssl_keyfile": str(certs.server_key),
    }
    if mutual:
        listen |= {"ssl_ca_certs": str(certs.ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    made: dict[str, Any] = {}
    for node_id in ("a", "b"):
        peers = (Peer("a", UNUSED), Peer("b", UNUSED))
        config = Config(
            storage=StorageConfig(kind="memory"),
            cluster=ClusterConfig(node_id, peers, **cluster),
        )
        app = build(config)
        app.start()
        stack.callback(app.stop)
        # force_exit: a peer's kept-alive TLS connection must not hold the stop up
        ui = stack.enter_context(serving(app.ui, force_exit=True, **listen))
        assert app.cluster is not None
        otlp = stack.enter_context(serving(app.otlp_http, on_exit=app.cluster.sink.forwarder.close))
        made[node_id] = (app, ui, otlp)
    for app, _, _ in made.values():
        app.cluster.sink.forwarder.urls = {n: ui for n, (_, ui, _) in made.items()}
    return made


def _send(nodes: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    made = calls(20)
    owners = {Ring.of(["a", "b"]).owner(int.from_bytes(c.trace_id[8:], "big")) for c in made}
    assert owners == {"a", "b"}  # half of them must be forwarded
    answer = httpx.post(f"{nodes['a'][2]}/v1/traces", content=request(made), headers=PROTOBUF)
    return answer, made


def _stored_on_owners(nodes: dict[str, Any], made: list[Any]) -> bool:
    ring = Ring.of(["a", "b"])
    for call in made:
        app = nodes[ring.owner(int.from_bytes(call.trace_id[8:], "big"))][0]
        if len(app.storage.traces.get_trace(call.trace_id.hex())) != 3:
            return False
    return True


def test_the_cluster_ca_verifies_the_peers(certs: Certs) -> None:
    with ExitStack() as stack:
        nodes = _nodes(stack, certs, mutual=False, ca_file=str(certs.ca))
        answer, made = _send(nodes)
        assert answer.status_code == 200, answer.text
        assert _stored_on_owners(nodes, made)


def test_without_the_ca_the_peer_is_not_trusted(certs: Certs) -> None:
    with ExitStack() as stack:
        nodes = _nodes(stack, certs, mutual=False)
        answer, _ = _send(nodes)
        assert answer.status_code == 503
        assert "cluster peer b" in answer.text and "CERTIFICATE" in answer.text.upper()


@pytest.mark.parametrize("with_cert", [True, False])
def test_mutual_tls_needs_the_nodes_certificate(certs: Certs, with_cert: bool) -> None:
    client = {"cert_file": str(certs.client_cert), "key_file": str(certs.client_key)}
    with ExitStack() as stack:
        nodes = _nodes(
            stack, certs, mutual=True, ca_file=str(certs.ca), **(client if with_cert else {})
        )
        answer, made = _send(nodes)
        if with_cert:
            assert answer.status_code == 200, answer.text
            assert _stored_on_owners(nodes, made)
        else:
            assert answer.status_code == 503


def test_a_bad_ca_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    config = Config(cluster=ClusterConfig("a", (Peer("a", UNUSED),), ca_file=str(bad)))
    with pytest.raises(ConfigError, match=r"cluster\.ca_file"):
        build(config)
