"""SLO burn-rate alerts sent to a real Alertmanager (Debian `prometheus-alertmanager`).

The span metrics of tests/query/slo_data are laid out so that the error burst ends about
now; the notifier evaluates at chosen moments and posts to an Alertmanager started for the
module, whose own API then shows what it received.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshscope.alerting.config import AlertingConfig, parse_alerting
from meshscope.alerting.notifier import RESEND_FACTOR, AlertNotifier
from meshscope.api.params import rfc3339
from meshscope.config import ConfigError, load_config
from meshscope.query.slo import Slo
from meshscope.store.memory import MemoryStorage
from tests.ingest.asgi_server import free_port
from tests.query.slo_data import MINUTE, load

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
HOUR = 60 * MINUTE
SLOS = (Slo("api-availability", "api", 0.99, 1440 * MINUTE),)
EXTERNAL = "http://meshscope.example:16686"
BURST_MIN = 445  # minutes 420-449 fail 30 %: page and ticket fire
AFTER_MIN = 462  # the 5 m window is clean again: the page resolves, the ticket still fires


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BINARY is None:
        pytest.skip("prometheus-alertmanager is not installed (scripts/system-deps.sh)")
    work = tmp_path_factory.mktemp("alertmanager")
    config = work / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=(work / "log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (work / "log").read_text()
            assert time.monotonic() < deadline, "alertmanager did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def data() -> tuple[MemoryStorage, int]:
    """Span metrics whose minute AFTER_MIN is now (Alertmanager drops alerts whose endsAt is
    in the past, so the evaluation moments must be real times)."""
    now = time.time_ns() // MINUTE * MINUTE
    return load(start_ns=now - AFTER_MIN * MINUTE)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _received(url: str, slo: str) -> dict[str, dict[str, Any]]:
    alerts = httpx.get(url + "/api/v2/alerts", params={"filter": f'slo="{slo}"'}).json()
    return {a["labels"]["alertname"]: a for a in alerts}


def test_firing_alerts_reach_alertmanager_and_resolve(
    alertmanager: str, data: tuple[MemoryStorage, int]
) -> None:
    storage, start = data
    clock = [start + BURST_MIN * MINUTE]
    # An hour's interval: firing alerts end 4 h after their evaluation, which is in the future
    # for every moment here.
    config = AlertingConfig(alertmanagers=(alertmanager,), interval_ns=HOUR)
    notifier = AlertNotifier(storage.metrics, SLOS, config, EXTERNAL, lambda: clock[0])
    notifier.evaluate_and_send()
    got = _received(alertmanager, "api-availability")
    assert set(got) == {"ErrorBudgetBurnPage", "ErrorBudgetBurnTicket"}
    page = got["ErrorBudgetBurnPage"]
    assert page["labels"] == {"alertname": "ErrorBudgetBurnPage", "severity": "page",
                              "slo": "api-availability", "service": "api",
                              "sli": "availability"}  # fmt: skip
    assert page["status"]["state"] == "active"
    assert page["generatorURL"] == f"{EXTERNAL}/#/traces?service=api&status=error"
    assert "burn rate" in page["annotations"]["description"]
    first_start = page["startsAt"]
    assert notifier.sent == 2 and notifier.errors == 0

    clock[0] += 5 * MINUTE  # still firing: resent, startsAt kept, endsAt pushed on
    notifier.evaluate_and_send()
    page = _received(alertmanager, "api-availability")["ErrorBudgetBurnPage"]
    assert page["startsAt"] == first_start
    lasts = _time(page["endsAt"]) - _time(first_start)
    assert lasts == timedelta(minutes=5, hours=RESEND_FACTOR)

    clock[0] = start + AFTER_MIN * MINUTE  # the page stops firing, the ticket goes on
    sent = {a["labels"]["alertname"]: a for a in notifier.alerts(clock[0])}
    assert set(sent) == {"ErrorBudgetBurnPage", "ErrorBudgetBurnTicket"}
    assert sent["ErrorBudgetBurnPage"]["endsAt"] == rfc3339(clock[0])  # resolved: ends now
    assert _time(sent["ErrorBudgetBurnPage"]["startsAt"]) == _time(first_start)
    assert sent["ErrorBudgetBurnTicket"]["endsAt"] == rfc3339(clock[0] + RESEND_FACTOR * HOUR)
    notifier.send(list(sent.values()))
    assert set(_received(alertmanager, "api-availability")) == {"ErrorBudgetBurnTicket"}
    # A resolved alert is sent once: the next evaluation sends the ticket only.
    again = notifier.alerts(clock[0] + MINUTE)
    assert [a["labels"]["alertname"] for a in again] == ["ErrorBudgetBurnTicket"]
    notifier.stop()


def test_an_unreachable_alertmanager_is_counted_not_raised(data: tuple[MemoryStorage, int]) -> None:
    storage, start = data
    config = AlertingConfig(alertmanagers=(f"http://127.0.0.1:{free_port()}",))
    notifier = AlertNotifier(storage.metrics, SLOS, config, EXTERNAL, lambda: start + 445 * MINUTE)
    notifier.evaluate_and_send()
    assert (notifier.sent, notifier.errors) == (0, 1)
    notifier.stop()


def test_quiet_slos_send_nothing(data: tuple[MemoryStorage, int]) -> None:
    storage, start = data
    notifier = AlertNotifier(storage.metrics, SLOS, AlertingConfig(), EXTERNAL)
    assert notifier.alerts(start + 30 * MINUTE) == []
    notifier.stop()


def test_the_background_thread_sends_at_start(
    alertmanager: str, data: tuple[MemoryStorage, int]
) -> None:
    storage, start = data
    slo = Slo("thread-slo", "api", 0.99, 1440 * MINUTE)
    config = AlertingConfig(alertmanagers=(alertmanager,), interval_ns=3600 * 10**9)
    notifier = AlertNotifier(storage.metrics, [slo], config, EXTERNAL,
                             lambda: start + BURST_MIN * MINUTE)  # fmt: skip
    notifier.start()
    deadline = time.monotonic() + 10
    while not _received(alertmanager, "thread-slo") and time.monotonic() < deadline:
        time.sleep(0.05)
    notifier.stop()
    assert set(_received(alertmanager, "thread-slo")) == {
        "ErrorBudgetBurnPage", "ErrorBudgetBurnTicket",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("alerting:\n  alertmanagers: [ftp://x]\n", "needs http"),
        ("alerting:\n  alertmanagers: {a: 1}\n", "must be a list of URLs"),
        ("alerting:\n  every: 1m\n", "unknown setting alerting.every"),
        ("alerting:\n  interval: soon\n", "alerting.interval must be a duration"),
        ("alerting: [1]\n", "must be a mapping"),
    ],
)
def test_bad_alerting_settings_are_named(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_alerting_settings_parse() -> None:
    parsed = parse_alerting({"alertmanagers": ["http://am:9093/"], "interval": "30s",
                             "external_url": "https://ms.example/"})  # fmt: skip
    assert parsed == AlertingConfig(("http://am:9093",), 30 * 10**9, "https://ms.example")
    assert parse_alerting(None) == AlertingConfig()


def test_every_alerting_setting_is_documented_and_the_example_loads() -> None:
    from meshscope.alerting.config import _FIELDS

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "configuration.md").read_text()
    for name in _FIELDS:
        assert f"`alerting.{name}`" in doc, name
    example = load_config(root / "examples" / "slos.yaml", env={})
    assert example.alerting.alertmanagers == ("http://127.0.0.1:9093",) and example.slos
    groups = {(g.name, g.language): len(g.rules) for g in example.alerting.rule_groups}
    assert groups == {("golden-signals", "promql"): 3, ("logs", "logql"): 1}


def test_serve_sends_alerts_when_configured_and_counts_them(alertmanager: str) -> None:
    from starlette.testclient import TestClient

    from meshscope.app import build
    from meshscope.config import Config, PipelineConfig, StorageConfig

    no_workers = PipelineConfig(ingest_workers=0)
    config = Config(
        storage=StorageConfig(kind="memory"), pipeline=no_workers, slos=SLOS,
        alerting=AlertingConfig(alertmanagers=(alertmanager,)),
    )  # fmt: skip
    app = build(config)
    assert app.notifier is not None
    app.start()
    app.stop()  # one evaluation ran at start: nothing fires on an empty store
    with TestClient(app.ui) as client:
        text = client.get("/metrics").text
    assert "meshscope_alerts_sent_total 0.0" in text
    assert "meshscope_alert_notifications_failed_total 0.0" in text
    assert build(Config(storage=StorageConfig(kind="memory"), pipeline=no_workers)).notifier is None
