"""Run sidecars: each one's inbound and egress listeners, one shared exporter, and an admin
listener (`/metrics`, `/health`) for the process. Several sidecars may share one process and
event loop (the demo runs all of its sidecars that way)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from meshscope.sidecar.export import Exporter
from meshscope.sidecar.handlers import Sidecar
from meshscope.sidecar.metrics import SidecarMetrics
from meshscope.sidecar.settings import Address, ExportSettings, SidecarSettings

log = logging.getLogger("meshscope.sidecar")


@dataclass(slots=True)
class RunningSidecars:
    """Started sidecars; `ports` maps "service/inbound", "service/egress" and "admin" to the
    bound port (useful with port 0)."""

    sidecars: list[Sidecar]
    exporter: Exporter
    metrics: SidecarMetrics
    runners: list[web.BaseRunner] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        for sidecar in self.sidecars:
            await sidecar.close()
        await self.exporter.stop()


def _server(handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]) -> web.Server:
    # Bodies pass through as they are (no decompression); the sidecar's own access log is
    # its spans, not aiohttp's.
    return web.Server(handler, auto_decompress=False, access_log=None, keepalive_timeout=75.0)


async def _listen(runner: web.BaseRunner, address: Address) -> int:
    """Start `runner` on `address`; the bound port (useful with port 0)."""
    await runner.setup()
    site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
    await site.start()
    return int(runner.addresses[-1][1])


def _admin_app(running: RunningSidecars) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        running.metrics.buffered.labels("all").set(running.exporter.pending())
        body = generate_latest(running.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app


async def start_sidecars(
    sidecars: Sequence[SidecarSettings], export: ExportSettings, admin: Address | None
) -> RunningSidecars:
    metrics = SidecarMetrics()
    exporter = Exporter(export, metrics)
    await exporter.start()
    running = RunningSidecars([], exporter, metrics)
    try:
        for settings in sidecars:
            sidecar = Sidecar(settings, exporter, metrics)
            running.sidecars.append(sidecar)
            inbound = web.ServerRunner(_server(sidecar.inbound), handle_signals=False)
            running.runners.append(inbound)
            running.ports[f"{settings.service}/inbound"] = await _listen(inbound, settings.listen)
            if settings.egress is not None:
                egress = web.ServerRunner(_server(sidecar.egress), handle_signals=False)
                running.runners.append(egress)
                running.ports[f"{settings.service}/egress"] = await _listen(egress, settings.egress)
        if admin is not None:
            runner = web.AppRunner(_admin_app(running), handle_signals=False, access_log=None)
            running.runners.append(runner)
            running.ports["admin"] = await _listen(runner, admin)
    except BaseException:
        await running.stop()
        raise
    return running


async def serve_sidecars(
    sidecars: Sequence[SidecarSettings], export: ExportSettings, admin: Address | None
) -> None:
    """Run until SIGINT/SIGTERM, then stop listeners and flush what is buffered (bounded)."""
    running = await start_sidecars(sidecars, export, admin)
    for name, port in running.ports.items():
        log.info("listening", extra={"listener": name, "port": port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()


def run_sidecars(
    sidecars: Sequence[SidecarSettings], export: ExportSettings, admin: Address | None
) -> int:
    import uvloop  # comes with uvicorn[standard]

    uvloop.run(serve_sidecars(sidecars, export, admin))
    return 0
