"""Known generated data for the read-API tests, sent through the real pipeline of a real app.

TRACES traces, one every second from T0: `frontend` SERVER `GET /checkout` (root) -> CLIENT
-> `cart` SERVER `POST /cart` -> `cart` CLIENT `SELECT` to db `carts` (a virtual node). Every
ERROR_EVERY-th trace fails in cart (status ERROR, http.status_code 500). Durations of cart's
server span: 3 ms for even traces, 30 ms for odd ones. The pipeline is flushed every 15 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from meshscope.app import App, build
from meshscope.clock import ManualClock
from meshscope.config import Config, PipelineConfig, StorageConfig
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanEvent, SpanKind, StatusCode

S = 10**9
MS = 10**6
T0 = 1_700_000_000 * S
TRACES = 40
ERROR_EVERY = 5
FRONTEND_RESOURCE: dict[str, AttrValue] = {"service.name": "frontend", "k8s.pod.name": "frontend-1"}
CART_RESOURCE: dict[str, AttrValue] = {"service.name": "cart", "k8s.pod.name": "cart-7"}


def trace_id(n: int) -> str:
    return f"{0x5A00 + n:032x}"


def span_id(n: int, k: int) -> str:
    return f"{(n << 8) + k + 1:016x}"


def is_error(n: int) -> bool:
    return n % ERROR_EVERY == 0


def cart_ms(n: int) -> int:
    return 3 if n % 2 == 0 else 30


def trace(n: int) -> list[Span]:
    start = T0 + n * S
    cart = cart_ms(n) * MS
    error = is_error(n)
    status = StatusCode.ERROR if error else StatusCode.UNSET
    code = 500 if error else 200
    tid = trace_id(n)
    return [
        Span(trace_id=tid, span_id=span_id(n, 0), name="GET /checkout", service="frontend",
             start_ns=start, end_ns=start + cart + 4 * MS, kind=SpanKind.SERVER,
             attributes={"http.route": "/checkout", "http.status_code": code},
             resource=FRONTEND_RESOURCE),
        Span(trace_id=tid, span_id=span_id(n, 1), parent_span_id=span_id(n, 0), name="POST /cart",
             service="frontend", start_ns=start + MS, end_ns=start + cart + 3 * MS,
             kind=SpanKind.CLIENT, status_code=status, resource=FRONTEND_RESOURCE),
        Span(trace_id=tid, span_id=span_id(n, 2), parent_span_id=span_id(n, 1), name="POST /cart",
             service="cart", start_ns=start + 2 * MS, end_ns=start + cart + 2 * MS,
             kind=SpanKind.SERVER, status_code=status,
             status_message="out of stock" if error else "",
             attributes={"http.status_code": code, "customer.tier": "gold" if n % 4 else "free"},
             events=(SpanEvent(start + 2 * MS + 5, "cache miss", {"key": "cart:1"}),),
             resource=CART_RESOURCE),
        Span(trace_id=tid, span_id=span_id(n, 3), parent_span_id=span_id(n, 2), name="SELECT",
             service="cart", start_ns=start + 2 * MS + 100, end_ns=start + 3 * MS,
             kind=SpanKind.CLIENT, attributes={"db.system": "postgresql", "db.name": "carts"},
             resource=CART_RESOURCE),
    ]  # fmt: skip


@contextmanager
def shop_app() -> Iterator[tuple[App, ManualClock]]:
    """A real app over the memory store holding the shop's traces and derived metrics."""
    clock = ManualClock(T0)
    config = Config(
        storage=StorageConfig(kind="memory", path="unused"),
        pipeline=PipelineConfig(servicegraph_ttl_seconds=5.0),
    )
    app = build(config, clock)
    for n in range(TRACES):
        clock.time_ns = T0 + n * S
        app.pipeline.consume(Batch(spans=trace(n)))
        if (n + 1) % 15 == 0:
            app.pipeline.flush()
    clock.time_ns = T0 + (TRACES + 20) * S  # past the pairing TTL: virtual db edges expire
    app.pipeline.flush()
    try:
        yield app, clock
    finally:
        app.storage.close()
