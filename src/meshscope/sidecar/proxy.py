"""Forwarding one HTTP request to an upstream, as a reverse proxy does (aiohttp both sides).

Hop-by-hop headers are dropped (RFC 9110 7.6.1), bodies stream through unchanged in both
directions (no decompression), small responses are sent in one write, upstream connections
are pooled and kept alive. An upstream that does not answer within the timeout gives 504; one
that cannot be reached or breaks the connection before answering gives 502.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
SMALL_BODY = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(slots=True)
class Outcome:
    """What happened upstream: the status sent to the client, and an error type when the
    proxy itself failed the request ("timeout", "connection_error", "response_aborted")."""

    status: int
    error_type: str = ""

    @property
    def failed(self) -> bool:
        """A 5xx, or the proxy failed the request (the span's and access log's error)."""
        return self.status >= 500 or bool(self.error_type)


def new_session(timeout_s: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


def request_headers(incoming: CIMultiDictProxy[str], drop: Iterable[str]) -> dict[str, str]:
    """Headers to forward (lowercase keys): without hop-by-hop ones, those the `Connection`
    header names, and `drop`. Repeated headers are joined with ", " (RFC 9110 5.3)."""
    dropped = set(HOP_BY_HOP)
    dropped.update(drop)
    for token in incoming.get("connection", "").split(","):
        dropped.add(token.strip().lower())
    headers: dict[str, str] = {}
    for key, value in incoming.items():
        name = key.lower()
        if name in dropped:
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _response_headers(upstream: aiohttp.ClientResponse, keep_length: bool) -> CIMultiDict[str]:
    dropped = set(HOP_BY_HOP)
    for token in upstream.headers.get("connection", "").split(","):
        dropped.add(token.strip().lower())
    if not keep_length:
        dropped.add("content-length")
    return CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in dropped)


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


async def forward(
    request: web.BaseRequest,
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    timeout_s: float,
) -> tuple[web.StreamResponse, Outcome]:
    """Send `request` to `url` with `headers`; the response to return and what happened."""
    data = request.content if request.body_exists else None
    try:
        async with asyncio.timeout(timeout_s):
            upstream = await session.request(
                request.method,
                URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
            )
    except TimeoutError:
        return error_response(504, "upstream timeout"), Outcome(504, "timeout")
    except (aiohttp.ClientError, OSError) as error:
        message = f"upstream connection error: {type(error).__name__}"
        return error_response(502, message), Outcome(502, "connection_error")
    try:
        response, complete = await _relay(request, upstream)
    except (aiohttp.ClientError, OSError, TimeoutError):
        # Failed before anything was sent to the client: still a clean 502.
        return error_response(502, "upstream broke off"), Outcome(502, "connection_error")
    finally:
        upstream.release()
    if not complete:
        # The client already has part of the response: close the connection so it sees the
        # truncation instead of a message that looks whole.
        if request.transport is not None:
            request.transport.abort()
        return response, Outcome(upstream.status, "response_aborted")
    return response, Outcome(upstream.status)


async def _relay(
    request: web.BaseRequest, upstream: aiohttp.ClientResponse
) -> tuple[web.StreamResponse, bool]:
    length = upstream.content_length
    no_body = request.method == "HEAD" or upstream.status in _NO_BODY_STATUSES
    if not no_body and length is not None and length <= SMALL_BODY:
        body = await upstream.read()
        response = web.Response(
            status=upstream.status,
            reason=upstream.reason,
            headers=_response_headers(upstream, keep_length=False),
            body=body,
        )
        return response, True
    stream = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=_response_headers(upstream, keep_length=True),
    )
    await stream.prepare(request)
    if not no_body:
        try:
            async for chunk in upstream.content.iter_any():
                await stream.write(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return stream, False
    await stream.write_eof()
    return stream, True
