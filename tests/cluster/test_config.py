"""The `cluster:` section: off by default, checked when on."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshscope.cluster.config import ClusterConfig, Peer
from meshscope.config import ConfigError, load_config

PEERS = (
    "  peers:\n"
    "    - {id: a, url: 'http://127.0.0.1:16686'}\n"
    "    - {id: b, url: 'http://127.0.0.1:16687'}\n"
)


def _load(tmp_path: Path, text: str) -> ClusterConfig:
    path = tmp_path / "meshscope.yaml"
    path.write_text(text)
    return load_config(path, env={}).cluster


def test_off_by_default() -> None:
    cluster = load_config(env={}).cluster
    assert cluster == ClusterConfig() and not cluster.enabled


def test_a_cluster_section(tmp_path: Path) -> None:
    cluster = _load(
        tmp_path,
        "storage: {kind: clickhouse}\n"
        "cluster:\n  node_id: a\n" + PEERS + "  shards: ['clickhouse://127.0.0.1:9000',"
        " 'clickhouse://127.0.0.1:9001']\n  clickhouse_cluster: mesh\n",
    )
    assert cluster.enabled
    assert cluster.peers == (
        Peer("a", "http://127.0.0.1:16686"),
        Peer("b", "http://127.0.0.1:16687"),
    )
    assert cluster.peer_urls()["b"] == "http://127.0.0.1:16687"
    assert len(cluster.shards) == 2 and cluster.clickhouse_cluster == "mesh"


def test_node_id_from_the_environment() -> None:
    assert load_config(env={"MESHSCOPE_CLUSTER__NODE_ID": "n1"}).cluster.node_id == "n1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cluster:\n  node_id: c\n" + PEERS, "must include this node"),
        ("cluster:\n  node_id: 'a b'\n", "node_id must be"),
        ("cluster:\n" + PEERS, "node_id is required"),
        ("cluster:\n  node_id: a\n  peers: [{id: a, url: 'ftp://x'}]\n", "url must be"),
        (
            "cluster:\n  node_id: a\n  peers: [{id: a, url: 'http://x:1'}, {id: a, url: 'http://y:1'}]\n",
            "twice",
        ),
        ("cluster:\n  node_id: a\n  shards: ['clickhouse://h:1']\n", "needs storage.kind"),
        (
            "storage: {kind: clickhouse}\ncluster:\n  node_id: a\n"
            "  shards: ['clickhouse://h:1', 'clickhouse://h:2']\n",
            "clickhouse_cluster",
        ),
        ("cluster:\n  node_id: a\n  bogus: 1\n", "unknown setting cluster.bogus"),
        (
            "auth: {enabled: true, tokens_file: tokens.yaml}\ncluster:\n  node_id: a\n" + PEERS,
            "cluster.token is required",
        ),
        ("cluster:\n  node_id: a\n  forward_timeout_seconds: 0\n", "> 0"),
    ],
)
def test_bad_cluster_settings(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)
