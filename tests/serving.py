"""Serve a Starlette app with uvicorn on 127.0.0.1 (a free port) in a thread, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

HOST = "127.0.0.1"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets)
        await self.on_exit()


async def _nothing() -> None:
    pass


@contextmanager
def serving(
    app: Any,
    force_exit: bool = False,
    on_exit: Callable[[], Awaitable[Any]] = _nothing,
    **options: Any,
) -> Iterator[str]:
    """Yield the base URL while uvicorn serves the ASGI `app`; stop it (bounded) afterwards.
    `force_exit` stops without waiting for requests still running (a hanging target's);
    `on_exit` runs in the server's event loop once it stopped serving (e.g. closing clients
    made in that loop); `options` go to uvicorn.Config (`ssl_certfile`, `ssl_keyfile`: an
    https URL)."""
    config = uvicorn.Config(app, host=HOST, port=0, log_level="warning", lifespan="off", **options)
    server = _Server(config, on_exit)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if options.get("ssl_certfile") else "http"
        yield f"{scheme}://{HOST}:{port}"
    finally:
        server.should_exit = True
        server.force_exit = force_exit
        thread.join(10)
        assert not thread.is_alive(), "uvicorn did not stop"


def wait_for(check: Callable[..., Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """`check()` again until it answers something true or `timeout_s` passes: its last
    answer (a test then asserts on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(every_s)
