"""Authentication on `/metrics`: tokens in force, reloads of the tokens file (a failed one
means the old tokens are still in force: alert on it), and refused requests by transport
and reason (never by token: an unknown credential has no name, and a name per series would
let anyone who reads `/metrics` list the tokens)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.auth.tokens import TokenStore
from meshscope.metric_families import counters


class AuthCollector(Collector):
    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens

    def collect(self) -> Iterator[Metric]:
        tokens = self._tokens
        yield GaugeMetricFamily(
            "meshscope_auth_tokens", "Credentials in force from the tokens file.", len(tokens)
        )
        yield counters(
            "meshscope_auth_reloads",
            "Reads of the tokens file after the start, by outcome (failed: previous tokens kept).",
            ["outcome"],
            {"ok": tokens.reloads, "failed": tokens.reload_failures},
        )
        refused = CounterMetricFamily(
            "meshscope_auth_refused_requests",
            "Requests refused: unauthenticated (401 / UNAUTHENTICATED) or forbidden"
            " (403 / PERMISSION_DENIED), by transport.",
            labels=["transport", "reason"],
        )
        for transport in ("http", "grpc"):
            for reason in ("unauthenticated", "forbidden"):
                refused.add_metric([transport, reason], tokens.refusals[transport, reason])
        yield refused
