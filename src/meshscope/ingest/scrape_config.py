"""Scrape settings: static targets per job, in Prometheus' own `scrape_configs` shape.

    scrape:
      scrape_configs:
        - job_name: checkout
          scrape_interval: 15s          # default 15s; a Prometheus duration or seconds
          scrape_timeout: 10s           # default 10s, at most the interval
          metrics_path: /metrics        # default
          scheme: http                  # http or https
          static_configs:
            - targets: ["10.0.0.5:8080", "10.0.0.6:8080"]
              labels: {env: prod}
          # or, shorter: targets: [...] and labels: {...} on the job itself
          tenant: team-a                # with tenancy on: whose samples (default `default`)

`parse_scrape_config` validates everything at start and raises `ConfigError` naming the job
and the setting; a bare list of jobs is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.errors import ConfigError
from meshscope.limits.config import TENANT_NAME

Labels = tuple[tuple[str, str], ...]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_JOB_KEYS = frozenset(
    {
        "job_name",
        "scrape_interval",
        "scrape_timeout",
        "metrics_path",
        "scheme",
        "static_configs",
        "targets",
        "labels",
        "tenant",
    }
)


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One endpoint to scrape: `instance` is its host:port, `labels` the static extra ones."""

    job: str
    instance: str
    url: str
    labels: Labels = ()
    tenant: str = DEFAULT_TENANT  # whose store its samples go to, with tenancy on

    def target_labels(self) -> Labels:
        """job, instance and the static labels, as Prometheus attaches them to every sample."""
        return tuple(
            sorted({**dict(self.labels), "job": self.job, "instance": self.instance}.items())
        )


@dataclass(frozen=True, slots=True)
class ScrapeJob:
    job_name: str
    targets: tuple[tuple[str, Labels], ...]
    metrics_path: str = "/metrics"
    scheme: str = "http"
    scrape_interval_s: float = 15.0
    scrape_timeout_s: float = 10.0
    tenant: str = DEFAULT_TENANT

    def scrape_targets(self) -> list[ScrapeTarget]:
        return [
            ScrapeTarget(
                self.job_name,
                host,
                f"{self.scheme}://{host}{self.metrics_path}",
                labels,
                self.tenant,
            )
            for host, labels in self.targets
        ]


@dataclass(frozen=True, slots=True)
class ScrapeConfig:
    """All scrape jobs; empty (the default) means the scraper has nothing to do."""

    jobs: tuple[ScrapeJob, ...] = field(default_factory=tuple)

    def targets(self) -> list[ScrapeTarget]:
        return [target for job in self.jobs for target in job.scrape_targets()]


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a Prometheus duration (`15s`, `1m30s`, `500ms`) or a positive number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(value))
    else:
        raise ConfigError(f"setting {where} must be a duration like 15s or 1m, got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"setting {where} must be > 0, got {value!r}")
    return seconds


def parse_scrape_config(raw: Any) -> ScrapeConfig:
    """Validate `{scrape_configs: [...]}` (or the bare list) into a ScrapeConfig."""
    if raw is None:
        return ScrapeConfig()
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"scrape_configs"}
        if unknown:
            raise ConfigError(
                f"unknown scrape setting(s) {sorted(unknown)} (known: scrape_configs)"
            )
        raw = raw.get("scrape_configs") or []
    if not isinstance(raw, list):
        raise ConfigError("setting scrape.scrape_configs must be a list of jobs")
    jobs = [_job(item, i) for i, item in enumerate(raw)]
    names = [job.job_name for job in jobs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"scrape job names must be unique, repeated: {', '.join(duplicates)}")
    return ScrapeConfig(tuple(jobs))


def _job(item: Any, index: int) -> ScrapeJob:
    where = f"scrape.scrape_configs[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with job_name and targets")
    name = item.get("job_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.job_name must be a non-empty string")
    where = f"scrape job {name!r}"
    unknown = set(item) - _JOB_KEYS
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)} in {where}")
    interval = parse_duration(item.get("scrape_interval", 15.0), f"{where} scrape_interval")
    timeout = parse_duration(
        item.get("scrape_timeout", min(10.0, interval)), f"{where} scrape_timeout"
    )
    if timeout > interval:
        raise ConfigError(
            f"{where}: scrape_timeout ({timeout} s) exceeds scrape_interval ({interval} s)"
        )
    path = item.get("metrics_path", "/metrics")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{where} metrics_path must start with '/', got {path!r}")
    scheme = item.get("scheme", "http")
    if scheme not in ("http", "https"):
        raise ConfigError(f"{where} scheme must be http or https, got {scheme!r}")
    groups: list[Any] = list(item.get("static_configs") or [])
    if "targets" in item or "labels" in item:
        groups.append({"targets": item.get("targets") or [], "labels": item.get("labels") or {}})
    targets = [target for group in groups for target in _group(group, where)]
    if not targets:
        raise ConfigError(f"{where} has no targets")
    tenant = item.get("tenant", DEFAULT_TENANT)
    if not isinstance(tenant, str) or not TENANT_NAME.match(tenant):
        raise ConfigError(f"{where} tenant must be a tenant name (letters, digits, _ . -)")
    return ScrapeJob(name, tuple(targets), path, scheme, interval, timeout, tenant)


def _group(group: Any, where: str) -> list[tuple[str, Labels]]:
    if not isinstance(group, Mapping) or set(group) - {"targets", "labels"}:
        raise ConfigError(f"{where}: each static_configs entry takes only targets and labels")
    hosts, labels = group.get("targets") or [], group.get("labels") or {}
    if not isinstance(hosts, list) or not isinstance(labels, Mapping):
        raise ConfigError(f"{where}: targets must be a list and labels a mapping")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise ConfigError(f"{where}: invalid label name {key!r}")
        if key in ("job", "instance"):
            raise ConfigError(f"{where}: label {key!r} is set by the scraper")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: label {key} must have a string value, got {value!r}")
    sorted_labels: Labels = tuple(sorted(labels.items()))
    return [(_host_port(host, where), sorted_labels) for host in hosts]


def _host_port(target: Any, where: str) -> str:
    if isinstance(target, str):
        host, sep, port = target.rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) < 65536 and "/" not in target:
            return target
    raise ConfigError(f"{where}: target must be host:port, got {target!r}")
