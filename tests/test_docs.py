"""Documentation stays true: every CLI option, every served route and every one of
meshscope's own metrics is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route

from meshscope.app import build
from meshscope.cli import build_parser
from meshscope.config import Config, StorageConfig

ROOT = Path(__file__).resolve().parent.parent


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_cli_option_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    for name, sub in _subcommands(build_parser()).items():
        assert f"`meshscope {name}" in doc, f"command {name} missing from docs/cli.md"
        section = doc.split(f"`meshscope {name}", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, f"{name} {option} missing from docs/cli.md"


def _paths(routes: list[BaseRoute], prefix: str = "") -> list[str]:
    out: list[str] = []
    for route in routes:
        if isinstance(route, Route):
            out.append(prefix + route.path)
        elif isinstance(route, Mount):
            out.extend(_paths(list(route.routes), prefix + route.path))
    return out


def test_every_served_route_is_documented(tmp_path: Path) -> None:
    app = build(Config(storage=StorageConfig(kind="memory", path=str(tmp_path / "x"))))
    doc = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"`(/[^`\s]*)`", doc))
    for asgi in (app.ui, app.otlp_http, app.zipkin):
        for path in _paths(list(asgi.routes)):
            assert path in documented, f"route {path} missing from docs/api.md"
    app.storage.close()


# String literals of the form "meshscope_..." in the source that are not metric families.
NOT_METRICS = {
    "meshscope_node",  # a label name: the cluster node of derived series (cluster/config.py)
    "meshscope_query_budget",  # a ContextVar's name (query/budget.py)
    "meshscope_stopping",  # a ContextVar's name (stopping.py)
}
SIDECAR = ROOT / "src" / "meshscope" / "sidecar"  # served on the sidecar's admin listener


def _metric_families() -> dict[str, Path]:
    """Each metric family name the source defines (a histogram's, without `_bucket`, `_sum`,
    `_count`; a counter's, without `_total`), with the file defining it."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / "src" / "meshscope").rglob("*.py")):
        for name in re.findall(r'"(meshscope_[a-z0-9_]+)"', path.read_text()):
            found[name] = path
    missing = NOT_METRICS - set(found)
    assert not missing, f"exclusions no longer in the source: {missing}"
    return {name: path for name, path in found.items() if name not in NOT_METRICS}


def _documented(section: str) -> set[str]:
    """The families of the metric table rows (`| `name` | type | labels | what |`) of a
    section: a counter is named as written, with `_total`."""
    families: set[str] = set()
    for name, kind in re.findall(r"^\| `(meshscope_[a-z0-9_]+)` \| ([a-z]+) \|", section, re.M):
        assert kind in ("counter", "gauge", "histogram", "info"), f"{name}: type {kind}"
        if kind == "counter":
            assert name.endswith("_total"), f"counter {name} documented without _total"
            name = name.removesuffix("_total")
        families.add(name)
    return families


def test_every_own_metric_is_documented() -> None:
    doc = (ROOT / "docs" / "api.md").read_text()
    assert "\n## meshscope's own metrics\n" in doc
    section = doc.split("\n## meshscope's own metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = _documented(section)
    sidecar_doc = (ROOT / "docs" / "sidecar.md").read_text()
    listener = sidecar_doc.split("\n### Admin listener", 1)[1].split("\n#", 1)[0]
    sidecar_documented = {
        name.removesuffix("_total") for name in re.findall(r"`(meshscope_[a-z0-9_]+)", listener)
    }
    families = _metric_families()
    for name, path in families.items():
        if path.is_relative_to(SIDECAR):
            assert name in sidecar_documented, f"{name} missing from docs/sidecar.md"
        else:
            assert name in documented, f"{name} missing from docs/api.md's own metrics"
    stale = documented - set(families)
    assert not stale, f"docs/api.md documents metrics the source does not define: {stale}"
