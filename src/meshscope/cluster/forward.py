"""Forwarding request parts to their owners over the peers' internal route, bounded and
batched.

A `POST <peer>/internal/cluster/v1/<kind>` carries the OTLP protobuf or Zipkin JSON of items
the peer owns (`X-Meshscope-Items` says how many). The peer answers only after its own commit,
so a returned `send` means the part is stored there. Kind `sides` carries pairing records
(`cluster/sides.py`), which the peer answers once it has queued them for its pairing.

Batched: OTLP trace parts for one peer (and tenant) go at most REQUESTS_PER_LANE requests at
a time; the parts that come while that many are on their way are sent together in the next
(serialized OTLP requests concatenate into one request: the peer decodes, derives and commits
them as one body). At low load a part goes at once; under load a peer gets a few large
requests instead of one per client request and owner. The peer answers for the whole
request: it refused it (4xx, so nothing of it was stored) -> each part is sent again alone,
for its own answer; it rejected some spans (partial success) -> every part of it is told so
(the split keeps the spans a decoder would reject on the node that received them, so a
forward holds none: it happens only between nodes of different versions). Logs and Zipkin
parts go alone.

Bounded: the bytes of parts waiting or in flight to one peer are capped (`max_bytes`); past
the cap a new part is refused at once (OverloadedError -> the client's 429 /
RESOURCE_EXHAUSTED), so a slow owner costs bounded memory here; a part that waited longer
than the timeout is not sent (UnavailableError). A peer that cannot be reached, times out or
answers 503 gives UnavailableError (-> 503 / UNAVAILABLE); its 429 is passed on as
OverloadedError; a 4xx refusal of the part as BodyError (the client's data was bad, do not
retry).

The client is aiohttp's: it costs the sending node ~0.12 ms of CPU per request where httpx's
cost ~1 ms (an 80 kB part over loopback, measured), and the sender is the GIL-bound serving
process (ADR 0015).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import orjson

from meshscope.cluster.sides import MEDIA_TYPE as SIDES_MEDIA_TYPE
from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.sink import OverloadedError, UnavailableError
from meshscope.limits.tenant import HEADER as TENANT_HEADER
from meshscope.tenancy.context import current_tenants, write_tenant

ITEMS_HEADER = "x-meshscope-items"
ORIGIN_HEADER = "x-meshscope-node"
INTERNAL_PREFIX = "/internal/cluster/v1"
BATCHED = ("traces", "sides")
"""Kinds whose parts for one peer are sent together (OTLP protobuf requests concatenate, and
so do msgpack streams of pairing records)."""
REQUESTS_PER_LANE = 2
"""Requests on their way to one peer (per kind and tenant) before parts wait to be batched: a
part goes at once while fewer are, so light traffic never waits for another's answer."""
_MEDIA = {"sides": SIDES_MEDIA_TYPE}
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""The most bytes of parts sent in one request (a part larger than this goes alone)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the owner answered for a part: its decoder's rejected count and message."""

    rejected: int
    error_message: str


@dataclass(slots=True)
class _Waiting:
    part: Part
    reply: asyncio.Future[Reply]
    queued_at: float


@dataclass(slots=True)
class _Lane:
    """Parts for one peer, kind and tenant: up to REQUESTS_PER_LANE requests on their way."""

    waiting: list[_Waiting] = field(default_factory=list)
    sending: int = 0  # drains running, each with at most one request on its way


