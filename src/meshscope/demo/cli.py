"""`meshscope demo`: the subcommand's options (docs/cli.md) and its entry point."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from meshscope.config import ConfigError, load_config
from meshscope.demo.faults import FaultError, Faults, parse_assignment
from meshscope.demo.topology import DemoSettings
from meshscope.sidecar.settings import SettingsError, parse_url

DEFAULT_FAULTS = Faults(error_rate={"db": 0.1}, spike_ms={"api": 300.0}, spike_rate=0.05)
DEMO_SLOS = """\
# The demo's SLOs (used when `meshscope demo` runs its own server without --config): with the
# default faults the checkout availability burns its budget fast (db errors reach web) and
# the api latency SLO slowly (5% of api calls spike to 300 ms).
slos:
  - name: checkout-availability
    service: web
    operation: GET /checkout
    objective: 0.995
    window: 1d
  - name: api-latency
    service: api
    objective: 0.995
    window: 1d
    sli: latency
    threshold_ms: 200
"""


def add_demo_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `demo` to the `meshscope` subcommands (`commands` is an argparse subparsers)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="meshscope plus an example mesh with sidecars, traffic and faults"
    )
    parser.add_argument("--config", metavar="FILE", help="YAML configuration for meshscope serve")
    parser.add_argument("--storage", choices=["duckdb", "memory"], help="store backend")
    parser.add_argument(
        "--data", metavar="PATH", help="DuckDB file (default data/meshscope.duckdb)"
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send to a meshscope already running at this OTLP/HTTP URL instead of starting one",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=18000,
        metavar="PORT",
        help="first of the demo's ports: services +0..4, sidecars +10..14, egress +20..24, "
        "sidecar admin +30, control +31 (default 18000)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="requests/s of generated traffic (default 5; 0 = none)",
    )
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="SERVICE=P",
        help="the service answers 500 with probability P; repeatable",
    )
    parser.add_argument(
        "--spike",
        action="append",
        default=[],
        metavar="SERVICE=MS",
        help="latency spikes of MS milliseconds on the service; repeatable",
    )
    parser.add_argument(
        "--spike-rate", type=float, default=0.1, metavar="P", help="probability of a spike (0.1)"
    )
    parser.add_argument(
        "--slow",
        action="append",
        default=[],
        metavar="SERVICE=MS",
        help="a slow dependency: every request of the service takes MS longer; repeatable",
    )
    parser.add_argument(
        "--no-faults",
        action="store_true",
        help="start without faults (default without fault options: db errors 10%%, api spikes)",
    )
    parser.add_argument(
        "--logs",
        default="data/demo-services.jsonl",
        metavar="PATH",
        help="where the services' JSON log lines go ('-' = this terminal)",
    )
    return parser


def faults_from_args(args: argparse.Namespace) -> Faults:
    if not (args.error_rate or args.spike or args.slow):
        return Faults() if args.no_faults else DEFAULT_FAULTS
    return Faults.from_dict(
        {
            "error_rate": dict(parse_assignment("--error-rate", v, 1.0) for v in args.error_rate),
            "spike_ms": dict(parse_assignment("--spike", v, 60_000) for v in args.spike),
            "spike_rate": args.spike_rate,
            "slow_ms": dict(parse_assignment("--slow", v, 60_000) for v in args.slow),
        }
    )


def run(args: argparse.Namespace) -> int:
    from meshscope.demo.launcher import run_demo
    from meshscope.server import apply_cli

    try:
        faults = faults_from_args(args)
        if not 1024 <= args.base_port <= 65535 - 31:
            raise FaultError("--base-port must be in [1024, 65504]")
        if not 0 <= args.rate <= 1000:
            raise FaultError("--rate must be in [0, 1000]")
        config = None
        serve_args: list[str] = []
        if args.otlp_endpoint:
            endpoint = parse_url("--otlp-endpoint", args.otlp_endpoint)
        else:
            serve = argparse.Namespace(
                host=None, ui_port=None, storage=args.storage, data=args.data
            )
            config = apply_cli(load_config(args.config), serve)
            scheme = "https" if config.server.tls.cert_file else "http"
            endpoint = f"{scheme}://{config.server.host}:{config.server.otlp_http_port}"
            for option in ("config", "storage", "data"):
                if getattr(args, option):
                    serve_args += [f"--{option}", getattr(args, option)]
    except (FaultError, SettingsError, ConfigError) as error:
        print(f"meshscope demo: {error}", file=sys.stderr)
        return 2
    settings = DemoSettings(
        otlp_endpoint=endpoint, base_port=args.base_port, rate=args.rate, faults=faults
    )
    if config is None or args.config:
        return run_demo(settings, config, serve_args, args.logs)
    with tempfile.TemporaryDirectory(prefix="meshscope-demo-") as tmp:
        path = Path(tmp) / "demo.yaml"
        path.write_text(DEMO_SLOS, encoding="utf-8")
        config = apply_cli(load_config(path), serve)
        return run_demo(settings, config, [*serve_args, "--config", str(path)], args.logs)
