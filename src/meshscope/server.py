"""`meshscope serve`: every listener in one event loop, the store owned by the writer thread."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Iterator

import uvicorn

from meshscope import __version__
from meshscope.app import App, build
from meshscope.config import Config
from meshscope.logs import configure_logging

log = logging.getLogger("meshscope")


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signals alone: `serve` handles them once for all."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def apply_cli(config: Config, args: argparse.Namespace) -> Config:
    server, storage = config.server, config.storage
    if args.host:
        server = dataclasses.replace(server, host=args.host)
    if args.ui_port is not None:
        server = dataclasses.replace(server, ui_port=args.ui_port)
    if args.storage:
        storage = dataclasses.replace(storage, kind=args.storage)
    if args.data:
        storage = dataclasses.replace(storage, path=args.data)
    return dataclasses.replace(config, server=server, storage=storage)


def serve(config: Config, args: argparse.Namespace) -> int:
    configure_logging()
    log.info("starting", extra={"version": __version__, "pid": os.getpid()})
    config = apply_cli(config, args)
    app = build(config)
    app.start()
    try:
        listening = asyncio.run(_serve(app))
    finally:
        app.stop()
        log.info("stopped")
    return 0 if listening else 1


async def _listen(instance: _Listener) -> None:
    """Serve until told to exit; a failed bind ends here (uvicorn logs why and raises
    SystemExit, which would otherwise escape the event loop with a traceback)."""
    with contextlib.suppress(SystemExit):
        await instance.serve()


async def _serve(app: App) -> bool:
    """Serve until SIGINT or SIGTERM; False at once when a listener cannot bind."""
    from meshscope.ingest.grpc import start_grpc_server

    # Each listener is a uvicorn server, and each logs the same process events ("Started server
    # process", "Application startup complete", ...) at INFO: meshscope logs each listener once
    # itself, and uvicorn's warnings and errors (a port in use) still come through.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    server = app.config.server
    listeners = [
        (app.ui, server.ui_port, "ui+query"),
        (app.otlp_http, server.otlp_http_port, "otlp-http"),
        (app.zipkin, server.zipkin_port, "zipkin"),
    ]
    servers = [
        _Listener(
            uvicorn.Config(
                asgi, host=server.host, port=port, log_config=None, access_log=False, lifespan="off"
            )
        )
        for asgi, port, _ in listeners
    ]
    grpc_server = await start_grpc_server(
        app.sink, server.host, server.otlp_grpc_port, app.limits, app.decoders
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(_listen(instance)) for instance in servers]
    tasks.append(asyncio.create_task(app.scraper.run(stop)))
    log.info("listening", extra={"listener": "otlp-grpc", "port": server.otlp_grpc_port})
    listening = True
    for (_, port, name), instance, task in zip(listeners, servers, tasks, strict=False):
        while not instance.started and not task.done():  # bound, or failed (uvicorn logs why)
            await asyncio.sleep(0.01)
        if instance.started:
            log.info("listening", extra={"listener": name, "port": port})
        else:
            log.error("cannot listen", extra={"listener": name, "port": port})
            listening = False
            stop.set()
    await stop.wait()
    for instance in servers:
        instance.should_exit = True
    await grpc_server.stop(grace=5)
    await asyncio.gather(*tasks, return_exceptions=True)
    return listening
