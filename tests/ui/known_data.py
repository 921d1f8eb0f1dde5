"""Known telemetry for the UI's browser tests, sent through the real pipeline of a real app.

TRACES traces, one every STEP_S seconds from BASE (15 minutes before the test starts, so the
data sits in the UI's default "last hour" too): `frontend` SERVER `GET /checkout` (root) ->
CLIENT `POST /cart` -> `cart` SERVER `POST /cart` -> `cart` CLIENT `SELECT` to the database
`carts` (a virtual node of the map). Every ERROR_EVERY-th trace fails in cart (client and
server spans ERROR; cart logs `payment declined for order n` at ERROR); every trace logs
`reserved items for order n` at INFO. cart's server span lasts 3 ms for even n, 30 ms for odd
n. Trace XSS_TRACE also has an INTERNAL span named XSS_NAME with an attribute and a log line
that are markup. The pipeline is flushed after every trace; process_cpu_seconds_total grows
by CPU[service] per second, so its rate is that many cores.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meshscope.alerting.config import AlertingConfig
from meshscope.alerting.rule_files import RuleGroup, load_rule_files
from meshscope.app import App, build
from meshscope.clock import ManualClock
from meshscope.config import Config, PipelineConfig, StorageConfig
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord, Severity
from meshscope.model.metrics import MetricPoint, MetricType
from meshscope.model.spans import Span, SpanEvent, SpanKind, StatusCode
from meshscope.query.slo import Slo

S = 10**9
MS = 10**6
TRACES = 40
STEP_S = 15
ERROR_EVERY = 4
XSS_TRACE = 1
XSS_NAME = "<script>alert(1)</script>"
XSS_ATTRIBUTE = "<img src=x onerror=alert(2)>"
XSS_LOG = "<img src=x onerror=alert(3)> rendered?"
CPU = {"frontend": 0.25, "cart": 0.5}
FRONTEND: dict[str, AttrValue] = {"service.name": "frontend", "k8s.pod.name": "frontend-1"}
CART: dict[str, AttrValue] = {"service.name": "cart", "k8s.pod.name": "cart-7"}
BASE = (time.time_ns() // S - 15 * 60) * S
END = BASE + (TRACES * STEP_S + 20) * S
# An absolute range holding all the data, as the UI's `from`/`to` (ms).
FROM_MS, TO_MS = BASE // MS - 1000, END // MS
RANGE_SECONDS = (TO_MS - FROM_MS) / 1000
RANGE = f"from={FROM_MS}&to={TO_MS}"
# 99 % of cart's server spans without error over a day: at END its error budget is spent and
# it burns at 25x over the last hour (20x over the last 5 minutes): state page.
SLO = Slo("cart-availability", "cart", 0.99, 86400 * S)


def trace_id(n: int) -> str:
    return f"{0x7B00 + n:032x}"


def span_id(n: int, k: int) -> str:
    return f"{(n << 8) + k + 1:016x}"


def is_error(n: int) -> bool:
    return n % ERROR_EVERY == 0


def cart_ms(n: int) -> int:
    return 3 if n % 2 == 0 else 30


def start_ns(n: int) -> int:
    return BASE + n * STEP_S * S


def spans(n: int) -> list[Span]:
    start, cart, tid = start_ns(n), cart_ms(n) * MS, trace_id(n)
    status = StatusCode.ERROR if is_error(n) else StatusCode.UNSET
    code = 500 if is_error(n) else 200
    out = [
        Span(trace_id=tid, span_id=span_id(n, 0), name="GET /checkout", service="frontend",
             start_ns=start, end_ns=start + cart + 4 * MS, kind=SpanKind.SERVER,
             attributes={"http.route": "/checkout", "http.status_code": code}, resource=FRONTEND),
        Span(trace_id=tid, span_id=span_id(n, 1), parent_span_id=span_id(n, 0), name="POST /cart",
             service="frontend", start_ns=start + MS, end_ns=start + cart + 3 * MS,
             kind=SpanKind.CLIENT, status_code=status, resource=FRONTEND),
        Span(trace_id=tid, span_id=span_id(n, 2), parent_span_id=span_id(n, 1), name="POST /cart",
             service="cart", start_ns=start + 2 * MS, end_ns=start + cart + 2 * MS,
             kind=SpanKind.SERVER, status_code=status,
             status_message="payment declined" if is_error(n) else "",
             attributes={"http.status_code": code, "customer.tier": "gold"},
             events=(SpanEvent(start + 2 * MS + 5000, "cache miss", {"key": "cart:1"}),),
             resource=CART),
        Span(trace_id=tid, span_id=span_id(n, 3), parent_span_id=span_id(n, 2), name="SELECT",
             service="cart", start_ns=start + 2 * MS + 100_000, end_ns=start + 3 * MS,
             kind=SpanKind.CLIENT, attributes={"db.system": "postgresql", "db.name": "carts"},
             resource=CART),
    ]  # fmt: skip
    if n == XSS_TRACE:
        out.append(
            Span(trace_id=tid, span_id=span_id(n, 4), parent_span_id=span_id(n, 2), name=XSS_NAME,
                 service="cart", start_ns=start + 3 * MS, end_ns=start + 4 * MS,
                 kind=SpanKind.INTERNAL, attributes={"note": XSS_ATTRIBUTE}, resource=CART)
        )  # fmt: skip
    return out


def logs(n: int) -> list[LogRecord]:
    tid, server = trace_id(n), span_id(n, 2)
    at = start_ns(n) + 2 * MS + 500_000
    out = [LogRecord(at, f"reserved items for order {n}", "cart", Severity.INFO, "INFO", tid,
                     server, {"order": n}, CART)]  # fmt: skip
    if is_error(n):
        out.append(LogRecord(at + 1000, f"payment declined for order {n}", "cart", Severity.ERROR,
                             "ERROR", tid, server, {"order": n}, CART))  # fmt: skip
    if n == XSS_TRACE:
        out.append(LogRecord(at + 2000, XSS_LOG, "cart", Severity.WARN, "WARN", tid, server))
    return out


def cpu(at_ns: int) -> list[MetricPoint]:
    seconds = (at_ns - BASE) / S
    return [
        MetricPoint("process_cpu_seconds_total", (("service_name", service),), at_ns,
                    MetricType.COUNTER, 100 + cores * seconds)
        for service, cores in CPU.items()
    ]  # fmt: skip


@contextmanager
def known_app(**settings: Any) -> Iterator[App]:
    """A real app over the memory store holding the known traces, logs and metrics
    (`settings`: more Config sections, e.g. `auth`)."""
    clock = ManualClock(BASE)
    with tempfile.TemporaryDirectory() as folder:
        settings.setdefault("alerting", AlertingConfig(rule_groups=rule_groups(Path(folder))))
        config = Config(
            storage=StorageConfig(kind="memory", path="unused"),
            pipeline=PipelineConfig(servicegraph_ttl_seconds=5.0),
            slos=(SLO,),
            **settings,
        )
        app = build(config, clock)
    for n in range(TRACES):
        clock.time_ns = start_ns(n) + 100 * MS
        app.pipeline.consume(Batch(spans=spans(n), logs=logs(n), metrics=cpu(clock.time_ns)))
        app.pipeline.flush()
    clock.time_ns = END  # past the pairing TTL: the virtual database edge is written
    app.pipeline.flush()
    if app.rules is not None:  # evaluated once at END (the app is not started)
        app.rules.evaluate_due(END)
    try:
        yield app
    finally:
        app.storage.close()


def rule_groups(folder: Path) -> tuple[RuleGroup, ...]:
    """RULES (PromQL over the span metrics) and LOG_RULES (LogQL): at END, CartErrors and
    CartErrorLogs fire, SlowCart is pending (its `for` is an hour)."""
    (folder / "rules.yml").write_text(RULES)
    (folder / "logs.yml").write_text(LOG_RULES)
    return (
        *load_rule_files([str(folder / "rules.yml")], "promql", 60 * S, "rule_files"),
        *load_rule_files([str(folder / "logs.yml")], "logql", 60 * S, "loki_rule_files"),
    )


RULES = """
groups:
  - name: ui
    rules:
      - alert: CartErrors
        expr: >-
          sum by (service_name) (rate(calls_total{span_kind="SPAN_KIND_SERVER",
          status_code="STATUS_CODE_ERROR"}[30m])) > 0
        annotations: {summary: "{{ $labels.service_name }} fails"}
      - alert: SlowCart
        expr: >-
          histogram_quantile(0.99, sum by (service_name, le) (rate(duration_milliseconds_bucket{
          service_name="cart", span_kind="SPAN_KIND_SERVER"}[30m]))) > 10
        for: 1h
"""
LOG_RULES = """
groups:
  - name: ui-logs
    rules:
      - alert: CartErrorLogs
        expr: >-
          sum by (service_name) (count_over_time({service_name="cart"}
          |= "payment declined" [30m])) > 0
        annotations: {summary: "{{ $value }} declined payments"}
"""
