"""One sidecar: the inbound handler (requests into the service) and the egress handler (the
service's own calls), each making its span, metric and access-log record.

Egress addressing: the service calls `http://<egress>/<target>/<path>`, or sends any request
whose Host header names a route (so `HTTP_PROXY=http://<egress>` works for plain-HTTP
clients); `--route target=URL` says where that target's sidecar listens.

Caller identity: the egress adds `x-meshscope-source: <service>`; the next sidecar reads it
(and strips it), so the access log and metrics name the calling service.

Access logs: meshscope derives one per call from each CLIENT/SERVER span pair (and counts the
graph edge there), so the sidecar sends none for calls inside the mesh. A request that enters
the mesh from outside has no CLIENT span to pair with; for it the inbound sidecar sends one
access-log record over OTLP logs (source `unknown`), which adds no edge.
"""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

from aiohttp import web

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.ids import new_span_id, new_trace_id
from meshscope.model.logs import LogRecord
from meshscope.model.sidecar_mark import sidecar_trace_state
from meshscope.sidecar.context import CONTEXT_HEADERS, Format, extract, inject
from meshscope.sidecar.export import Exporter
from meshscope.sidecar.metrics import SidecarMetrics
from meshscope.sidecar.proxy import Outcome, error_response, forward, new_session, request_headers
from meshscope.sidecar.settings import SidecarSettings
from meshscope.sidecar.spans import Exchange, client_span, server_span

SOURCE_HEADER = "x-meshscope-source"
UNKNOWN_SOURCE = "unknown"
_DROP = (*CONTEXT_HEADERS, SOURCE_HEADER)
_DROP_EGRESS = (*_DROP, "host")


def _exchange(request: web.BaseRequest, span_id: str) -> tuple[Exchange, Format]:
    parent = extract(request.headers)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    version = request.version
    exchange = Exchange(
        trace_id=parent.trace_id if parent else new_trace_id(),
        span_id=span_id,
        parent_span_id=parent.span_id if parent else "",
        sampled=parent.sampled if parent else True,
        trace_state=parent.trace_state if parent else "",
        method=request.method,
        path=request.path,
        query=request.query_string,
        start_ns=time.time_ns(),
        peer_address=str(peer[0]) if peer else "",
        peer_port=int(peer[1]) if peer else 0,
        user_agent=request.headers.get("User-Agent", ""),
        protocol_version=f"{version.major}.{version.minor}",
    )
    return exchange, parent.format if parent else Format.W3C


class Sidecar:
    def __init__(
        self, settings: SidecarSettings, exporter: Exporter, metrics: SidecarMetrics
    ) -> None:
        self.settings = settings
        self.exporter = exporter
        self.metrics = metrics
        self._inbound = new_session(settings.upstream_timeout_s)
        self._outbound = new_session(settings.upstream_timeout_s)
        listen = settings.listen
        self._server_address, self._server_port = listen.host, listen.port
        self._routes = {name: (url, urlsplit(url)) for name, url in settings.routes.items()}

    async def close(self) -> None:
        await self._inbound.close()
        await self._outbound.close()

    async def inbound(self, request: web.BaseRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        exchange, fmt = _exchange(request, new_span_id())
        # An instrumented application's SERVER span inherits this entry: see sidecar_mark.
        exchange.trace_state = sidecar_trace_state(exchange.trace_state, exchange.span_id)
        source = request.headers.get(SOURCE_HEADER, "")
        headers = request_headers(request.headers, _DROP)
        inject(headers, exchange.trace_id, exchange.span_id, exchange.sampled,
               exchange.trace_state, fmt)  # fmt: skip
        if exchange.peer_address:
            forwarded = headers.get("x-forwarded-for")
            peer = exchange.peer_address
            headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
        url = self.settings.upstream + request.raw_path
        response, outcome = await forward(
            request, self._inbound, url, headers, self.settings.upstream_timeout_s
        )
        seconds = time.perf_counter() - t0
        end_ns = exchange.start_ns + int(seconds * 1e9)
        service = self.settings.service
        self.metrics.observe("inbound", source or UNKNOWN_SOURCE, service, outcome.status, seconds)
        if exchange.sampled:
            host = request.host.rpartition(":")[0] or request.host
            self.exporter.add_span(
                server_span(exchange, service, end_ns, outcome,
                            host or self._server_address, self._server_port, source)
            )  # fmt: skip
        if not source:
            self.exporter.add_log(_ingress_access_log(exchange, service, end_ns, outcome))
        return response

    def _resolve(self, request: web.BaseRequest) -> tuple[str, str] | None:
        """(target, path) from the Host header or the first path segment."""
        host = request.host.rpartition(":")[0] if ":" in request.host else request.host
        if host in self._routes:
            return host, request.raw_path
        path, sep, query = request.raw_path.partition("?")
        target, _, tail = path[1:].partition("/")
        if target in self._routes:
            return target, "/" + tail + sep + query
        return None

    async def egress(self, request: web.BaseRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        resolved = self._resolve(request)
        if resolved is None:
            known = ", ".join(sorted(self._routes)) or "none"
            return error_response(
                404, f"no route for {request.raw_path!r}: call /<target>/<path>, targets: {known}"
            )
        target, raw_path = resolved
        base, parts = self._routes[target]
        exchange, fmt = _exchange(request, new_span_id())
        path, _, exchange.query = raw_path.partition("?")
        exchange.path = unquote(path)  # as the inbound side (aiohttp's request.path) has it
        headers = request_headers(request.headers, _DROP_EGRESS)
        inject(headers, exchange.trace_id, exchange.span_id, exchange.sampled,
               exchange.trace_state, fmt)  # fmt: skip
        service = self.settings.service
        headers[SOURCE_HEADER] = service
        response, outcome = await forward(
            request, self._outbound, base + raw_path, headers, self.settings.upstream_timeout_s
        )
        seconds = time.perf_counter() - t0
        self.metrics.observe("outbound", service, target, outcome.status, seconds)
        if exchange.sampled:
            end_ns = exchange.start_ns + int(seconds * 1e9)
            self.exporter.add_span(
                client_span(exchange, service, end_ns, outcome, target,
                            parts.hostname or "", parts.port or 80)
            )  # fmt: skip
        return response


def _ingress_access_log(
    exchange: Exchange, service: str, end_ns: int, outcome: Outcome
) -> LogRecord:
    record = access_log(
        Call(
            source=UNKNOWN_SOURCE,
            target=service,
            time_ns=exchange.start_ns,
            failed=outcome.failed,
            server_duration_ns=end_ns - exchange.start_ns,
            status_code=outcome.status,
            method=exchange.method,
            path=exchange.path,
            trace_id=exchange.trace_id if exchange.sampled else "",
            span_id=exchange.span_id if exchange.sampled else "",
        )
    )
    record.attributes["network.peer.address"] = exchange.peer_address
    return record
