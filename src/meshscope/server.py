"""`meshscope serve`: every listener in one event loop, the store owned by the writer thread."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn

from meshscope import __version__
from meshscope.app import App, build
from meshscope.config import Config, ConfigError, ServerConfig, validate
from meshscope.listen import StartupError, bind_tcp, describe
from meshscope.logs import configure_logging
from meshscope.store.duckdb.database import StoreLockedError

log = logging.getLogger("meshscope")


SHUTDOWN_GRACE_S = 5
"""On SIGTERM/SIGINT, how long requests in flight on each listener (HTTP and gRPC) may take
to finish before they are cancelled: a client stalled mid-upload or mid-read would otherwise
hold the stop forever. A request cancelled so was never acknowledged; its client retries."""


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signals alone: `serve` handles them once for all."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def apply_cli(config: Config, args: argparse.Namespace) -> Config:
    """`config` with the command-line options applied, validated again (ConfigError): an
    option's value is checked as the same setting in the file would be."""
    server, storage = config.server, config.storage
    if args.host:
        server = dataclasses.replace(server, host=args.host)
    if args.ui_port is not None:
        server = dataclasses.replace(server, ui_port=args.ui_port)
    if args.storage:
        storage = dataclasses.replace(storage, kind=args.storage)
    if args.data:
        storage = dataclasses.replace(storage, path=args.data)
    applied = dataclasses.replace(config, server=server, storage=storage)
    validate(applied)
    return applied


def serve(config: Config, args: argparse.Namespace) -> int:
    """Bind every port, open the store, then start; a failure before that is one line on
    stderr and exit status 1, with nothing started (no listener, store or worker)."""
    configure_logging()
    config = apply_cli(config, args)
    raise_open_files_limit()
    sockets: dict[str, socket.socket] = {}
    try:
        sockets = _bind(config.server)
        app = build(config)
    except StartupError as error:
        return _fail(str(error), sockets)
    except StoreLockedError as error:
        return _fail(f"cannot open {error.path}: in use by {describe(error.pid)}", sockets)
    except ConfigError:  # e.g. the tokens file or a TLS file: main() prints it (exit 2)
        for sock in sockets.values():
            sock.close()
        raise
    log.info("starting", extra={"version": __version__, "pid": os.getpid()})
    app.start()
    freeze_startup_heap()
    try:
        asyncio.run(_serve(app, sockets))
    except StartupError as error:
        print(f"meshscope: {error}", file=sys.stderr)
        return 1
    finally:
        app.stop()
        log.info("stopped")
    return 0


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one, as Go programs (Prometheus, Jaeger,
    Tempo) do at start since Go 1.19: clients' connections, each tenant's DuckDB file and WAL,
    and the trace locator's runs spilled to files (one descriptor each, ADR 0019) all take
    descriptors, and a default soft limit of 1,024 is low for that. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a sandbox that refuses: keep the soft limit
        return soft
    return hard


def freeze_startup_heap() -> None:
    """Move every object alive after startup (modules, the app, its routes and caches) out of
    the garbage collector's reach. A full collection walks every tracked object: ~35 ms in the
    query benchmark's process, more in a server, paid by whichever request triggered it (the
    slowest Jaeger searches of issue #18). What startup built lives as long as the process;
    objects freed by reference counting still are, only cycles among them would stay."""
    gc.collect()
    gc.freeze()


def _bind(server: ServerConfig) -> dict[str, socket.socket]:
    """One bound socket per listener (gRPC's too: it is closed just before gRPC binds the
    port itself, which it cannot take over from a socket)."""
    sockets: dict[str, socket.socket] = {}
    try:
        for name, port in _ports(server):
            sockets[name] = bind_tcp(server.host, port, name)
    except StartupError:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def _ports(server: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("ui+query", server.ui_port),
        ("otlp-http", server.otlp_http_port),
        ("otlp-grpc", server.otlp_grpc_port),
        ("zipkin", server.zipkin_port),
    ]


def _fail(message: str, sockets: dict[str, socket.socket]) -> int:
    for sock in sockets.values():
        sock.close()
    print(f"meshscope: {message}", file=sys.stderr)
    return 1


async def _serve(app: App, sockets: dict[str, socket.socket]) -> None:
    from meshscope.ingest.grpc import serve_grpc

    # Each listener is a uvicorn server, and each logs the same process events ("Started server
    # process", "Application startup complete", ...) at INFO: meshscope logs each listener once
    # itself, and uvicorn's warnings and errors still come through.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    server = app.config.server
    grpc_socket = sockets.pop("otlp-grpc")
    grpc_socket.close()
    try:
        grpc_server, grpc_port = await serve_grpc(
            app.sink,
            server.host,
            server.otlp_grpc_port,
            app.limits,
            app.decoders,
            credentials=app.tls.grpc_credentials() if app.tls else None,
            interceptors=app.grpc_interceptors,
        )
    except RuntimeError:  # taken in the instant between the check and gRPC's own bind
        raise StartupError(
            f"cannot listen on {server.host}:{server.otlp_grpc_port} (otlp-grpc): port in use"
        ) from None
    asgi = {"ui+query": app.ui, "otlp-http": app.otlp_http, "zipkin": app.zipkin}
    tls = app.tls.uvicorn_options() if app.tls else {}
    servers = {
        name: _Listener(
            uvicorn.Config(
                asgi[name],
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                **tls,
            )
        )
        for name in sockets
    }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP: read the tokens file, the limits overrides file and the rule files again now.
    reloads = [
        *([app.tokens.reload] if app.tokens is not None else []),
        *([app.limiter.reload] if app.limiter is not None else []),
        *([app.rules.reload] if app.rules is not None else []),
    ]
    if reloads:
        loop.add_signal_handler(signal.SIGHUP, lambda: [reload() for reload in reloads])
    tasks = [
        asyncio.create_task(instance.serve(sockets=[sockets[name]]))
        for name, instance in servers.items()
    ]
    while not all(instance.started for instance in servers.values()):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(app.scraper.run(stop)))
    bound = {name: sock.getsockname()[1] for name, sock in sockets.items()}
    bound["otlp-grpc"] = grpc_port  # the port taken, when the setting is 0
    for name, _ in _ports(server):
        log.info(
            "listening", extra={"listener": name, "port": bound[name], "tls": app.tls is not None}
        )
    if app.tokens is not None:
        log.info("authentication on", extra={"tokens": len(app.tokens)})
    await stop.wait()
    for instance in servers.values():
        instance.should_exit = True
    await grpc_server.stop(grace=SHUTDOWN_GRACE_S)
    await asyncio.gather(*tasks, return_exceptions=True)
    if app.cluster is not None:
        await app.cluster.sink.forwarder.close()
