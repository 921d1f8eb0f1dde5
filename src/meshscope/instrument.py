"""`meshscope.instrument(service=...)`: one call for teams that do change code.

It configures the OpenTelemetry SDK (a TracerProvider exporting OTLP/HTTP to meshscope in
batches, the W3C trace-context propagator, a resource naming the service), a LoggerProvider
exporting OTLP logs, and a structlog logger that writes JSON lines with `trace_id`/`span_id`
bound from the current span and ships each record to meshscope correlated to its trace:

    obs = meshscope.instrument(service="checkout")
    with obs.tracer.start_as_current_span("charge"):
        obs.log.info("charged", amount=12)    # stdout JSON line + OTLP log, same trace_id

`set_global=False` leaves OpenTelemetry's process-wide providers alone, so several services
can share one process (the demo does); each gets its own resource.
"""

from __future__ import annotations

import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

# OpenTelemetry and structlog are imported when `instrument` is called: `meshscope`
# re-exports it, and commands that never instrument anything should not pay for the import.
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
EventDict = MutableMapping[str, Any]


@dataclass(slots=True)
class Instrumentation:
    service: str
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    tracer: Tracer
    log: Any  # a structlog BoundLogger

    def flush(self, timeout_ms: int = 5000) -> None:
        self.tracer_provider.force_flush(timeout_ms)
        self.logger_provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def add_trace_context(logger: Any, method: str, event: EventDict) -> EventDict:
    """structlog processor: bind the current span's trace_id and span_id (hex), if any."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


_SEVERITY = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warning": (13, "WARN"),
             "error": (17, "ERROR"), "critical": (21, "FATAL")}  # fmt: skip
_NOT_ATTRIBUTES = frozenset({"event", "level", "timestamp", "trace_id", "span_id"})


class _OtlpEmitter:
    """structlog processor: emit the event as an OTel log record (event text as body, other
    fields as attributes, trace context from the current span), then pass it on."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def __call__(self, logger: Any, method: str, event: EventDict) -> EventDict:
        from opentelemetry._logs import SeverityNumber

        number, text = _SEVERITY.get(str(event.get("level", "info")), (9, "INFO"))
        attributes = {
            key: value if isinstance(value, str | bool | int | float) else str(value)
            for key, value in event.items()
            if key not in _NOT_ATTRIBUTES
        }
        self._logger.emit(
            timestamp=time.time_ns(),
            severity_number=SeverityNumber(number),
            severity_text=text,
            body=str(event.get("event", "")),
            attributes=attributes,
        )
        return event


def instrument(
    service: str,
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    set_global: bool = True,
    stream: TextIO | None = None,
    export_delay_ms: int = 1000,
    resource_attributes: dict[str, str] | None = None,
    token: str | None = None,
    tenant: str | None = None,
) -> Instrumentation:
    """Configure traces and logs for `service`, exported to meshscope at `endpoint` (its
    OTLP/HTTP base URL). JSON lines go to `stream` (stdout by default). `token` is sent as
    `Authorization: Bearer` (meshscope with `auth.enabled`) and `tenant` as `X-Scope-OrgID`
    (with `tenancy.enabled`: whose data it is); without either the exporters send what
    `OTEL_EXPORTER_OTLP_HEADERS` says, as every OpenTelemetry SDK does."""
    import structlog
    from opentelemetry import propagate, trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    endpoint = endpoint.rstrip("/")
    given = {"authorization": f"Bearer {token}" if token else "", "x-scope-orgid": tenant or ""}
    headers = {key: value for key, value in given.items() if value} or None
    resource = Resource.create({"service.name": service, **(resource_attributes or {})})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5, headers=headers),
            schedule_delay_millis=export_delay_ms,
        )
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", timeout=5, headers=headers),
            schedule_delay_millis=export_delay_ms,
        )
    )
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        set_logger_provider(logger_provider)
        propagate.set_global_textmap(TraceContextTextMapPropagator())
    log = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stdout),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_context,
            _OtlpEmitter(logger_provider.get_logger("meshscope.instrument")),
            structlog.processors.JSONRenderer(default=str),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        service=service,
    )
    return Instrumentation(
        service=service,
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        tracer=tracer_provider.get_tracer("meshscope.instrument"),
        log=log,
    )
