"""Forwarder against a real HTTP peer on loopback: what it sends, and each answer's error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from meshscope.cluster.forward import INTERNAL_PREFIX, Forwarder, Reply
from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.sink import OverloadedError, UnavailableError

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _send_to(answer: Answer, timeout_s: float = 5.0, **more: Any) -> tuple[Any, Forwarder]:
    """Start a peer answering with `answer`, forward one part to it, stop the peer: the
    outcome (a Reply or the error raised) and the forwarder."""
    app = web.Application()
    app.router.add_post(f"{INTERNAL_PREFIX}/{{kind}}", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # a hanging answer is cut at the end
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    forwarder = Forwarder("a", {"b": f"http://127.0.0.1:{port}"}, timeout_s, 1 << 20, **more)
    try:
        outcome: Any = await forwarder.send("b", "traces", Part(b"\x0a\x00", 7, False))
    except Exception as error:
        outcome = error
    finally:
        await forwarder.close()
        await runner.cleanup()
    return outcome, forwarder


def test_a_part_is_posted_with_its_headers_and_the_reply_read() -> None:
    seen: dict[str, Any] = {}

    async def answer(request: web.Request) -> web.Response:
        seen.update(request.headers, path=request.path, body=await request.read())
        return web.json_response({"rejected": 2, "error_message": "two bad spans"})

    reply, forwarder = asyncio.run(_send_to(answer, token="s3cret"))
    assert reply == Reply(2, "two bad spans")
    assert seen["path"] == f"{INTERNAL_PREFIX}/traces" and seen["body"] == b"\x0a\x00"
    assert seen["Content-Type"] == "application/x-protobuf"
    assert seen["x-meshscope-items"] == "7" and seen["x-meshscope-node"] == "a"
    assert seen["Authorization"] == "Bearer s3cret"
    assert forwarder.forwarded["traces", "b"] == 7 and forwarder.inflight["b"] == 0


@pytest.mark.parametrize(
    ("status", "body", "raised", "match"),
    [
        (429, "busy", OverloadedError, "overloaded: busy"),
        (400, "bad span", BodyError, "refused: bad span"),
        (413, "too big", BodyError, "refused: too big"),
        (401, "no", UnavailableError, "cluster.token"),
        (403, "read only", UnavailableError, "cluster.token"),
        (503, "store down", UnavailableError, "answered 503: store down"),
        (500, "oops", UnavailableError, "answered 500"),
        (200, "<html>not a peer</html>", UnavailableError, "answered 200 with: <html>"),
        (200, '{"rejected": "x", "error_message": ""}', UnavailableError, "answered 200"),
    ],
)
def test_each_answer_becomes_the_error_the_client_should_see(
    status: int, body: str, raised: type[Exception], match: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, headers={"Retry-After": "7"})

    error, forwarder = asyncio.run(_send_to(answer))
    assert isinstance(error, raised) and match in str(error)
    if isinstance(error, OverloadedError):
        assert error.retry_after_s == 7
    if isinstance(error, BodyError):
        assert error.status == status
    assert forwarder.failed["traces", "b"] == 7 and forwarder.inflight["b"] == 0


def test_a_peer_that_never_answers_is_unavailable_after_the_timeout() -> None:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    began = time.monotonic()
    error, forwarder = asyncio.run(_send_to(answer, timeout_s=0.3))
    assert isinstance(error, UnavailableError) and "unavailable" in str(error)
    assert time.monotonic() - began < 10
    assert forwarder.failed["traces", "b"] == 7 and forwarder.inflight["b"] == 0
