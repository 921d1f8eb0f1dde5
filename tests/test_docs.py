"""Documentation stays true: every CLI option and every served route is documented."""

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
