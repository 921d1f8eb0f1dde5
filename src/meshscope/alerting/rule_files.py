"""Alerting rule files: Prometheus' format (`groups:` of `alert:` rules with `expr`, `for`,
`keep_firing_for`, `labels`, `annotations`), with PromQL over the metric store
(`alerting.rule_files`) or LogQL metric queries over the logs (`alerting.loki_rule_files`,
the Loki ruler's files). Read and checked at start, as `promtool check rules` would: a bad
file stops the start with an error naming the file, group and rule."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from meshscope.alerting.templates import Template, TemplateError, parse_template
from meshscope.errors import ConfigError
from meshscope.query.budget import QueryLimits, QueryTooComplexError, check_depth
from meshscope.query.durations import duration_ms
from meshscope.query.logql import LogExpr, LogQLError
from meshscope.query.logql import parse as parse_logql
from meshscope.query.promql.evaluator import parse as parse_promql
from meshscope.query.promql.values import PromQLError

Language = Literal["promql", "logql"]
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GROUP_KEYS = ("name", "interval", "limit", "rules", "tenant")
_RULE_KEYS = ("alert", "expr", "for", "keep_firing_for", "labels", "annotations")


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    expr: str
    language: Language
    for_ns: int = 0
    keep_firing_for_ns: int = 0
    labels: dict[str, Template] = field(default_factory=dict, hash=False)
    annotations: dict[str, Template] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class RuleGroup:
    name: str
    file: str
    language: Language
    rules: tuple[AlertRule, ...]
    interval_ns: int
    limit: int = 0  # alerts a rule may have at once (0: no limit), as Prometheus' `limit`
    tenant: str = ""  # "": the default tenant


def prometheus_duration(text: Any) -> int | None:
    """Prometheus' duration (`5m`, `1h30m`, `1d`, `0`: `query.durations`) in ns; None if it
    is not one."""
    if isinstance(text, int) and not isinstance(text, bool) and text == 0:
        return 0
    try:
        return duration_ms(text) * 10**6 if isinstance(text, str) else None
    except ValueError:
        return None


def load_all_rule_files(
    promql: tuple[str, ...], logql: tuple[str, ...], default_interval_ns: int
) -> tuple[RuleGroup, ...]:
    """`alerting.rule_files` (PromQL) and `alerting.loki_rule_files` (LogQL), in that order."""
    return (
        *load_rule_files(list(promql), "promql", default_interval_ns, "alerting.rule_files"),
        *load_rule_files(list(logql), "logql", default_interval_ns, "alerting.loki_rule_files"),
    )


def load_rule_files(
    paths: list[str], language: Language, default_interval_ns: int, setting: str
) -> tuple[RuleGroup, ...]:
    groups: list[RuleGroup] = []
    for path in paths:
        if not isinstance(path, str):
            raise ConfigError(f"setting {setting} must be a list of file paths")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read {setting} file {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{setting} file {path} is not UTF-8 text") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not YAML: {error}") from None
        groups.extend(_groups(document, path, language, default_interval_ns))
    seen: set[tuple[str, str]] = set()
    for group in groups:
        if (group.file, group.name) in seen:
            raise ConfigError(f"{group.file}: group name {group.name!r} repeated")
        seen.add((group.file, group.name))
    return tuple(groups)


def _groups(
    document: Any, path: str, language: Language, default_interval_ns: int
) -> list[RuleGroup]:
    if document is None:
        return []
    if not isinstance(document, Mapping) or set(document) - {"groups"}:
        raise ConfigError(f"{path}: a rule file is a mapping with one key, groups")
    entries = document.get("groups") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: groups must be a list")
    return [_group(entry, f"{path}: group {i + 1}", path, language, default_interval_ns)
            for i, entry in enumerate(entries)]  # fmt: skip


def _group(
    entry: Any, where: str, path: str, language: Language, default_interval_ns: int
) -> RuleGroup:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: a group is a mapping")
    _known(entry, _GROUP_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: a group needs a name")
    where = f"{path}: group {name!r}"
    interval = default_interval_ns
    if "interval" in entry:
        found = prometheus_duration(entry["interval"])
        if not found:
            raise ConfigError(f"{where}: interval must be a duration like 30s or 1m")
        interval = found
    limit = entry.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"{where}: limit must be a whole number >= 0")
    tenant = entry.get("tenant", "")
    if not isinstance(tenant, str):
        raise ConfigError(f"{where}: tenant must be a tenant name")
    rules = entry.get("rules") or []
    if not isinstance(rules, list):
        raise ConfigError(f"{where}: rules must be a list")
    parsed = tuple(_rule(rule, f"{where}, rule {i + 1}", language) for i, rule in enumerate(rules))
    return RuleGroup(name, path, language, parsed, interval, limit, tenant)


def _rule(entry: Any, where: str, language: Language) -> AlertRule:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: a rule is a mapping")
    if "record" in entry:
        raise ConfigError(f"{where}: recording rules are not supported (alerting rules only)")
    _known(entry, _RULE_KEYS, where)
    name = entry.get("alert")
    if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
        raise ConfigError(f"{where}: alert must be a name like HighErrorRate")
    where = f"{where} ({name})"
    expr = entry.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"{where}: expr is required")
    _check_expr(expr, language, where)
    durations = []
    for key in ("for", "keep_firing_for"):
        found = prometheus_duration(entry.get(key, "0"))
        if found is None:
            raise ConfigError(f"{where}: {key} must be a duration like 5m")
        durations.append(found)
    return AlertRule(name, expr, language, durations[0], durations[1],
                     _templates(entry.get("labels"), where, "labels", check_names=True),
                     _templates(entry.get("annotations"), where, "annotations"))  # fmt: skip


def _check_expr(expr: str, language: Language, where: str) -> None:
    """The expression parses, within the depth a query may have (it runs under the
    `query:` budget)."""
    try:
        check_depth(expr, QueryLimits().max_depth)
        if language == "promql":
            parse_promql(expr)
            return
        if isinstance(parse_logql(expr), LogExpr):
            raise ConfigError(f"{where}: expr must be a LogQL metric query, not a log query")
    except (PromQLError, LogQLError, QueryTooComplexError) as error:
        raise ConfigError(f"{where}: expr: {error}") from None


def _templates(values: Any, where: str, key: str, check_names: bool = False) -> dict[str, Template]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: {key} must be a mapping")
    out: dict[str, Template] = {}
    for name, text in values.items():
        if check_names and (not isinstance(name, str) or not _LABEL_NAME.fullmatch(name)):
            raise ConfigError(f"{where}: invalid label name {name!r}")
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise ConfigError(f"{where}: {key}.{name} must be text")
        try:
            out[str(name)] = parse_template(str(text))
        except TemplateError as error:
            raise ConfigError(f"{where}: {key}.{name}: {error}") from None
    return out


def _known(entry: Mapping[Any, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [k for k in entry if k not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
