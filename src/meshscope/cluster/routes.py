"""The internal routes peers call (`/internal/cluster/v1/...`, on the UI listener).

NOT for clients (ADR 0015; with auth on, the POST routes need the `write` scope and the
nodes send `cluster.token`, api/openapi_routes.ACCESS): a forwarded part is stored on this
node as is, never routed again (the sender already routed it; if the rings disagree the
part is still stored, here); `POST .../sides` takes pairing records of spans a peer stored
(`cluster/sides.py`) for this node's pairing. `GET .../ring` shows this node's view of the
ring.
"""

from __future__ import annotations

from collections import Counter

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meshscope.cluster.forward import INTERNAL_PREFIX
from meshscope.cluster.sink import ClusterSink
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.receiving import Refusal, receive_http, receive_with
from meshscope.ingest.sink import is_body_kind
from meshscope.ingest.workers import decode_body


class Received:
    """Items stored on this node for other nodes, by kind."""

    def __init__(self) -> None:
        self.items: Counter[str] = Counter()


def cluster_routes(
    sink: ClusterSink, node_id: str, limits: IngestLimits, received: Received
) -> list[Route]:
    async def receive(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "ring":  # the ring route only reads
            return PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "GET"})
        if kind == "sides":  # pairing records of spans a peer stored (`cluster/sides.py`)
            outcome = await receive_with(request, limits, sink.take_sides)
        elif not is_body_kind(kind):
            return PlainTextResponse(f"unknown kind {kind!r}", 404)
        else:
            json = request.headers.get("content-type", "").startswith("application/json")

            def decode(body: bytes) -> Decoded:
                return decode_body(kind, body, json)

            # The local sink: a forwarded part is stored here, never routed again.
            outcome = await receive_http(request, sink.local, limits, decode, kind, json)
        if isinstance(outcome, Refusal):
            response = PlainTextResponse(outcome.message, outcome.status)
            if outcome.retry_after_s is not None:
                response.headers["Retry-After"] = str(outcome.retry_after_s)
            return response
        received.items[kind] += outcome.items  # what was stored, not what the header says
        body = {"rejected": outcome.rejected, "error_message": outcome.error_message}
        return Response(orjson.dumps(body), media_type="application/json")

    async def show_ring(request: Request) -> Response:
        ring = sink.ring
        slots = Counter(ring.peers[owner] for owner in ring.owners)
        return JSONResponse(
            {
                "node": node_id,
                "version": ring.version,
                "peers": list(ring.peers),
                "slots": dict(slots),
            }
        )

    return [
        Route(f"{INTERNAL_PREFIX}/ring", show_ring, methods=["GET"]),
        Route(f"{INTERNAL_PREFIX}/{{kind}}", receive, methods=["POST"]),
    ]
