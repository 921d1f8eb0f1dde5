"""What authentication costs an OTLP/HTTP request, measured in one run (ratios, no targets).

The OTLP/HTTP routes over a sink that accepts everything, called in process through ASGI
(no sockets: what is left is decoding plus, with auth on, the gate), with a small request
(one span, so the gate's share is as large as it gets): requests/s with auth off, on with a
valid token, and on with 1,000 tokens in the file (the lookup is a dict: the same); plus one
`TokenStore.bearer` lookup in microseconds. Off, no route is wrapped at all.

Usage: .venv/bin/python benchmarks/auth_overhead.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette

from meshscope.auth.http import guard_routes
from meshscope.auth.tokens import TokenStore
from meshscope.ingest.otlp_http import otlp_http_routes
from meshscope.model.batch import Batch

TOKEN = "benchmark-token-0123456789abcdef"


class AcceptingSink:
    async def submit(self, batch: Batch) -> None:
        return None


def _body() -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    now = time.time_ns()
    spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="GET /", start_time_unix_nano=now,
              end_time_unix_nano=now + 1000)  # fmt: skip
    return request.SerializeToString()


def _tokens_file(directory: Path, count: int) -> Path:
    lines = ["tokens:"] + [
        f"  - {{name: t{i}, token: other-token-{i:020d}, scopes: [write]}}" for i in range(count)
    ]
    lines.append(f"  - {{name: bench, token: {TOKEN}, scopes: [write]}}")
    path = directory / f"tokens-{count}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _app(tokens: TokenStore | None) -> Starlette:
    routes = list(otlp_http_routes(AcceptingSink()))
    if tokens is not None:
        guard_routes("otlp_http", routes, tokens, metrics_open=False)
    return Starlette(routes=routes)


async def _rate(app: Starlette, body: bytes, requests: int) -> float:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(200):  # warm up
            await client.post("/v1/traces", content=body, headers=headers)
        started = time.perf_counter()
        for _ in range(requests):
            response = await client.post("/v1/traces", content=body, headers=headers)
            assert response.status_code == 200, response.text
        return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    body = _body()
    with tempfile.TemporaryDirectory() as directory:
        one = TokenStore(_tokens_file(Path(directory), 0))
        many = TokenStore(_tokens_file(Path(directory), 1000))
        off = asyncio.run(_rate(_app(None), body, args.requests))
        on = asyncio.run(_rate(_app(one), body, args.requests))
        on_many = asyncio.run(_rate(_app(many), body, args.requests))
        started = time.perf_counter()
        for _ in range(100_000):
            many.bearer(TOKEN)
        lookup_us = (time.perf_counter() - started) / 100_000 * 1e6
    print(f"OTLP/HTTP, 1-span requests in process: auth off {off:,.0f} req/s")
    print(f"  auth on, 1 token:      {on:,.0f} req/s = {on / off:.3f} x off")
    print(f"  auth on, 1,001 tokens: {on_many:,.0f} req/s = {on_many / off:.3f} x off")
    print(f"  one TokenStore.bearer lookup among 1,001 tokens: {lookup_us:.2f} us")


if __name__ == "__main__":
    main()
