"""The `meshscope` command line."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence

from meshscope import __version__
from meshscope.config import ConfigError, load_config
from meshscope.demo.cli import add_demo_parser
from meshscope.demo.cli import run as run_demo
from meshscope.sidecar.cli import add_sidecar_parser
from meshscope.sidecar.cli import run as run_sidecar
from meshscope.store.factory import KINDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshscope",
        description="Observability backend for service meshes: traces, metrics and logs.",
    )
    parser.add_argument("--version", action="version", version=f"meshscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (receivers, store, query APIs)")
    serve.add_argument("--config", metavar="FILE", help="YAML configuration file")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--ui-port", type=int, help="UI and query API port (default 16686)")
    serve.add_argument("--storage", choices=KINDS, help="store backend")
    serve.add_argument("--data", metavar="PATH", help="DuckDB file (default data/meshscope.duckdb)")

    commands.add_parser(
        "node", help="speak the JSON-lines node protocol on stdin/stdout (docs/node-protocol.md)"
    )
    add_sidecar_parser(commands)
    add_demo_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "node":
        from meshscope.node.main import run

        if isinstance(sys.stdin, io.TextIOWrapper):
            # Input is UTF-8 JSON lines whatever the locale; a byte that is not UTF-8 comes
            # through as a surrogate (that line is reported as not JSON), never as an error
            # that ends the node (a strict locale's decoder raised UnicodeDecodeError).
            sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
        return run(sys.stdin, sys.stdout, sys.stderr)
    if args.command == "sidecar":
        return run_sidecar(args)
    if args.command == "demo":
        return run_demo(args)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"meshscope: {error}", file=sys.stderr)
        return 2
    from meshscope.server import serve

    try:
        return serve(config, args)
    except ConfigError as error:  # raised at start-up, e.g. the store's server is unreachable
        print(f"meshscope: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
