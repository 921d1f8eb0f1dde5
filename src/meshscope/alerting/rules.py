"""Evaluating alerting rules (`rule_files.py`) as Prometheus' rule manager does, each group
every `interval` in a background thread, with the same alert states:

- a series the rule's query returns starts an alert, `pending` (`activeAt`), which fires once
  it has been returned for `for` (at once with no `for`);
- a pending alert whose series is gone is dropped; a firing one is resolved, or kept firing
  for `keep_firing_for` from the first evaluation that did not return it;
- an alert's labels are the series' (without `__name__`) with the rule's labels and
  `alertname` over them; labels and annotations are templates of `$labels` and `$value`;
- a query that fails leaves the rule's alerts as they were and sets its health to `err`
  with the error; more alerts than the group's `limit` clear the rule's alerts (an error).

`firing()` is what the notifier sends to Alertmanager; `groups()` what `/api/v1/rules` and
`/api/v1/alerts` show (and the Loki ruler's `/prometheus/api/v1/...` for LogQL groups).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from meshscope.alerting.rule_files import AlertRule, Language, RuleGroup
from meshscope.errors import ConfigError

log = logging.getLogger("meshscope.alerting")

Series = list[tuple[dict[str, str], float]]
Query = Callable[[RuleGroup, str, int], Series]
"""Runs a rule's expression for a group at a time (ns): the series and their values."""
Key = tuple[tuple[str, str], ...]
State = Literal["pending", "firing"]
_SERVICE_LABELS = ("service_name", "service")


