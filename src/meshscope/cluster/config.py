"""The `cluster:` config section (off unless `node_id` is set; then every other setting of
this node's cluster role is here, docs/configuration.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from meshscope.errors import ConfigError

NODE_LABEL = "meshscope_node"
"""The label every derived series of a cluster node carries (its `node_id`, never a host
name: ids must stay stable across restarts and unique across nodes)."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_URL = re.compile(r"^https?://[^/\s]+/?$")
_DSN = re.compile(r"^clickhouses?://[^/\s]+(/\w*)?(\?\S*)?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Peer:
    id: str
    url: str  # the peer's UI/query listener, where its internal routes are


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    node_id: str = ""
    peers: tuple[Peer, ...] = ()
    shards: tuple[str, ...] = ()
    clickhouse_cluster: str = ""
    forward_timeout_seconds: float = 10.0
    max_forward_bytes: int = 16 * 1024 * 1024
    health_interval_seconds: float = 0.0
    split_watch_seconds: float = 30.0  # after a ring change, spans of traces in flight counted
    token: str = ""  # sent to peers as a bearer token (with auth on: a `write` token)
    ca_file: str = ""  # the CA the peers' TLS certificates are verified with
    cert_file: str = ""  # this node's client certificate, for peers with mutual TLS
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.node_id)

    def peer_urls(self) -> dict[str, str]:
        return {peer.id: peer.url.rstrip("/") for peer in self.peers}


def parse_cluster(values: Any) -> ClusterConfig:
    """Parse and check the `cluster` section (None: cluster mode off)."""
    if values is None:
        return ClusterConfig()
    if not isinstance(values, Mapping):
        raise ConfigError("config section 'cluster' must be a mapping")
    known = {f.name for f in fields(ClusterConfig)}
    for name in values:
        if name not in known:
            raise ConfigError(f"unknown setting cluster.{name} (known: {', '.join(known)})")
    node_id = _string(values, "node_id")
    peers = tuple(_peer(i, raw) for i, raw in enumerate(_list(values, "peers")))
    shards = tuple(str(dsn) for dsn in _list(values, "shards"))
    config = ClusterConfig(
        node_id=node_id,
        peers=peers,
        shards=shards,
        clickhouse_cluster=_string(values, "clickhouse_cluster"),
        forward_timeout_seconds=_number(values, "forward_timeout_seconds", 10.0),
        max_forward_bytes=int(_number(values, "max_forward_bytes", 16 * 1024 * 1024)),
        health_interval_seconds=_number(values, "health_interval_seconds", 0.0),
        split_watch_seconds=_number(values, "split_watch_seconds", 30.0),
        token=_string(values, "token"),
        ca_file=_string(values, "ca_file"),
        cert_file=_string(values, "cert_file"),
        key_file=_string(values, "key_file"),
    )
    _check(config)
    return config


def _check(config: ClusterConfig) -> None:
    if not config.enabled:
        if config.peers or config.shards:
            raise ConfigError("setting cluster.node_id is required when the cluster is set up")
        return
    if not _ID.match(config.node_id):
        raise ConfigError(
            "setting cluster.node_id must be 1-63 letters, digits, '.', '_' or '-',"
            f" got {config.node_id!r}"
        )
    ids = [peer.id for peer in config.peers]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"setting cluster.peers names a peer id twice: {ids}")
    if ids and config.node_id not in ids:
        raise ConfigError(f"setting cluster.peers must include this node ({config.node_id!r})")
    for dsn in config.shards:
        if not _DSN.match(dsn):
            raise ConfigError(f"setting cluster.shards: {dsn!r} is not a clickhouse:// DSN")
    if len(config.shards) > 1 and not _NAME.match(config.clickhouse_cluster):
        raise ConfigError(
            "setting cluster.clickhouse_cluster must name the cluster of the shards in the"
            " servers' remote_servers (letters, digits, underscores)"
        )
    if config.forward_timeout_seconds <= 0:
        raise ConfigError("setting cluster.forward_timeout_seconds must be > 0")
    if config.max_forward_bytes <= 0:
        raise ConfigError("setting cluster.max_forward_bytes must be > 0")
    if config.key_file and not config.cert_file:
        raise ConfigError("setting cluster.key_file needs cluster.cert_file")
    if config.split_watch_seconds < 0:
        raise ConfigError("setting cluster.split_watch_seconds must be >= 0")
    if config.health_interval_seconds < 0:
        raise ConfigError("setting cluster.health_interval_seconds must be >= 0 (0: off)")


def _peer(index: int, raw: Any) -> Peer:
    if not isinstance(raw, Mapping) or set(raw) != {"id", "url"}:
        raise ConfigError(f"setting cluster.peers[{index}] must be a mapping of id and url")
    peer_id, url = raw["id"], raw["url"]
    if not isinstance(peer_id, str) or not _ID.match(peer_id):
        raise ConfigError(f"setting cluster.peers[{index}].id is not a valid id: {peer_id!r}")
    if not isinstance(url, str) or not _URL.match(url):
        raise ConfigError(
            f"setting cluster.peers[{index}].url must be http(s)://host:port, got {url!r}"
        )
    return Peer(peer_id, url)


def _string(values: Mapping[str, Any], name: str) -> str:
    value = values.get(name, "")
    if not isinstance(value, str):
        raise ConfigError(f"setting cluster.{name} must be a string, got {value!r}")
    return value


def _number(values: Mapping[str, Any], name: str, default: float) -> float:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"setting cluster.{name} must be a number, got {value!r}")
    return float(value)


def _list(values: Mapping[str, Any], name: str) -> list[Any]:
    value = values.get(name) or []
    if not isinstance(value, list):
        raise ConfigError(f"setting cluster.{name} must be a list")
    return value
