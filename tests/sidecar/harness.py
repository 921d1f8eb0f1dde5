"""Real servers for the sidecar tests: an upstream aiohttp app and sidecars, each on
127.0.0.1 in an event loop running in a background thread; tests call them with httpx."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiohttp import web

from meshscope.sidecar.runner import RunningSidecars, start_sidecars
from meshscope.sidecar.settings import Address, ExportSettings, SidecarSettings

HOST = "127.0.0.1"
T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_length": len(body),
            "peer_port": request.transport.get_extra_info("peername")[1]
            if request.transport
            else None,
            "body_head": body[:16].decode("latin-1"),
        }
    )


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status\n")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slow\n")


async def _stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(int(request.query.get("chunks", "4"))):
        await response.write(f"chunk-{i};".encode() * 10_000)
    await response.write_eof()
    return response


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b"hello gzip\n"),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )


async def _broken(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000000"})
    await response.prepare(request)
    await response.write(b"x" * 70_000)
    assert request.transport is not None
    request.transport.close()
    return response


def upstream_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/echo{tail:.*}", _echo)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/broken", _broken)
    return app


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    return runner, f"http://{HOST}:{runner.addresses[0][1]}"


@contextmanager
def running_upstream(loop: LoopThread) -> Iterator[str]:
    runner, url = loop.run(start_app(upstream_app()))
    try:
        yield url
    finally:
        loop.run(runner.cleanup())


@contextmanager
def running_sidecars(
    loop: LoopThread,
    sidecars: list[SidecarSettings],
    export: ExportSettings,
    admin: bool = True,
) -> Iterator[RunningSidecars]:
    running = loop.run(start_sidecars(sidecars, export, Address(HOST, 0) if admin else None))
    try:
        yield running
    finally:
        loop.run(running.stop())


def sidecar(
    service: str, upstream: str, routes: dict[str, str] | None = None, timeout_s: float = 15.0
) -> SidecarSettings:
    return SidecarSettings(
        service=service,
        listen=Address(HOST, 0),
        upstream=upstream,
        egress=Address(HOST, 0) if routes is not None else None,
        routes=routes or {},
        upstream_timeout_s=timeout_s,
    )
