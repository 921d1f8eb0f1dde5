"""Log records, shaped like OpenTelemetry's log data model, correlated to traces by id."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from meshscope.model.attributes import AttrValue

# Attribute that marks a log record derived from a call between services (an access log).
LOG_TYPE_KEY = "log.type"
ACCESS_LOG_TYPE = "access"


class Severity(IntEnum):
    """The first number of each OTel severity range (TRACE=1 .. FATAL=21)."""

    UNSPECIFIED = 0
    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21

    @classmethod
    def from_number(cls, number: int) -> Severity:
        """Map any OTel severity number (1..24) to the start of its range."""
        if 0 <= number < len(_BY_NUMBER):
            return _BY_NUMBER[number]
        return cls.UNSPECIFIED if number < 0 else cls.FATAL

    @classmethod
    def from_text(cls, text: str) -> Severity:
        """Parse usual level names (`warning`, `err`, `critical`...); unknown -> UNSPECIFIED."""
        key = text.strip().upper()
        key = _SEVERITY_ALIASES.get(key, key)
        return cls.__members__.get(key, cls.UNSPECIFIED)


_BY_NUMBER = (Severity.UNSPECIFIED, *(max(s for s in Severity if s <= n) for n in range(1, 25)))

_SEVERITY_ALIASES = {
    "WARNING": "WARN",
    "ERR": "ERROR",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "PANIC": "FATAL",
    "DBG": "DEBUG",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
}


@dataclass(frozen=True, slots=True)
class LogRecord:
    """`severity` is the OTel severity number as sent (0..24: INFO2 is 10), or a `Severity`,
    the first number of its range, where only a level is known (Loki, the node); `level`
    folds it to its range."""

    time_ns: int
    body: str
    service: str
    severity: int = Severity.UNSPECIFIED
    severity_text: str = ""
    trace_id: str = ""
    span_id: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    resource: dict[str, AttrValue] = field(default_factory=dict)

    @property
    def level(self) -> Severity:
        return Severity.from_number(self.severity)

    @property
    def is_access_log(self) -> bool:
        return self.attributes.get(LOG_TYPE_KEY) == ACCESS_LOG_TYPE
