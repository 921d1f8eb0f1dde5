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
from meshscope.limits.tenant import HEADER as TENANT_HEADER
from meshscope.tenancy.context import as_tenants

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


class Peer:
    """A loopback peer that records each request and answers by `answer(body, items)`; while
    `held` is clear it holds every request (the first request's parts then queue)."""

    def __init__(self, answer: Callable[[bytes, int], web.Response] | None = None) -> None:
        self.seen: list[tuple[bytes, int, str]] = []  # body, items, tenant header
        self.held = asyncio.Event()
        self.arrived = asyncio.Event()
        self._answer = answer or (lambda body, items: web.json_response(_ok))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        items = int(request.headers["x-meshscope-items"])
        self.seen.append((body, items, request.headers.get(TENANT_HEADER, "")))
        self.arrived.set()
        await self.held.wait()
        return self._answer(body, items)

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post(f"{INTERNAL_PREFIX}/{{kind}}", self.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"


_ok = {"rejected": 0, "error_message": ""}


def _parts(count: int, json: bool = False) -> list[Part]:
    return [Part(bytes([0x0A, 1, index]), index + 1, json) for index in range(count)]


async def _batched(peer: Peer, parts: list[Part], kind: str = "traces") -> tuple[Any, Forwarder]:
    """Send `parts` while the peer holds the first request, then let it answer."""
    runner, url = await peer.start()
    forwarder = Forwarder("a", {"b": url}, 5.0, 1 << 20)
    try:
        first = asyncio.create_task(forwarder.send("b", kind, parts[0]))
        await peer.arrived.wait()
        rest = [asyncio.create_task(forwarder.send("b", kind, part)) for part in parts[1:]]
        await asyncio.sleep(0.05)
        peer.held.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    finally:
        await forwarder.close()
        await runner.cleanup()
    return outcomes, forwarder


def test_parts_that_wait_for_a_request_on_its_way_go_in_one() -> None:
    peer = Peer()
    parts = _parts(5)
    outcomes, forwarder = asyncio.run(_batched(peer, parts))
    assert outcomes == [Reply(0, "")] * 5
    assert [(body, items) for body, items, _ in peer.seen] == [
        (parts[0].body, 1),
        (b"".join(part.body for part in parts[1:]), 2 + 3 + 4 + 5),
    ]
    assert forwarder.requests["traces", "b"] == 2 and forwarder.forwarded["traces", "b"] == 15
    assert forwarder.inflight["b"] == 0 and not forwarder._lanes


@pytest.mark.parametrize(("kind", "json"), [("logs", False), ("zipkin", True)])
def test_logs_and_zipkin_parts_go_alone(kind: str, json: bool) -> None:
    peer = Peer()
    outcomes, _ = asyncio.run(_batched(peer, _parts(3, json), kind=kind))
    assert outcomes == [Reply(0, "")] * 3 and len(peer.seen) == 3


def test_a_refused_batch_is_sent_again_part_by_part() -> None:
    """The peer refuses any request of more than one part: nothing of it was stored, so each
    part goes again alone and gets its own answer."""

    def answer(body: bytes, items: int) -> web.Response:
        if items not in (1, 2, 3, 4):
            return web.Response(status=400, text="bad span in there")
        if items == 3:
            return web.Response(status=400, text="your span is bad")
        return web.json_response(_ok)

    peer = Peer(answer)
    outcomes, forwarder = asyncio.run(_batched(peer, _parts(4)))
    assert outcomes[0] == outcomes[1] == outcomes[3] == Reply(0, "")
    assert isinstance(outcomes[2], BodyError) and "your span is bad" in str(outcomes[2])
    assert [items for _, items, _ in peer.seen] == [1, 2 + 3 + 4, 2, 3, 4]
    assert forwarder.forwarded["traces", "b"] == 1 + 2 + 4 and forwarder.failed["traces", "b"] == 3


def test_a_partial_success_of_a_batch_is_told_to_each_part() -> None:
    def answer(body: bytes, items: int) -> web.Response:
        rejected = 1 if items > 1 else 0
        return web.json_response({"rejected": rejected, "error_message": "span 7: bad ids"})

    outcomes, _ = asyncio.run(_batched(Peer(answer), _parts(3)))
    assert outcomes[0] == Reply(0, "span 7: bad ids")
    for reply in outcomes[1:]:
        assert reply.rejected == 1
        assert "rejected 1 of 5 spans forwarded with these (from 2 requests)" in reply.error_message


def test_an_overloaded_peer_fails_every_part_of_the_batch() -> None:
    def answer(body: bytes, items: int) -> web.Response:
        if items == 1:
            return web.json_response(_ok)
        return web.Response(status=429, text="busy", headers={"Retry-After": "3"})

    outcomes, forwarder = asyncio.run(_batched(Peer(answer), _parts(4)))
    assert outcomes[0] == Reply(0, "")
    assert all(isinstance(one, OverloadedError) and one.retry_after_s == 3 for one in outcomes[1:])
    assert forwarder.failed["traces", "b"] == 2 + 3 + 4


def test_each_tenant_has_its_own_batches() -> None:
    async def run() -> Peer:
        peer = Peer()
        runner, url = await peer.start()
        forwarder = Forwarder("a", {"b": url}, 5.0, 1 << 20)

        async def send(tenant: str, part: Part) -> Reply:
            with as_tenants(tenant):
                return await forwarder.send("b", "traces", part)

        try:
            parts = _parts(5)
            first = asyncio.create_task(send("acme", parts[0]))
            await peer.arrived.wait()
            rest = [
                asyncio.create_task(send("acme" if i % 2 else "globex", part))
                for i, part in enumerate(parts[1:], 1)
            ]
            await asyncio.sleep(0.05)
            peer.held.set()
            await asyncio.gather(first, *rest)
        finally:
            await forwarder.close()
            await runner.cleanup()
        return peer

    seen = asyncio.run(run()).seen
    by_tenant = sorted((tenant, items) for _, items, tenant in seen)
    assert by_tenant == [("acme", 1), ("acme", 2 + 4), ("globex", 3 + 5)]


def test_a_part_whose_client_left_is_not_sent_and_a_stale_one_times_out() -> None:
    async def run() -> tuple[Any, Peer]:
        peer = Peer()
        runner, url = await peer.start()
        forwarder = Forwarder("a", {"b": url}, 0.5, 1 << 20)
        try:
            parts = _parts(3)
            first = asyncio.create_task(forwarder.send("b", "traces", parts[0]))
            await peer.arrived.wait()
            gone = asyncio.create_task(forwarder.send("b", "traces", parts[1]))
            stale = asyncio.create_task(forwarder.send("b", "traces", parts[2]))
            await asyncio.sleep(0.05)
            gone.cancel()
            await asyncio.sleep(0.6)  # past the timeout: the first request fails, the rest waited
            peer.held.set()
            outcomes = await asyncio.gather(first, stale, return_exceptions=True)
            assert forwarder.inflight["b"] == 0
        finally:
            await forwarder.close()
            await runner.cleanup()
        return outcomes, peer

    outcomes, peer = asyncio.run(run())
    assert all(isinstance(one, UnavailableError) for one in outcomes)
    assert "timed out" in str(outcomes[1])
    assert [items for _, items, _ in peer.seen] == [1]  # neither queued part was sent
