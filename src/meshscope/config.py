"""Configuration: one YAML file plus MESHSCOPE_* environment overrides, validated at start.

Environment variables name a setting by its path: MESHSCOPE_STORAGE__PATH=/var/lib/x.duckdb
sets `storage.path`. Values from the environment are parsed as YAML scalars (numbers, bools).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshscope.alerting.config import AlertingConfig, parse_alerting
from meshscope.auth.config import AuthConfig, validate_auth
from meshscope.auth.tls import TlsConfig, validate_tls
from meshscope.cluster.config import ClusterConfig, parse_cluster
from meshscope.errors import ConfigError
from meshscope.ingest.scrape_config import ScrapeConfig, parse_scrape_config
from meshscope.limits.config import LimitsConfig, parse_limits
from meshscope.pipeline.sampling.config import SamplingConfig
from meshscope.pipeline.sampling.config import from_mapping as parse_sampling
from meshscope.query.budget import QueryLimits
from meshscope.query.slo import Slo
from meshscope.query.slo_config import parse_slos
from meshscope.store.factory import KINDS
from meshscope.tenancy.config import TenancyConfig, validate_tenancy

__all__ = ["Config", "ConfigError", "load_config"]

ENV_PREFIX = "MESHSCOPE_"


_MEMORY_LIMIT = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*(%|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)


_SIZE = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.I)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    ui_port: int = 16686
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    zipkin_port: int = 9411
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    """`storage.clickhouse`: used when `storage.kind` is `clickhouse`."""

    dsn: str = "clickhouse://127.0.0.1:9000"
    database: str = "meshscope"
    cluster: str = ""
    min_insert_interval_seconds: float = 0.2


@dataclass(frozen=True, slots=True)
class DuckDBConfig:
    """`storage.duckdb`: the DuckDB file's own knobs (the file itself is `storage.path`)."""

    memory_limit: str = "50%"
    warm_up: bool = True
    sample_cache: str = "256MiB"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    kind: str = "duckdb"
    path: str = "data/meshscope.duckdb"
    retention_hours: float = 168.0
    duckdb: DuckDBConfig = field(default_factory=DuckDBConfig)
    clickhouse: ClickHouseConfig = field(default_factory=ClickHouseConfig)


MAX_COMMIT_WINDOW_SECONDS = 5.0
"""A longer hold would let acknowledgements near an OTel exporter's 10 s timeout."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    flush_interval_seconds: float = 15.0
    servicegraph_ttl_seconds: float = 10.0
    servicegraph_max_pending: int = 1_000_000
    max_series_per_metric: int = 10_000
    ingest_workers: int = 2
    commit_window_seconds: float = 1.0
    commit_window_items: int = 512


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    query: QueryLimits = field(default_factory=QueryLimits)
    sampling: SamplingConfig = field(default_factory=lambda: _nested_section("sampling", None))
    scrape: ScrapeConfig = field(default_factory=lambda: _nested_section("scrape", None))
    slos: tuple[Slo, ...] = ()
    alerting: AlertingConfig = field(default_factory=lambda: _nested_section("alerting", None))
    auth: AuthConfig = field(default_factory=AuthConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tenancy: TenancyConfig = field(default_factory=TenancyConfig)


_SUBSECTIONS: dict[tuple[str, str], type[Any]] = {
    ("server", "tls"): TlsConfig,
    ("storage", "duckdb"): DuckDBConfig,
    ("storage", "clickhouse"): ClickHouseConfig,
}
"""Mappings inside a section, each parsed like a section of its own."""

_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "storage": StorageConfig,
    "pipeline": PipelineConfig,
    "query": QueryLimits,
    "auth": AuthConfig,
    "tenancy": TenancyConfig,
}


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections")
        raw = loaded or {}
        _rule_files_beside(raw, Path(path).parent)
    for key, value in (os.environ if env is None else env).items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            # MESHSCOPE_STORAGE__CLICKHOUSE__DSN: one level per `__`.
            *parents, name = key[len(ENV_PREFIX) :].lower().split("__")
            target = raw
            for part in parents:
                target = target.setdefault(part, {})
            target[name] = yaml.safe_load(value)
    return _build(raw)


def _rule_files_beside(raw: dict[str, Any], folder: Path) -> None:
    """Relative paths of alerting rule files are relative to the config file's folder, as
    Prometheus reads its `rule_files`."""
    alerting = raw.get("alerting")
    if not isinstance(alerting, dict):
        return
    for key in ("rule_files", "loki_rule_files"):
        files = alerting.get(key)
        if isinstance(files, list):
            alerting[key] = [str(folder / f) if isinstance(f, str) else f for f in files]


# Lists and sub-sections, parsed by their owners.
_NESTED = ("sampling", "scrape", "slos", "alerting", "cluster", "limits")


def _nested_section(section: str, values: Any) -> Any:
    """Parse a nested section with its owner's validating parser."""
    if section == "sampling":
        return parse_sampling(values)
    if section == "slos":
        return parse_slos(values)
    if section == "alerting":
        return parse_alerting(values)
    if section == "cluster":
        return parse_cluster(values)
    if section == "limits":
        return parse_limits(values)
    return parse_scrape_config(values)


