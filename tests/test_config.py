"""Configuration: file + env overrides, validated with clear messages; documented fully."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from meshscope.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_file() -> None:
    assert load_config(None, env={}) == Config()


def test_example_file_is_the_defaults() -> None:
    assert load_config(ROOT / "examples" / "meshscope.yaml", env={}) == Config()


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage:\n  path: a.duckdb\nserver:\n  ui_port: 1\n")
    config = load_config(path, env={"MESHSCOPE_SERVER__UI_PORT": "2", "OTHER": "x"})
    assert config.server.ui_port == 2
    assert config.storage.path == "a.duckdb"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope:\n  a: 1\n", "unknown config section 'nope'"),
        ("server:\n  color: red\n", "unknown setting server.color"),
        ("server:\n  ui_port: high\n", "server.ui_port must be an integer, got 'high'"),
        ("server:\n  host: 1\n", "server.host must be a string, got 1"),
        ("server:\n  ui_port: 70000\n", "must be a port number"),
        ("storage:\n  kind: cassandra\n", "storage.kind must be one of memory, duckdb, clickhouse"),
        ("storage:\n  retention_hours: 0\n", "retention_hours must be > 0"),
        (
            "storage:\n  duckdb: {memory_limit: lots}\n",
            "storage.duckdb.memory_limit must be a percentage",
        ),
        ("storage:\n  duckdb: {sample_cache: big}\n", "storage.duckdb.sample_cache must be a size"),
        ("storage:\n  memory_limit: 4GB\n", "unknown setting storage.memory_limit"),
        ("storage:\n  kind: clickhouse\n  clickhouse:\n    dsn: http://h\n", "dsn must look like"),
        ("storage:\n  kind: clickhouse\n  clickhouse:\n    database: a-b\n", "database must be"),
        ("storage:\n  kind: clickhouse\n  clickhouse:\n    cluster: mesh\n", "cluster.shards"),
        (
            "storage:\n  kind: clickhouse\n  clickhouse:\n    min_insert_interval_seconds: 60\n",
            "min_insert_interval_seconds must be from 0 to 5",
        ),
        (
            "storage:\n  kind: clickhouse\n  clickhouse:\n    min_insert_interval_seconds: .nan\n",
            "min_insert_interval_seconds must be from 0 to 5",
        ),
        ("storage:\n  clickhouse: 1\n", "storage.clickhouse must be a mapping"),
        ("storage:\n  clickhouse:\n    dns: x\n", "unknown setting storage.clickhouse.dns"),
        ("pipeline:\n  commit_window_seconds: -1\n", "commit_window_seconds must be from 0"),
        ("pipeline:\n  commit_window_seconds: .nan\n", "commit_window_seconds must be from 0"),
        ("pipeline:\n  commit_window_seconds: 3600\n", "commit_window_seconds must be from 0"),
        ("pipeline:\n  commit_window_items: 0\n", "commit_window_items must be > 0"),
        ("- a\n- b\n", "must hold a mapping"),
        ("server: [1\n", "not valid YAML"),
    ],
)
def test_invalid_config_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(path, env={})


def test_nested_sections_are_parsed_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "sampling:\n  tail:\n    enabled: true\n    policies:\n"
        "      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n"
        "scrape:\n  scrape_configs:\n"
        "    - {job_name: app, static_configs: [{targets: ['127.0.0.1:9']}]}\n"
    )
    config = load_config(path, env={"MESHSCOPE_SAMPLING__HEAD__ENABLED": "true"})
    assert config.sampling.tail.enabled and config.sampling.head.enabled
    assert [job.job_name for job in config.scrape.jobs] == ["app"]
    path.write_text("scrape:\n  scrape_configs:\n    - {job_name: app}\n")
    with pytest.raises(ConfigError, match="app"):
        load_config(path, env={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml", env={})


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "examples" / "meshscope.yaml").read_text()
    for section in dataclasses.fields(Config):
        if section.name in ("sampling", "scrape", "slos", "alerting"):
            continue  # nested sections: their own tests check their docs
        for setting in dataclasses.fields(getattr(Config(), section.name)):
            name = f"{section.name}.{setting.name}"
            assert f"`{name}`" in doc, f"{name} missing from docs/configuration.md"
            assert f"  {setting.name}:" in example, f"{name} missing from examples/meshscope.yaml"


def test_clickhouse_section_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage:\n  kind: clickhouse\n  clickhouse:\n    database: mesh\n")
    env = {"MESHSCOPE_STORAGE__CLICKHOUSE__DSN": "clickhouse://u:p@db.example:9000"}
    storage = load_config(path, env=env).storage
    assert storage.kind == "clickhouse"
    assert storage.clickhouse.database == "mesh"
    assert storage.clickhouse.dsn == "clickhouse://u:p@db.example:9000"
    assert storage.clickhouse.cluster == ""
