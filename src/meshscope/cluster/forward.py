"""Forwarding request parts to their owners over the peers' internal route, bounded.

One `POST <peer>/internal/cluster/v1/<kind>` per part (the OTLP protobuf or Zipkin JSON of
the items the peer owns; `X-Meshscope-Items` says how many). The peer answers only after its
own commit, so a returned `send` means the part is stored there.

Bounded: the bytes of parts in flight to one peer are capped (`max_bytes`); past the cap a
new part is refused at once (OverloadedError -> the client's 429 / RESOURCE_EXHAUSTED), so a
slow owner costs bounded memory here. A peer that cannot be reached, times out or answers
503 gives UnavailableError (-> 503 / UNAVAILABLE); its 429 is passed on as OverloadedError;
a 4xx refusal of the part as BodyError (the client's data was bad, do not retry).

The client is aiohttp's: it costs the sending node ~0.12 ms of CPU per part where httpx's
cost ~1 ms (an 80 kB part over loopback, measured), and the sender is the GIL-bound serving
process, so this is most of what forwarding costs it per part (ADR 0015).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson

from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.sink import OverloadedError, UnavailableError
from meshscope.limits.tenant import HEADER as TENANT_HEADER
from meshscope.tenancy.context import current_tenants, write_tenant

ITEMS_HEADER = "x-meshscope-items"
ORIGIN_HEADER = "x-meshscope-node"
INTERNAL_PREFIX = "/internal/cluster/v1"


@dataclass(frozen=True, slots=True)
class Reply:
    """What the owner answered for a part: its decoder's rejected count and message."""

    rejected: int
    error_message: str


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
        try:
            reply = await self._post(peer, kind, part)
        except BaseException:
            self.failed[kind, peer] += part.items
            raise
        finally:
            self.inflight[peer] -= size
        self.forwarded[kind, peer] += part.items
        return reply

    async def _post(self, peer: str, kind: str, part: Part) -> Reply:
        url = f"{self.urls[peer]}{INTERNAL_PREFIX}/{kind}"
        media = "application/json" if part.json else "application/x-protobuf"
        headers = {
            "content-type": media,
            ITEMS_HEADER: str(part.items),
            ORIGIN_HEADER: self.node_id,
        }
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        tenants = current_tenants.get()
        if tenants is not None:  # tenancy on: the owner stores it as the same tenant's
            headers[TENANT_HEADER] = write_tenant()
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


def _retry_after(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        return 1