def _build(raw: Mapping[str, Any]) -> Config:
    sections: dict[str, Any] = {}
    known = ", ".join([*_SECTIONS, *_NESTED])
    for section, values in raw.items():
        if section in _NESTED:
            sections[section] = _nested_section(section, values)
            continue
        cls = _SECTIONS.get(section)
        if cls is None:
            raise ConfigError(f"unknown config section {section!r} (known: {known})")
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
        sections[section] = _build_section(section, cls, values)
    config = Config(**sections)
    validate(config)
    return config


# What a setting of each type must be, in words (the type names read "a int", "a str").
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _build_section(section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            raise ConfigError(f"unknown setting {section}.{name} (known: {', '.join(fields)})")
        sub = _SUBSECTIONS.get((section, name))
        if sub is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"config section {section}.{name} must be a mapping")
            kwargs[name] = _build_section(f"{section}.{name}", sub, value)
            continue
        expected = type(spec.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            kind = _KINDS.get(expected, expected.__name__)
            raise ConfigError(f"setting {section}.{name} must be {kind}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def validate(config: Config) -> None:
    """Refuse a configuration whose settings cannot work together (ConfigError); run on
    every loaded one and again after command-line options change it."""
    for name, value in dataclasses.asdict(config.server).items():
        if name.endswith("_port") and not 0 <= value <= 65535:
            raise ConfigError(f"setting server.{name} must be a port number, got {value}")
    if config.storage.kind not in KINDS:
        raise ConfigError(
            f"setting storage.kind must be one of {', '.join(KINDS)}, got {config.storage.kind!r}"
        )
    if config.storage.kind == "clickhouse":
        _validate_clickhouse(config.storage.clickhouse)
    if config.cluster.shards and config.storage.kind != "clickhouse":
        raise ConfigError("setting cluster.shards needs storage.kind clickhouse")
    if config.auth.enabled and len(config.cluster.peers) > 1 and not config.cluster.token:
        raise ConfigError(
            "setting cluster.token is required with auth.enabled: a token of the tokens file"
            " with the write scope, which the nodes send each other"
        )
    if config.storage.retention_hours <= 0:
        raise ConfigError("setting storage.retention_hours must be > 0")
    duckdb = config.storage.duckdb
    if not _SIZE.match(duckdb.sample_cache):
        raise ConfigError(
            "setting storage.duckdb.sample_cache must be a size like 256MiB (0: off),"
            f" got {duckdb.sample_cache!r}"
        )
    if not _MEMORY_LIMIT.match(duckdb.memory_limit):
        raise ConfigError(
            "setting storage.duckdb.memory_limit must be a percentage of RAM or a size like"
            f" 4GB, got {duckdb.memory_limit!r}"
        )
    if config.pipeline.ingest_workers < 0:
        raise ConfigError("setting pipeline.ingest_workers must be >= 0")
    for name, value in dataclasses.asdict(config.query).items():
        if value <= 0:
            raise ConfigError(f"setting query.{name} must be > 0, got {value}")
    if config.pipeline.flush_interval_seconds <= 0:
        raise ConfigError("setting pipeline.flush_interval_seconds must be > 0")
    if not 0 <= config.pipeline.commit_window_seconds <= MAX_COMMIT_WINDOW_SECONDS:
        raise ConfigError(
            "setting pipeline.commit_window_seconds must be from 0 to"
            f" {MAX_COMMIT_WINDOW_SECONDS:g} (an exporter's timeout is ~10 s)"
        )
    if config.pipeline.commit_window_items <= 0:
        raise ConfigError("setting pipeline.commit_window_items must be > 0")
    validate_tls(config.server.tls)
    validate_auth(config.auth)
    validate_tenancy(config.tenancy)


_CLICKHOUSE_DSN = re.compile(r"^clickhouses?://[^/\s]+(/\w*)?(\?\S*)?$")
_CLICKHOUSE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _validate_clickhouse(section: ClickHouseConfig) -> None:
    if not _CLICKHOUSE_DSN.match(section.dsn):
        raise ConfigError(
            "setting storage.clickhouse.dsn must look like clickhouse://[user[:password]@]"
            f"host[:port], got {section.dsn!r}"
        )
    if not _CLICKHOUSE_NAME.match(section.database):
        raise ConfigError(
            "setting storage.clickhouse.database must be letters, digits and underscores,"
            f" got {section.database!r}"
        )
    if not 0 <= section.min_insert_interval_seconds <= MAX_COMMIT_WINDOW_SECONDS:
        raise ConfigError(
            "setting storage.clickhouse.min_insert_interval_seconds must be from 0 to"
            f" {MAX_COMMIT_WINDOW_SECONDS:g} (an exporter's timeout is ~10 s)"
        )
    if section.cluster:
        # ON CLUSTER needs ZooKeeper; shards are named in the cluster section (ADR 0015).
        raise ConfigError(
            "setting storage.clickhouse.cluster is not used: name the shards in cluster.shards"
            " and their cluster in cluster.clickhouse_cluster (ADR 0015)"
        )