@dataclass(slots=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    state: State
    active_at_ns: int
    fired_at_ns: int = 0
    last_seen_ns: int = 0
    keep_firing_since_ns: int = 0  # when it stopped being returned but kept firing


@dataclass(slots=True)
class RuleState:
    rule: AlertRule
    alerts: dict[Key, Alert] = field(default_factory=dict)
    health: Literal["unknown", "ok", "err"] = "unknown"
    last_error: str = ""
    last_evaluation_ns: int = 0
    evaluation_s: float = 0.0

    @property
    def state(self) -> str:
        states = {alert.state for alert in self.alerts.values()}
        return "firing" if "firing" in states else "pending" if states else "inactive"


@dataclass(slots=True)
class GroupState:
    group: RuleGroup
    rules: list[RuleState]
    last_evaluation_ns: int = 0
    evaluation_s: float = 0.0


class RuleEvaluator:
    def __init__(
        self,
        groups: tuple[RuleGroup, ...],
        queries: dict[Language, Query],
        now_ns: Callable[[], int] = time.time_ns,
        load: Callable[[], tuple[RuleGroup, ...]] | None = None,
    ) -> None:
        self._groups = [GroupState(g, [RuleState(r) for r in g.rules]) for g in groups]
        self._load = load
        self._queries = queries
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshscope-rules", daemon=True)

    # --- evaluation ------------------------------------------------------------------------

    def evaluate_due(self, now_ns: int) -> int:
        """Evaluate every group whose interval has passed; the time (ns) the next is due."""
        due = now_ns + 60 * 10**9
        for state in self._groups:
            interval = state.group.interval_ns
            if not state.last_evaluation_ns or now_ns - state.last_evaluation_ns >= interval:
                self.evaluate_group(state, now_ns)
            due = min(due, state.last_evaluation_ns + interval)
        return due

    def evaluate_group(self, state: GroupState, now_ns: int) -> None:
        started = time.perf_counter()
        query = self._queries[state.group.language]
        for rule_state in state.rules:
            began = time.perf_counter()
            try:
                series = query(state.group, rule_state.rule.expr, now_ns)
                alerts = _next_alerts(rule_state, series, now_ns, state.group.limit)
            except Exception as error:  # the query's own refusal, or a store failure
                with self._lock:
                    rule_state.health, rule_state.last_error = "err", str(error) or repr(error)
                    if isinstance(error, LimitExceededError):
                        rule_state.alerts = {}
                log.warning("alerting rule failed", extra={
                    "group": state.group.name, "rule": rule_state.rule.name, "error": str(error)
                })  # fmt: skip
            else:
                with self._lock:
                    rule_state.alerts, rule_state.health, rule_state.last_error = alerts, "ok", ""
            rule_state.last_evaluation_ns = now_ns
            rule_state.evaluation_s = time.perf_counter() - began
        state.last_evaluation_ns = now_ns
        state.evaluation_s = time.perf_counter() - started

    def reload(self) -> bool:
        """Read the rule files again (SIGHUP), as Prometheus reloads its rules: a rule that
        is still there (same file, group, name and expression) keeps its alerts and health,
        and its group its last evaluation; a file that does not load (logged) leaves the
        rules as they were. True if the rules were replaced."""
        if self._load is None:
            return False
        try:
            groups = self._load()
        except ConfigError as error:
            log.error("alerting rules not reloaded", extra={"error": str(error)})
            return False
        with self._lock:
            old = {(s.group.file, s.group.name): s for s in self._groups}
            self._groups = [_carried(g, old.get((g.file, g.name))) for g in groups]
        log.info("alerting rules reloaded", extra={"groups": len(groups)})
        return True

    # --- views -----------------------------------------------------------------------------

    def groups(self, language: Language | None = None) -> list[GroupState]:
        """A snapshot of the groups (of one query language), their rules and alerts."""
        with self._lock:
            return [
                GroupState(
                    s.group, [_snapshot(r) for r in s.rules], s.last_evaluation_ns, s.evaluation_s
                )
                for s in self._groups
                if language is None or s.group.language == language
            ]

    def firing(self) -> Iterator[tuple[dict[str, str], dict[str, str], int, str]]:
        """Each firing alert: labels, annotations, when it fired (ns) and a UI link path
        (the trace search of the alert's service, when it has one)."""
        with self._lock:
            alerts = [a for s in self._groups for r in s.rules for a in r.alerts.values()
                      if a.state == "firing"]  # fmt: skip
            for alert in alerts:
                yield dict(alert.labels), dict(alert.annotations), alert.fired_at_ns, _link(alert)

    # --- thread ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)  # a rule query in flight ends at its budget; daemon thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                due = self.evaluate_due(self._now_ns())
            except Exception:  # an evaluation bug must not end alerting for good
                log.exception("rule evaluation failed")
                due = self._now_ns() + 10**9
            self._stop.wait(min(max((due - self._now_ns()) / 1e9, 0.05), 1.0))


def _carried(group: RuleGroup, before: GroupState | None) -> GroupState:
    """A reloaded group, with the state of the rules it had before unchanged."""
    if before is None:
        return GroupState(group, [RuleState(rule) for rule in group.rules])
    kept = {(r.rule.name, r.rule.expr): r for r in before.rules}
    rules = []
    for rule in group.rules:
        previous = kept.pop((rule.name, rule.expr), None)
        if previous is None:
            rules.append(RuleState(rule))
        else:
            rules.append(RuleState(rule, previous.alerts, previous.health, previous.last_error,
                                   previous.last_evaluation_ns, previous.evaluation_s))  # fmt: skip
    return GroupState(group, rules, before.last_evaluation_ns, before.evaluation_s)


class LimitExceededError(Exception):
    """A rule returned more alerts than its group's `limit`."""


def _next_alerts(state: RuleState, series: Series, now_ns: int, limit: int) -> dict[Key, Alert]:
    rule = state.rule
    found: dict[Key, Alert] = {}
    for labels, value in series:
        base = {k: v for k, v in labels.items() if k != "__name__"}
        extra = {name: t.render(base, value) for name, t in rule.labels.items()}
        full = {**base, **{k: v for k, v in extra.items() if v}, "alertname": rule.name}
        for name, text in extra.items():
            if not text:
                full.pop(name, None)
        key = tuple(sorted(full.items()))
        if key in found:
            raise ValueError(
                "vector contains metrics with the same labelset after applying alert labels"
            )
        notes = {name: t.render(base, value) for name, t in rule.annotations.items()}
        before = state.alerts.get(key)
        if before is None:
            alert = Alert(full, notes, value, "pending", now_ns)
        else:
            alert = _copy(before)
            alert.annotations, alert.value, alert.keep_firing_since_ns = notes, value, 0
        alert.last_seen_ns = now_ns
        if alert.state == "pending" and now_ns - alert.active_at_ns >= rule.for_ns:
            alert.state, alert.fired_at_ns = "firing", now_ns
        found[key] = alert
    for key, alert in state.alerts.items():
        if key in found or alert.state != "firing":
            continue  # a pending alert whose series is gone is dropped
        since = alert.keep_firing_since_ns or now_ns  # the first evaluation without it
        if rule.keep_firing_for_ns and now_ns - since < rule.keep_firing_for_ns:
            kept = _copy(alert)
            kept.keep_firing_since_ns = since
            found[key] = kept
    if limit and len(found) > limit:
        raise LimitExceededError(f"exceeded limit of {limit} with {len(found)} alerts")
    return found


def _snapshot(state: RuleState) -> RuleState:
    return RuleState(
        state.rule, {key: _copy(alert) for key, alert in state.alerts.items()}, state.health,
        state.last_error, state.last_evaluation_ns, state.evaluation_s,
    )  # fmt: skip


def _copy(alert: Alert) -> Alert:
    return Alert(dict(alert.labels), dict(alert.annotations), alert.value, alert.state,
                 alert.active_at_ns, alert.fired_at_ns, alert.last_seen_ns,
                 alert.keep_firing_since_ns)  # fmt: skip


def _link(alert: Alert) -> str:
    for name in _SERVICE_LABELS:
        if alert.labels.get(name):
            return "/#/traces?" + urlencode({"service": alert.labels[name]})
    return "/"
