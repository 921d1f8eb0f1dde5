"""Forwarder against a real HTTP peer on loopback: what it sends, and each answer's error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from meshscope.cluster.forward import (
    BATCHED,
    INTERNAL_PREFIX,
    REQUESTS_PER_LANE,
    Forwarder,
    Reply,
    _Lane,
    _take,
    _Waiting,
)
from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.sink import OverloadedError, UnavailableError
from meshscope.limits.tenant import HEADER as TENANT_HEADER
from meshscope.tenancy.context import as_tenants

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _peer(answer: Answer) -> tuple[web.AppRunner, str]:
    """A loopback peer whose internal route answers with `answer`: its runner and URL."""
    app = web.Application()
    app.router.add_post(f"{INTERNAL_PREFIX}/{{kind}}", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # a hanging answer is cut at the end
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _send_to(answer: Answer, timeout_s: float = 5.0, **more: Any) -> tuple[Any, Forwarder]:
    """Start a peer answering with `answer`, forward one part to it, stop the peer: the
    outcome (a Reply or the error raised) and the forwarder."""
    runner, url = await _peer(answer)
    forwarder = Forwarder("a", {"b": url}, timeout_s, 1 << 20, **more)
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
    `held` is clear it holds every request (parts sent meanwhile then wait for a turn)."""

    def __init__(self, answer: Callable[[bytes, int], web.Response] | None = None) -> None:
        self.seen: list[tuple[bytes, int, str]] = []  # body, items, tenant header
        self.held = asyncio.Event()
        self._answer = answer or (lambda body, items: web.json_response(_ok))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        items = int(request.headers["x-meshscope-items"])
        self.seen.append((body, items, request.headers.get(TENANT_HEADER, "")))
        await self.held.wait()
        return self._answer(body, items)

    async def start(self) -> tuple[web.AppRunner, str]:
        return await _peer(self.handle)

    async def until_seen(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < count:
            assert time.monotonic() < deadline, f"the peer saw {len(self.seen)} requests"
            await asyncio.sleep(0.005)


_ok = {"rejected": 0, "error_message": ""}


def _parts(count: int, json: bool = False) -> list[Part]:
    return [Part(bytes([0x0A, 1, index]), index + 1, json) for index in range(count)]


async def _send(forwarder: Forwarder, kind: str, part: Part, tenant: str = "") -> Reply:
    if not tenant:
        return await forwarder.send("b", kind, part)
    with as_tenants(tenant):
        return await forwarder.send("b", kind, part)


async def _batched(
    peer: Peer, parts: list[Part], kind: str = "traces", tenants: list[str] | None = None
) -> tuple[list[Any], Forwarder]:
    """Send the first parts one by one while the peer holds its requests (as many as go at
    once: every part, or REQUESTS_PER_LANE trace parts), then the rest, then let it answer."""
    runner, url = await peer.start()
    forwarder = Forwarder("a", {"b": url}, 5.0, 1 << 20)
    tenants = tenants or [""] * len(parts)
    at_once = min(REQUESTS_PER_LANE if kind in BATCHED else len(parts), len(parts))
    try:
        sent = []
        for index in range(at_once):
            sent.append(asyncio.create_task(_send(forwarder, kind, parts[index], tenants[index])))
            await peer.until_seen(index + 1)
        sent += [
            asyncio.create_task(_send(forwarder, kind, part, tenant))
            for part, tenant in zip(parts[at_once:], tenants[at_once:], strict=True)
        ]
        await asyncio.sleep(0.05)
        peer.held.set()
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await forwarder.close()
        await runner.cleanup()
    return outcomes, forwarder


def test_parts_that_wait_for_a_turn_go_in_one_request() -> None:
    assert REQUESTS_PER_LANE == 2  # the expected requests below
    peer = Peer()
    parts = _parts(5)
    outcomes, forwarder = asyncio.run(_batched(peer, parts))
    assert outcomes == [Reply(0, "")] * 5
    assert [(body, items) for body, items, _ in peer.seen] == [
        (parts[0].body, 1),
        (parts[1].body, 2),
        (b"".join(part.body for part in parts[2:]), 3 + 4 + 5),
    ]
    assert forwarder.requests["traces", "b"] == 3 and forwarder.forwarded["traces", "b"] == 15
    assert forwarder.inflight["b"] == 0 and not forwarder._lanes


@pytest.mark.parametrize(("kind", "json"), [("logs", False), ("zipkin", True)])
def test_logs_and_zipkin_parts_go_alone(kind: str, json: bool) -> None:
    peer = Peer()
    outcomes, _ = asyncio.run(_batched(peer, _parts(4, json), kind=kind))
    assert outcomes == [Reply(0, "")] * 4 and len(peer.seen) == 4


def test_a_refused_batch_is_sent_again_part_by_part() -> None:
    """The peer refuses the request of parts 3 and 4 (items 3 + 4): nothing of it was stored,
    so each goes again alone and gets its own answer."""

    def answer(body: bytes, items: int) -> web.Response:
        if items == 3 + 4:
            return web.Response(status=400, text="bad span in there")
        if items == 3:
            return web.Response(status=400, text="your span is bad")
        return web.json_response(_ok)

    peer = Peer(answer)
    outcomes, forwarder = asyncio.run(_batched(peer, _parts(4)))
    assert outcomes[0] == outcomes[1] == outcomes[3] == Reply(0, "")
    assert isinstance(outcomes[2], BodyError) and "your span is bad" in str(outcomes[2])
    assert [items for _, items, _ in peer.seen] == [1, 2, 3 + 4, 3, 4]
    assert forwarder.forwarded["traces", "b"] == 1 + 2 + 4 and forwarder.failed["traces", "b"] == 3


def test_a_partial_success_of_a_batch_is_told_to_each_part() -> None:
    def answer(body: bytes, items: int) -> web.Response:
        rejected = 1 if items > 2 else 0
        return web.json_response({"rejected": rejected, "error_message": "span 7: bad ids"})

    outcomes, _ = asyncio.run(_batched(Peer(answer), _parts(4)))
    assert outcomes[:2] == [Reply(0, "span 7: bad ids")] * 2
    for reply in outcomes[2:]:
        assert reply.rejected == 1
        assert "rejected 1 of 7 spans forwarded with these (from 2 requests)" in reply.error_message


def test_an_overloaded_peer_fails_every_part_of_the_batch() -> None:
    def answer(body: bytes, items: int) -> web.Response:
        if items <= 2:
            return web.json_response(_ok)
        return web.Response(status=429, text="busy", headers={"Retry-After": "3"})

    outcomes, forwarder = asyncio.run(_batched(Peer(answer), _parts(5)))
    assert outcomes[:2] == [Reply(0, "")] * 2
    assert all(isinstance(one, OverloadedError) and one.retry_after_s == 3 for one in outcomes[2:])
    assert len({id(one) for one in outcomes[2:]}) == 3  # each part its own exception
    assert len({str(one) for one in outcomes[2:]}) == 1
    assert forwarder.failed["traces", "b"] == 3 + 4 + 5


def test_each_tenant_has_its_own_batches() -> None:
    """Parts of two tenants, the first two of one: every request holds one tenant's parts
    and carries its header, and each tenant's waiting parts go together."""
    tenants = ["acme", "acme", "globex", "acme", "globex", "acme", "globex"]
    parts = _parts(len(tenants))
    peer = Peer()
    outcomes, _ = asyncio.run(_batched(peer, parts, tenants=tenants))
    assert outcomes == [Reply(0, "")] * len(parts)
    tenant_of = {part.body: tenant for part, tenant in zip(parts, tenants, strict=True)}
    batched = 0
    for body, items, tenant in peer.seen:
        members = [part for part in parts if part.body in body]
        assert {tenant_of[part.body] for part in members} == {tenant}
        assert sum(part.items for part in members) == items
        batched += len(members) > 1
    assert batched >= 1 and sorted(b for b, _, _ in peer.seen) != sorted(p.body for p in parts)


def test_a_part_whose_client_left_is_not_sent() -> None:
    async def run() -> tuple[list[Any], Peer, Forwarder]:
        peer = Peer()
        runner, url = await peer.start()
        forwarder = Forwarder("a", {"b": url}, 0.5, 1 << 20)
        try:
            parts = _parts(3)
            held = []
            for index in range(2):
                held.append(asyncio.create_task(forwarder.send("b", "traces", parts[index])))
                await peer.until_seen(index + 1)
            gone = asyncio.create_task(forwarder.send("b", "traces", parts[2]))
            await asyncio.sleep(0.05)
            gone.cancel()
            await asyncio.sleep(0.6)  # past the timeout: the held requests fail
            peer.held.set()
            outcomes = await asyncio.gather(*held, return_exceptions=True)
        finally:
            await forwarder.close()
            await runner.cleanup()
        return outcomes, peer, forwarder

    outcomes, peer, forwarder = asyncio.run(run())
    assert all(isinstance(one, UnavailableError) for one in outcomes), outcomes
    assert [items for _, items, _ in peer.seen] == [1, 2]  # the waiting part was not sent
    assert forwarder.inflight["b"] == 0 and not forwarder._lanes


def test_parts_that_waited_past_the_timeout_are_not_sent() -> None:
    async def run() -> tuple[list[Any], Any]:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        waiting = [
            _Waiting(part, loop.create_future(), queued_at)
            for part, queued_at in zip(_parts(3), (now - 20, now - 1, now), strict=True)
        ]
        lane = _Lane(waiting=list(waiting))
        taken = _take(lane, now - 10, "b")
        return [w.reply.exception() if w.reply.done() else None for w in waiting], taken

    outcomes, taken = asyncio.run(run())
    assert isinstance(outcomes[0], UnavailableError) and "timed out" in str(outcomes[0])
    assert outcomes[1:] == [None, None] and [w.part.items for w in taken] == [2, 3]
