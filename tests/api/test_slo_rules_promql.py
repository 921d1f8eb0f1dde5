"""The burn-rate alert rules' PromQL (`/api/v1/rules` `query`) says what the SLO API says.

The rules are what a team copies into Prometheus or Grafana: their PromQL must fire exactly
when meshscope reports the burn as firing, and its bad-event ratio over the long window,
divided by the error budget, must be the burn rate the API reports. Checked with our PromQL
engine on the span metrics of tests/query/slo_data at four moments (quiet, the slow burn,
the burst, after it), and, where the Debian `prometheus` package is installed, with a real
Prometheus on the same samples backfilled by promtool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.slo import slo_routes
from meshscope.api.slo_json import bad_ratio_promql, duration_text
from meshscope.model.metrics import MetricPoint
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import Vector
from meshscope.query.slo import LATENCY, Slo
from meshscope.store.memory import MemoryStorage
from tests.conformance import prometheus_server
from tests.query.slo_data import MINUTE, load

DAY = 1440 * MINUTE
SLOS = (
    Slo("api-availability", "api", 0.99, DAY),
    Slo("api-latency", "api", 0.99, 7 * DAY, sli=LATENCY, threshold_ms=200, operation="GET /"),
)
# quiet; the slow 8 % burn (ticket only); the 30 % burst (page and ticket); 20 min after it.
MOMENTS_MIN = (50, 300, 445, 470)


class Clock:
    now_ns = 0


@pytest.fixture(scope="module")
def data() -> Iterator[tuple[MemoryStorage, int, TestClient]]:
    storage, start = load()
    routes = slo_routes(storage.metrics, SLOS, lambda: Clock.now_ns)
    with TestClient(Starlette(routes=routes)) as client:
        yield storage, start, client


def _at(client: TestClient, t_ns: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rules (flattened, in SLO order) and the SLO statuses at `t_ns`."""
    Clock.now_ns = t_ns
    rules = client.get("/api/v1/rules").json()["data"]["groups"]
    slos = client.get("/api/meshscope/slos", params={"time": t_ns // 10**6}).json()["data"]
    return [rule for group in rules for rule in group["rules"]], slos["slos"]


def _checks(
    client: TestClient, start: int, value: Any
) -> Iterator[tuple[str, float | None, bool, float]]:
    """(what, PromQL value of the long-window bad ratio / budget, does the rule's query
    return anything, the API's long burn rate) per rule per moment; `value(query, t_ms)` is
    the instant value of a one-series query (None when empty)."""
    for minute in MOMENTS_MIN:
        t_ns = start + minute * MINUTE
        rules, statuses = _at(client, t_ns)
        burns = [(slo, burn) for slo, status in zip(SLOS, statuses, strict=True)
                 for burn in status["burnRates"]]  # fmt: skip
        assert len(rules) == len(burns) == 4
        for rule, (slo, burn) in zip(rules, burns, strict=True):
            assert rule["state"] == ("firing" if burn["firing"] else "inactive")
            t_ms = t_ns // 10**6
            ratio = value(bad_ratio_promql(slo, burn["longWindow"]), t_ms)
            fires = value(rule["query"], t_ms) is not None
            what = f"{slo.name} {burn['severity']} at minute {minute}"
            rate = None if ratio is None else ratio / slo.budget
            assert fires == burn["firing"], f"{what}: the rule's PromQL disagrees with the API"
            yield what, rate, fires, burn["long"]


def _assert_agrees(rate: float | None, api_rate: float, what: str) -> None:
    # No bad event in the window: no error series to divide, so the PromQL ratio is empty
    # (no alert), where the API says 0.
    if api_rate == 0:
        assert rate in (None, 0.0), what
        return
    # rate() extrapolates to the window's edges and the API counts whole flushes, so the
    # two ratios differ by at most one flush interval (1 min) of a 60 min or 6 h window.
    assert rate is not None, what
    assert rate == pytest.approx(api_rate, rel=1 / 50, abs=0.05), what


def test_our_engine_evaluates_the_rules_as_the_api_reports(
    data: tuple[MemoryStorage, int, TestClient],
) -> None:
    storage, start, client = data
    engine = Engine(MetricStoreQueryable(storage.metrics))

    def value(query: str, t_ms: int) -> float | None:
        found = engine.instant(query, t_ms)
        assert isinstance(found, Vector), query
        return float(found.samples[0].v) if found.samples else None

    states = []
    for what, rate, fires, api_rate in _checks(client, start, value):
        _assert_agrees(rate, api_rate, what)
        states.append(fires)
    assert True in states and False in states  # the moments exercise both outcomes


def _points(storage: MemoryStorage) -> list[MetricPoint]:
    out: list[MetricPoint] = []
    for family in storage.metrics.families():
        for series in storage.metrics.select(family.name, [], 0, 2**63 - 1):
            out.extend(series.samples)
    return out


@pytest.mark.skipif(bool(prometheus_server.available()), reason="Debian prometheus not installed")
def test_real_prometheus_evaluates_the_rules_as_the_api_reports(
    data: tuple[MemoryStorage, int, TestClient], tmp_path: Path
) -> None:
    storage, start, client = data
    with prometheus_server.running_prometheus(tmp_path, _points(storage)) as url:

        def value(query: str, t_ms: int) -> float | None:
            found = prometheus_server.query_range(url, query, t_ms, t_ms, 60_000)
            assert found["status"] == "success", (query, found)
            result = found["data"]["result"]
            return float(result[0]["values"][0][1]) if result else None

        for what, rate, _, api_rate in _checks(client, start, value):
            _assert_agrees(rate, api_rate, what)


def test_rule_windows_are_prometheus_durations() -> None:
    assert [duration_text(n * MINUTE) for n in (5, 30, 60, 360)] == ["5m", "30m", "1h", "6h"]
