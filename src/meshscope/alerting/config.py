"""The `alerting` section of the config file: where to send alerts, how often to evaluate.

alerting:
  alertmanagers: [http://127.0.0.1:9093]   # Alertmanager base URLs (none: no sending)
  interval: 1m                              # evaluation and resend interval
  external_url: http://meshscope:16686      # base of the alerts' generatorURL links
  rule_files: [rules/golden-signals.yml]    # Prometheus alerting rules (PromQL)
  loki_rule_files: [rules/logs.yml]         # Loki ruler alerting rules (LogQL)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from meshscope.alerting.rule_files import RuleGroup, load_all_rule_files
from meshscope.errors import ConfigError
from meshscope.query.slo_config import window_ns

_FIELDS = ("alertmanagers", "interval", "external_url", "rule_files", "loki_rule_files")
DEFAULT_INTERVAL = "1m"


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    alertmanagers: tuple[str, ...] = ()
    interval_ns: int = 60 * 10**9
    external_url: str = ""  # "": the UI's own address (server.host and server.ui_port)
    rule_groups: tuple[RuleGroup, ...] = ()  # read from rule_files and loki_rule_files
    rule_files: tuple[str, ...] = ()
    loki_rule_files: tuple[str, ...] = ()

    def load_rules(self) -> tuple[RuleGroup, ...]:
        """The rule files read again (SIGHUP); raises ConfigError as at start."""
        return load_all_rule_files(self.rule_files, self.loki_rule_files, self.interval_ns)


def parse_alerting(values: Any, path: str = "alerting") -> AlertingConfig:
    if values is None:
        return AlertingConfig()
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {path!r} must be a mapping")
    unknown = [k for k in values if k not in _FIELDS]
    if unknown:
        raise ConfigError(f"unknown setting {path}.{unknown[0]} (known: {', '.join(_FIELDS)})")
    urls = values.get("alertmanagers") or []
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list):
        raise ConfigError(f"setting {path}.alertmanagers must be a list of URLs")
    external = values.get("external_url", "")
    for url in [*urls, *([external] if external else [])]:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"setting {path} needs http(s) URLs, got {url!r}")
    interval = window_ns(values.get("interval", DEFAULT_INTERVAL), f"{path}.interval")
    files: dict[str, tuple[str, ...]] = {}
    for key in ("rule_files", "loki_rule_files"):
        named = values.get(key) or []
        if not isinstance(named, list) or not all(isinstance(f, str) for f in named):
            raise ConfigError(f"setting {path}.{key} must be a list of file paths")
        files[key] = tuple(named)
    return AlertingConfig(
        alertmanagers=tuple(u.rstrip("/") for u in urls),
        interval_ns=interval,
        external_url=external.rstrip("/"),
        rule_groups=load_all_rule_files(files["rule_files"], files["loki_rule_files"], interval),
        rule_files=files["rule_files"],
        loki_rule_files=files["loki_rule_files"],
    )
