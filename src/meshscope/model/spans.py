"""Spans: the unit of a trace, shaped like OpenTelemetry's data model."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from meshscope.model.attributes import AttrValue


class SpanKind(IntEnum):
    """Numbered as in OTLP (`opentelemetry.proto.trace.v1.Span.SpanKind`)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5

    @property
    def otel_name(self) -> str:
        """The name the spanmetrics connector uses as the `span_kind` label."""
        return f"SPAN_KIND_{self.name}"


class StatusCode(IntEnum):
    """Numbered as in OTLP (`Status.StatusCode`)."""

    UNSET = 0
    OK = 1
    ERROR = 2

    @property
    def otel_name(self) -> str:
        return f"STATUS_CODE_{self.name}"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    time_ns: int
    name: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    """One operation of one service. Ids are lowercase hex; `parent_span_id` is "" for a root."""

    trace_id: str
    span_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    parent_span_id: str = ""
    kind: SpanKind = SpanKind.INTERNAL
    status_code: StatusCode = StatusCode.UNSET
    status_message: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    resource: dict[str, AttrValue] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    trace_state: str = ""
    flags: int = 0

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        return self.status_code is StatusCode.ERROR

    @property
    def is_root(self) -> bool:
        return self.parent_span_id == ""
