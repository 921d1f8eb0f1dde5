"""The demo's two child processes (2-core friendly: few processes, many listeners):

    python -m meshscope.demo.child sidecars SETTINGS_JSON   every service's sidecar
    python -m meshscope.demo.child services SETTINGS_JSON   every service, traffic, control

Each stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from meshscope.demo.services import DemoService, FaultSwitch, build_app
from meshscope.demo.topology import CALLS, SERVICES, DemoSettings
from meshscope.demo.traffic import TrafficGenerator, control_app
from meshscope.instrument import Instrumentation, instrument
from meshscope.sidecar.runner import run_sidecars
from meshscope.sidecar.settings import (
    Address,
    ExportSettings,
    SidecarSettings,
    otlp_client_env,
)


def sidecar_settings(settings: DemoSettings) -> list[SidecarSettings]:
    return [
        SidecarSettings(
            service=name,
            listen=Address(settings.host, settings.inbound_port(name)),
            upstream=settings.url(settings.app_port(name)),
            egress=Address(settings.host, settings.egress_port(name)) if name in CALLS else None,
            routes={t: settings.url(settings.inbound_port(t)) for t in CALLS.get(name, ())},
            upstream_timeout_s=10.0,
        )
        for name in SERVICES
    ]


def run_demo_sidecars(settings: DemoSettings) -> int:
    export = ExportSettings(
        endpoint=settings.otlp_endpoint,
        flush_interval_s=settings.export_interval_s,
        **otlp_client_env(os.environ),  # credentials, as the services' SDK exporters read them
    )
    return run_sidecars(
        sidecar_settings(settings), export, Address(settings.host, settings.admin_port)
    )


async def _serve_services(settings: DemoSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    switch = FaultSwitch(settings.faults)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    runners: list[web.AppRunner] = []
    services: list[DemoService] = []
    traffic = TrafficGenerator(settings.entry_url, settings.rate, session)
    try:
        for name in SERVICES:
            obs = instrument(name, settings.otlp_endpoint, set_global=False, export_delay_ms=500)
            service = DemoService(name, settings, switch, obs, session)
            services.append(service)
            runners.append(await _start(build_app(service), settings.host, settings.app_port(name)))
        runners.append(
            await _start(control_app(switch, traffic), settings.host, settings.control_port)
        )
        generator = asyncio.create_task(traffic.run())
        await stop.wait()
        generator.cancel()
        await traffic.stop()
    finally:
        for runner in runners:
            await runner.cleanup()
        await session.close()
        _shutdown([service.obs for service in services])


def _shutdown(instrumented: list[Instrumentation], timeout_s: float = 5.0) -> None:
    """Flush every service's exporters at once, giving up after `timeout_s` in all (an
    exporter retrying a meshscope that is already gone must not hold the demo's exit)."""
    threads = [threading.Thread(target=obs.shutdown, daemon=True) for obs in instrumented]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


async def _start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("sidecars", "services"):
        print(
            "usage: python -m meshscope.demo.child {sidecars|services} SETTINGS_JSON",
            file=sys.stderr,
        )
        return 2
    settings = DemoSettings.from_json(argv[1])
    if argv[0] == "sidecars":
        return run_demo_sidecars(settings)
    asyncio.run(_serve_services(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
