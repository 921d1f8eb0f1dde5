"""Scrape settings: Prometheus' shape and the short one, defaults, and every refusal."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from meshscope.config import ConfigError
from meshscope.ingest.scrape_config import (
    ScrapeConfig,
    ScrapeTarget,
    parse_duration,
    parse_scrape_config,
)

PROMETHEUS_SHAPE = """
scrape_configs:
  - job_name: checkout
    scrape_interval: 30s
    scrape_timeout: 5s
    metrics_path: /stats/prometheus
    scheme: https
    static_configs:
      - targets: ["10.0.0.5:8080", "app.local:9000"]
        labels: {env: prod}
      - targets: ["10.0.0.7:8080"]
  - job_name: node
    targets: ["127.0.0.1:9100"]
"""


def test_prometheus_shape_and_defaults() -> None:
    config = parse_scrape_config(yaml.safe_load(PROMETHEUS_SHAPE))
    checkout, node = config.jobs
    assert (checkout.scrape_interval_s, checkout.scrape_timeout_s) == (30.0, 5.0)
    assert (node.scrape_interval_s, node.scrape_timeout_s) == (15.0, 10.0)
    assert (node.metrics_path, node.scheme) == ("/metrics", "http")
    assert config.targets() == [
        ScrapeTarget(
            "checkout",
            "10.0.0.5:8080",
            "https://10.0.0.5:8080/stats/prometheus",
            (("env", "prod"),),
        ),
        ScrapeTarget(
            "checkout",
            "app.local:9000",
            "https://app.local:9000/stats/prometheus",
            (("env", "prod"),),
        ),
        ScrapeTarget("checkout", "10.0.0.7:8080", "https://10.0.0.7:8080/stats/prometheus"),
        ScrapeTarget("node", "127.0.0.1:9100", "http://127.0.0.1:9100/metrics"),
    ]
    assert config.targets()[0].target_labels() == (
        ("env", "prod"),
        ("instance", "10.0.0.5:8080"),
        ("job", "checkout"),
    )


def test_nothing_configured_is_no_jobs() -> None:
    assert parse_scrape_config(None) == ScrapeConfig()
    assert parse_scrape_config({"scrape_configs": []}).targets() == []


def test_a_short_interval_lowers_the_default_timeout() -> None:
    (job,) = parse_scrape_config(
        [{"job_name": "a", "targets": ["h:1"], "scrape_interval": "2s"}]
    ).jobs
    assert job.scrape_timeout_s == 2.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), (2, 2.0), (0.25, 0.25)],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["15", "s", "1x", "-1s", "0s", 0, True, None, "1m 2s"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ConfigError, match="setting x"):
        parse_duration(text, "x")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"jobs": []}, "unknown scrape setting"),
        ("app:80", "must be a list of jobs"),
        ([{"targets": ["h:1"]}], "job_name must be a non-empty string"),
        ([{"job_name": "a"}], "has no targets"),
        ([{"job_name": "a", "targets": ["h:1"], "interval": "1s"}], "unknown setting"),
        ([{"job_name": "a", "targets": ["h"]}], "target must be host:port, got 'h'"),
        ([{"job_name": "a", "targets": ["http://h:1"]}], "target must be host:port"),
        ([{"job_name": "a", "targets": ["h:99999"]}], "target must be host:port"),
        ([{"job_name": "a", "targets": ["h:1"], "scheme": "ftp"}], "scheme must be http or https"),
        ([{"job_name": "a", "targets": ["h:1"], "metrics_path": "m"}], "must start with '/'"),
        (
            [
                {
                    "job_name": "a",
                    "targets": ["h:1"],
                    "scrape_interval": "5s",
                    "scrape_timeout": "6s",
                }
            ],
            "exceeds scrape_interval",
        ),
        ([{"job_name": "a", "targets": ["h:1"], "labels": {"job": "x"}}], "set by the scraper"),
        ([{"job_name": "a", "targets": ["h:1"], "labels": {"__x": "1"}}], "invalid label name"),
        ([{"job_name": "a", "targets": ["h:1"], "labels": {"a-b": "1"}}], "invalid label name"),
        ([{"job_name": "a", "targets": ["h:1"], "labels": {"n": 1}}], "string value"),
        (
            [{"job_name": "a", "static_configs": [{"targets": ["h:1"], "x": 1}]}],
            "only targets and labels",
        ),
        (
            [{"job_name": "a", "targets": ["h:1"]}, {"job_name": "a", "targets": ["h:2"]}],
            "must be unique, repeated: a",
        ),
    ],
)
def test_invalid_settings_name_the_problem(raw: Any, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_scrape_config(raw)


def test_a_job_names_a_valid_tenant() -> None:
    job = {"job_name": "a", "targets": ["h:1"], "tenant": "team-a"}
    assert parse_scrape_config([job]).jobs[0].tenant == "team-a"
    assert parse_scrape_config([{**job, "tenant": "x"}]).targets()[0].tenant == "x"
    with pytest.raises(ConfigError, match="tenant"):
        parse_scrape_config([{**job, "tenant": "a|b"}])
