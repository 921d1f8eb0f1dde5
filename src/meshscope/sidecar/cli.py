"""`meshscope sidecar`: the subcommand's options (docs/cli.md) and its entry point."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from meshscope.sidecar.settings import (
    DEFAULT_OTLP_ENDPOINT,
    Address,
    ExportSettings,
    SettingsError,
    SidecarSettings,
    otlp_client_env,
    parse_address,
    parse_route,
)


def add_sidecar_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `sidecar` to the `meshscope` subcommands (`commands` is an argparse subparsers)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "sidecar",
        help="proxy in front of one service: traces, metrics and access logs without code changes",
    )
    parser.add_argument("--service", required=True, help="name of the service behind this proxy")
    parser.add_argument(
        "--listen", required=True, metavar="HOST:PORT", help="inbound listener (clients call this)"
    )
    parser.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="the service itself, e.g. http://127.0.0.1:8080",
    )
    parser.add_argument(
        "--egress",
        metavar="HOST:PORT",
        help="listener for the service's outbound calls: http://HOST:PORT/<target>/<path>",
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="egress target NAME is reached at URL (its sidecar); repeatable",
    )
    parser.add_argument(
        "--admin", metavar="HOST:PORT", help="admin listener with /metrics and /health"
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=DEFAULT_OTLP_ENDPOINT,
        metavar="URL",
        help=f"meshscope's OTLP/HTTP base URL (default {DEFAULT_OTLP_ENDPOINT})",
    )
    parser.add_argument(
        "--upstream-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="answer 504 when the upstream is silent this long (default 15)",
    )
    parser.add_argument(
        "--export-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often buffered spans are sent (default 0.5)",
    )
    parser.add_argument(
        "--export-buffer",
        type=int,
        default=20_000,
        metavar="N",
        help="spans and log records kept while meshscope is unreachable (default 20000)",
    )
    return parser


def settings_from_args(
    args: argparse.Namespace,
) -> tuple[SidecarSettings, ExportSettings, Address | None]:
    routes = dict(parse_route(value) for value in args.route)
    sidecar = SidecarSettings(
        service=args.service,
        listen=parse_address("--listen", args.listen),
        upstream=args.upstream,
        egress=parse_address("--egress", args.egress) if args.egress else None,
        routes=routes,
        upstream_timeout_s=args.upstream_timeout,
    )
    export = ExportSettings(
        endpoint=args.otlp_endpoint.rstrip("/"),
        flush_interval_s=args.export_interval,
        max_buffer=args.export_buffer,
        **otlp_client_env(os.environ),
    )
    admin = parse_address("--admin", args.admin) if args.admin else None
    return sidecar, export, admin


def run(args: argparse.Namespace) -> int:
    try:
        sidecar, export, admin = settings_from_args(args)
    except SettingsError as error:
        print(f"meshscope sidecar: {error}", file=sys.stderr)
        return 2
    from meshscope.logs import configure_logging
    from meshscope.sidecar.runner import run_sidecars

    configure_logging()
    return run_sidecars([sidecar], export, admin)