class Forwarder:
    """Sends parts to peers (by id) and counts what it forwarded and what failed."""

    def __init__(
        self,
        node_id: str,
        urls: Mapping[str, str],
        timeout_s: float,
        max_bytes: int,
        token: str = "",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`token`: sent as `Authorization: Bearer` (the peers' auth, `cluster.token`);
        `verify`: how https peers are verified (`cluster.tls.peer_verify`: a context, or
        True for the system CAs)."""
        self.node_id = node_id
        self._token = token
        self._verify = verify
        self.urls = dict(urls)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.inflight: dict[str, int] = defaultdict(int)
        self.forwarded: dict[tuple[str, str], int] = defaultdict(int)  # (kind, peer) -> items
        self.failed: dict[tuple[str, str], int] = defaultdict(int)
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (kind, peer) -> POSTs
        self._lanes: dict[tuple[str, str, str], _Lane] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._clients: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _http(self) -> aiohttp.ClientSession:
        """The running event loop's client, made on first use (a session is bound to its loop:
        `serve` runs every listener in one loop, tests may run them in one each)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ssl=self._verify),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
        return client

    async def close(self) -> None:
        """Close the running loop's client (call it in each loop that forwarded, at its end)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        size = len(part.body)
        if self.inflight[peer] and self.inflight[peer] + size > self.max_bytes:
            self.failed[kind, peer] += part.items
            raise OverloadedError(
                f"forwarding to cluster peer {peer} is backed up ({self.inflight[peer]} bytes)"
            )
        self.inflight[peer] += size
        tenant = _tenant()
        try:
            if kind in BATCHED and not part.json:
                reply = await self._queued(peer, kind, tenant, part)
            else:
                reply = await self._post(peer, kind, tenant, part)
        except BaseException:
            self.failed[kind, peer] += part.items
            raise
        finally:
            self.inflight[peer] -= size
        self.forwarded[kind, peer] += part.items
        return reply

    async def _queued(self, peer: str, kind: str, tenant: str, part: Part) -> Reply:
        """Send `part` in the lane's next request (at once while fewer than REQUESTS_PER_LANE
        are on their way)."""
        lane = self._lanes.setdefault((peer, kind, tenant), _Lane())
        waiting = _Waiting(part, asyncio.get_running_loop().create_future(), time.monotonic())
        lane.waiting.append(waiting)
        if lane.sending < REQUESTS_PER_LANE:
            lane.sending += 1
            drain = asyncio.create_task(self._drain(lane, peer, kind, tenant))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await waiting.reply

    async def _drain(self, lane: _Lane, peer: str, kind: str, tenant: str) -> None:
        batch: list[_Waiting] = []
        try:
            while lane.waiting:
                batch = _take(lane, time.monotonic() - self.timeout_s, peer)
                if batch:
                    await self._send_batch(peer, kind, tenant, batch)
        except BaseException as error:  # cancelled (shutdown): nobody waits in vain
            for waiting in [*batch, *lane.waiting]:
                _answer(waiting, UnavailableError(f"forwarding to cluster peer {peer}: {error!r}"))
            lane.waiting.clear()
            raise
        finally:
            lane.sending -= 1
            if not lane.waiting and not lane.sending:
                self._lanes.pop((peer, kind, tenant), None)

    async def _send_batch(self, peer: str, kind: str, tenant: str, batch: list[_Waiting]) -> None:
        if len(batch) == 1:
            await self._post_each(peer, kind, tenant, batch)
            return
        body = b"".join(waiting.part.body for waiting in batch)
        items = sum(waiting.part.items for waiting in batch)
        try:
            reply = await self._post(peer, kind, tenant, Part(body, items, False))
        except BodyError:  # the whole request refused, nothing of it stored: each alone
            await self._post_each(peer, kind, tenant, batch)
            return
        except (OverloadedError, UnavailableError) as error:
            for waiting in batch:
                _answer(waiting, _own(error))
            return
        if reply.rejected:
            reply = Reply(
                reply.rejected,
                f"cluster peer {peer} rejected {reply.rejected} of {items} spans forwarded"
                f" with these (from {len(batch)} requests): {reply.error_message}",
            )
        for waiting in batch:
            _answer(waiting, reply)

    async def _post_each(self, peer: str, kind: str, tenant: str, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                reply = await self._post(peer, kind, tenant, waiting.part)
            except (BodyError, OverloadedError, UnavailableError) as error:
                _answer(waiting, error)
            else:
                _answer(waiting, reply)

    async def _post(self, peer: str, kind: str, tenant: str, part: Part) -> Reply:
        """One request to `peer`; `tenant`: the tenant header's value ("" without tenancy)."""
        self.requests[kind, peer] += 1
        url = f"{self.urls[peer]}{INTERNAL_PREFIX}/{kind}"
        media = "application/json" if part.json else _MEDIA.get(kind, "application/x-protobuf")
        headers = {
            "content-type": media,
            ITEMS_HEADER: str(part.items),
            ORIGIN_HEADER: self.node_id,
        }
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        if tenant:
            headers[TENANT_HEADER] = tenant
        try:
            async with self._http().post(url, data=part.body, headers=headers) as response:
                status, content = response.status, await response.read()
                retry = _retry_after(response.headers.get("retry-after", "1"))
        except (TimeoutError, aiohttp.ClientError) as error:
            why = str(error) or type(error).__name__
            raise UnavailableError(f"cluster peer {peer} ({url}) unavailable: {why}") from None
        text = content[:500].decode(errors="replace")
        if status == 200:
            try:
                answer = orjson.loads(content)
                return Reply(int(answer["rejected"]), str(answer["error_message"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise UnavailableError(f"cluster peer {peer} answered 200 with: {text}") from None
        if status == 429:
            raise OverloadedError(f"cluster peer {peer} overloaded: {text}", retry)
        if status in (401, 403):  # a node's setting, not the client's fault
            raise UnavailableError(
                f"cluster peer {peer} refused this node's cluster.token ({status}): {text}"
            )
        if status in (400, 413):
            raise BodyError(status, f"cluster peer {peer} refused: {text}")
        raise UnavailableError(f"cluster peer {peer} answered {status}: {text}")


def _tenant() -> str:
    """The tenant the owner stores a part as (the same as here), "" with tenancy off."""
    return write_tenant() if current_tenants.get() is not None else ""


def _take(lane: _Lane, stale_before: float, peer: str) -> list[_Waiting]:
    """The next request's parts, from the oldest: up to MAX_BATCH_BYTES (at least one).
    Parts whose client has gone are dropped, and those that waited past the timeout are
    answered unavailable (neither is sent)."""
    batch: list[_Waiting] = []
    size = 0
    while lane.waiting:
        waiting = lane.waiting[0]
        if waiting.reply.done():  # the client's request was cancelled
            lane.waiting.pop(0)
            continue
        if waiting.queued_at < stale_before:
            lane.waiting.pop(0)
            _answer(waiting, UnavailableError(f"cluster peer {peer} too slow: a part timed out"))
            continue
        if batch and size + len(waiting.part.body) > MAX_BATCH_BYTES:
            break
        batch.append(lane.waiting.pop(0))
        size += len(waiting.part.body)
    return batch


def _own(error: OverloadedError | UnavailableError) -> Exception:
    """A copy of a batch's `error` for one of its parts: each client's request raises its
    own exception (one shared by several would collect every raise's traceback)."""
    if isinstance(error, OverloadedError):
        return OverloadedError(str(error), error.retry_after_s)
    return UnavailableError(str(error))


def _answer(waiting: _Waiting, outcome: Reply | BaseException) -> None:
    if waiting.reply.done():
        return
    if isinstance(outcome, BaseException):
        waiting.reply.set_exception(outcome)
    else:
        waiting.reply.set_result(outcome)


def _retry_after(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        return 1
