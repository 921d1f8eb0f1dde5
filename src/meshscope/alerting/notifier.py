"""Send the SLO burn-rate alerts and the rule files' firing alerts to Alertmanager.

What Prometheus's notifier does for its alerting rules, for the rules `/api/v1/rules` shows:
every interval each firing alert is (re)sent to every Alertmanager (`POST /api/v2/alerts`)
with the labels and annotations of `/api/v1/alerts`, `startsAt` = when it began firing and
`endsAt` = now + 4 intervals (so it resolves by itself if meshscope stops sending); an alert
that stops firing is sent once more with `endsAt` = now (resolved). `generatorURL` links to
the UI's trace search for the SLO (failing or slow traces of that service), or for a rule's
alert of the service its labels name (`service_name` or `service`). Sending fails
open: an unreachable Alertmanager is logged and counted, never retried beyond the next
interval's resend, and never stops the evaluation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.alerting.config import AlertingConfig
from meshscope.alerting.rules import RuleEvaluator
from meshscope.api.params import rfc3339
from meshscope.api.slo_json import alert_json
from meshscope.query.slo import Slo, evaluate_all
from meshscope.store.base import MetricStore

log = logging.getLogger("meshscope.alerting")
RESEND_FACTOR = 4  # endsAt = now + RESEND_FACTOR intervals, as Prometheus does
TIMEOUT_S = 10.0

Key = tuple[tuple[str, str], ...]


class AlertNotifier:
    def __init__(
        self,
        metrics: MetricStore,
        slos: Sequence[Slo],
        config: AlertingConfig,
        external_url: str,
        now_ns: Callable[[], int] = time.time_ns,
        rules: RuleEvaluator | None = None,
    ) -> None:
        self._metrics = metrics
        self._slos = tuple(slos)
        self._rules = rules
        self.config = config
        self._external_url = (config.external_url or external_url).rstrip("/")
        self._now_ns = now_ns
        # firing alerts' labels -> when they began (ns), their last annotations and UI link
        self._active: dict[Key, tuple[int, dict[str, str], str]] = {}
        self._client = httpx.Client(timeout=TIMEOUT_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshscope-alerts", daemon=True)
        self.sent = 0  # alerts delivered (per Alertmanager)
        self.errors = 0  # failed deliveries

    def alerts(self, now_ns: int) -> list[dict[str, Any]]:
        """The alerts to send at `now_ns`: every firing one, and those resolved since the
        last evaluation (updates which alerts are active)."""
        firing: dict[Key, dict[str, Any]] = {}
        fired: dict[Key, int] = {}  # a rule's alert: when it fired
        for status in evaluate_all(self._metrics, self._slos, now_ns):
            for burn in status.burns:
                if burn.firing:
                    alert = alert_json(status, burn)
                    alert["link"] = alert["annotations"].get("traces", "/")
                    firing[tuple(sorted(alert["labels"].items()))] = alert
        for labels, notes, fired_ns, link in self._rules.firing() if self._rules else ():
            key = tuple(sorted(labels.items()))
            firing[key] = {"labels": labels, "annotations": notes, "link": link}
            fired[key] = fired_ns
        ends = now_ns + RESEND_FACTOR * self.config.interval_ns
        started = {key: self._active.get(key, (fired.get(key, now_ns), {}, ""))[0]
                   for key in firing}  # fmt: skip
        out = [self._payload(alert, started[key], ends) for key, alert in firing.items()]
        for key, (began, notes, link) in self._active.items():
            if key not in firing:  # resolved: sent once with endsAt = now
                resolved = {"labels": dict(key), "annotations": notes, "link": link}
                out.append(self._payload(resolved, began, now_ns))
        self._active = {key: (started[key], a["annotations"], a["link"])
                        for key, a in firing.items()}  # fmt: skip
        return out

    def send(self, alerts: list[dict[str, Any]]) -> None:
        """POST `alerts` to every Alertmanager; failures are logged and counted."""
        if not alerts:
            return
        for base in self.config.alertmanagers:
            try:
                response = self._client.post(f"{base}/api/v2/alerts", json=alerts)
            except httpx.HTTPError as error:
                self.errors += 1
                log.warning("alertmanager unreachable", extra={"url": base, "error": str(error)})
                continue
            if response.is_success:
                self.sent += len(alerts)
            else:
                self.errors += 1
                log.warning(
                    "alertmanager refused alerts",
                    extra={"url": base, "status": response.status_code, "body": response.text},
                )

    def evaluate_and_send(self) -> None:
        self.send(self.alerts(self._now_ns()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(TIMEOUT_S + 5)
        self._client.close()

    def _run(self) -> None:
        interval_s = self.config.interval_ns / 1e9
        while True:
            try:
                self.evaluate_and_send()
            except Exception:  # an evaluation bug must not end alerting for good
                log.exception("alert evaluation failed")
            if self._stop.wait(interval_s):
                return

    def _payload(self, alert: dict[str, Any], starts_ns: int, ends_ns: int) -> dict[str, Any]:
        return {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "startsAt": rfc3339(starts_ns),
            "endsAt": rfc3339(ends_ns),
            "generatorURL": self._external_url + alert["link"],
        }


class NotifierCollector(Collector):
    """The notifier's counters for meshscope's own `/metrics`."""

    def __init__(self, notifier: AlertNotifier) -> None:
        self._notifier = notifier

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "meshscope_alerts_sent",
            "Alerts delivered to Alertmanager (each resend and each Alertmanager counts).",
            value=self._notifier.sent,
        )
        yield CounterMetricFamily(
            "meshscope_alert_notifications_failed",
            "Posts to an Alertmanager that failed (unreachable or refused).",
            value=self._notifier.errors,
        )
